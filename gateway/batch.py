"""Batches: a folder of packages, or a ZIP of packages as staff download it from the portal."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

from gateway.errors import PackageError
from gateway.models import Limits

MAX_BATCH_MEMBERS = 10_000


def iter_packages(path: Path, *, limits: Limits) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, package bytes)`` for a package file, a batch ZIP or a folder of ``*.zip``.

    Reads are bounded: an oversized package is yielded truncated to one byte over the limit,
    so the intake refuses it as too large (and records it) instead of this loop holding it.
    """
    if path.is_dir():
        for file in sorted(path.glob("*.zip")):
            yield file.name, _read_bounded_file(file, limits.max_package_bytes)
        return
    if not zipfile.is_zipfile(path):  # let the intake refuse (and record) it like any bad package
        yield path.name, _read_bounded_file(path, limits.max_package_bytes)
        return
    with zipfile.ZipFile(path) as outer:
        names = outer.namelist()
        if "kousei.xml" in names:  # a single package, not a batch
            yield path.name, _read_bounded_file(path, limits.max_package_bytes)
            return
        members = [i for i in outer.infolist() if not i.is_dir()]
        if len(members) > MAX_BATCH_MEMBERS:
            raise PackageError(f"一括ファイルの件数が上限 ({MAX_BATCH_MEMBERS}) を超えています",
                               code="package-batch-too-many")
        for info in members:
            with outer.open(info) as fh:
                yield info.filename, fh.read(limits.max_package_bytes + 1)


def _read_bounded_file(path: Path, limit: int) -> bytes:
    with path.open("rb") as fh:
        return fh.read(limit + 1)
