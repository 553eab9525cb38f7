"""The file-drop channel: records land as files in a folder the core system reads.

``<DIR>/<target>/<到達番号>_<record filename>`` (``<到達番号>_<procedure>.xml`` when the record
has no name; a record name that already starts with the 到達番号 is used as it is). The name
always carries the 到達番号, so a retry hits the same file and two applications never share one. Each file appears whole or not at all: it is written under a hidden temporary
name in the same folder, fsynced, renamed into place, and the folder is fsynced. Delivering
the same record again finds the identical file and succeeds without writing, so a retry
after a crash does not duplicate it; a *different* file under that name is never overwritten.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gateway import hookimpl
from gateway.errors import DeliveryError
from gateway.models import Channel, Delivery, DeliveryReceipt

DEFAULT_FILE_MODE = 0o640


@hookimpl
def register_channels(config: Mapping[str, Any]) -> Iterable[Channel]:
    settings = config["CHANNELS"]["filedrop"]
    mode = settings.get("FILE_MODE", DEFAULT_FILE_MODE)
    return [FileDropChannel(directory=settings["DIR"], file_mode=int(mode, 8) if isinstance(mode, str) else mode)]


class FileDropChannel:
    """Atomic, idempotent file drop. The per-route option ``DIR`` replaces the root folder."""

    name = "filedrop"

    def __init__(self, directory: str | os.PathLike[str], *, file_mode: int = DEFAULT_FILE_MODE) -> None:
        self.directory = Path(directory)
        self.file_mode = file_mode

    def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        root = Path(str(delivery.options.get("DIR") or self.directory))
        folder = root / _safe_name(delivery.target, "連携先名")
        final = folder / _safe_name(_file_name(delivery), "ファイル名")
        content = delivery.record.content
        digest = hashlib.sha256(content).hexdigest()
        try:
            _make_dirs(folder)
            if not _same_file_already_there(final, content):
                _write_atomically(final, content, self.file_mode)
        except OSError as exc:  # disk full, share unreachable, permissions: worth retrying
            raise DeliveryError(f"ファイルを書き込めません: {final}: {exc.strerror or exc}",
                                code="delivery-filedrop-io") from exc
        relative = final.relative_to(root).as_posix()
        return DeliveryReceipt(receipt_id=f"file:{relative}#{digest[:16]}", channel=self.name,
                               detail=str(final))


def _file_name(delivery: Delivery) -> str:
    name = delivery.record.filename or f"{delivery.procedure_code}.xml"
    return name if name.startswith(f"{delivery.arrival_number}_") else f"{delivery.arrival_number}_{name}"


def _same_file_already_there(final: Path, content: bytes) -> bool:
    """True when ``final`` holds exactly ``content``; a different file there is a hard stop."""
    try:
        existing = final.read_bytes()
    except FileNotFoundError:
        return False
    if existing == content:
        return True
    raise DeliveryError(
        f"連携先に同じ名前で内容の異なるファイルがあります (上書きしません): {final}",
        code="delivery-filedrop-conflict", permanent=True)


def _write_atomically(final: Path, content: bytes, mode: int) -> None:
    fd, temp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        # Same content is the only thing another worker could have put there meanwhile
        # (one 到達番号, one record), so replacing it is harmless.
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)


def _make_dirs(folder: Path) -> None:
    missing = []
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
        missing.append(parent)
    folder.mkdir(parents=True, exist_ok=True)
    for created in missing:  # make the new folder entries themselves durable
        _fsync_dir(created.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _safe_name(name: str, what: str) -> str:
    """A single path segment: nothing a transform or a target name could use to escape."""
    if (not name or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name
            or "\x00" in name or len(name.encode()) > 255):
        raise DeliveryError(f"{what}として使えない名前です: {name!r}", code="delivery-filedrop-name",
                            permanent=True)
    return name
