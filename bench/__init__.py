"""The gateway's benchmark: ``python -m bench`` (or ``./dev bench``). See bench/README.md."""
