"""Meta-tests: every hook is tested, documented, and has a pytest-style docstring."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from gateway import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name, fn in vars(hookspecs).items()
               if inspect.isfunction(fn) and hasattr(fn, "gateway_spec"))


def test_there_are_hooks():
    assert "register_procedures" in HOOKS and len(HOOKS) >= 8


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    tests = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py"))
    assert f"def test_hook_{hook}" in tests


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    assert f"`{hook}(" in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_typed_docstring(hook):
    fn = getattr(hookspecs, hook)
    assert fn.__doc__ and fn.__doc__.strip()
    assert "return" in fn.__annotations__
    assert all(name in fn.__annotations__ for name in inspect.signature(fn).parameters)
    assert all(f":param {name}:" in fn.__doc__ for name in inspect.signature(fn).parameters)
