"""Read an application package (ZIP) in memory, refusing everything the spec does not allow.

Nothing is ever extracted to disk. Member contents are read with a bounded read, so neither
the sizes the ZIP headers declare nor the compression ratio can make the gateway inflate more
than the configured limits (``application-package.md``; ``security.md`` §5). The local file
headers are checked against the central directory, and entries may not overlap (the
non-recursive "better zip bomb"; CPython only detects that from 3.11.8/3.12.2 on).

:mod:`zipfile` reads the central directory. The member data is then taken straight from the
checked layout and inflated by :mod:`zlib` with a bound (what ``ZipFile.open`` would do, without
its per-member file object, second local-header read and 4 KiB read loop), and it must match
the central directory's size and CRC-32 exactly.
"""

from __future__ import annotations

import io
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gateway.errors import PackageError, PackageTooLarge
from gateway.models import Limits

MANIFEST_MEMBER = "kousei.xml"
_UTF8_FLAG = 0x800
_ENCRYPTED_FLAGS = 0x1 | 0x40  # traditional PKWARE encryption, strong encryption
_PATCHED_DATA_FLAG = 0x20  # "compressed patched data": zipfile cannot read it either
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_MAGIC = b"PK\x03\x04"
_ALLOWED_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_DOS_DIRECTORY = 0x10
_RATIO_FLOOR = 1024 * 1024
"""Below this many inflated bytes a high ratio is normal (a short, repetitive XML file)."""
_MAX_NAME_BYTES = 255
_FORBIDDEN_NAME_CHAR = re.compile(r"[\\:#?\x00-\x1f\x7f]")
_DOT_OR_EMPTY_SEGMENT = re.compile(r"(?:\A|/)\.{0,2}(?:/|\Z)")
"""A path segment that is empty (a leading, doubled or trailing ``/``), ``.`` or ``..``."""
_BAD_NAME = re.compile(f"{_FORBIDDEN_NAME_CHAR.pattern}|{_DOT_OR_EMPTY_SEGMENT.pattern}")
"""Either of the two above: one search clears a good name (every name of every package)."""
_MAX_CHARS_WITHIN_NAME_BYTES = _MAX_NAME_BYTES // 4
"""No name of this many characters or fewer can exceed :data:`_MAX_NAME_BYTES` in UTF-8."""
_FILE_TYPES = frozenset({0, stat.S_IFREG})
"""Unix file types a member may declare (none, or a regular file)."""
_ARCHIVE_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08", b"\x1f\x8b", b"7z\xbc\xaf\x27\x1c",
                   b"Rar!\x1a\x07", b"\xfd7zXZ\x00", b"BZh")


@dataclass(frozen=True)
class RawPackage:
    """The members of a package, as read; nothing here is verified yet."""

    members: Mapping[str, bytes]
    """Member name -> exact bytes, in archive (central directory) order."""
    names: tuple[str, ...]


def read_package(data: bytes, limits: Limits) -> RawPackage:
    """Read and check the archive ``data`` under ``limits``.

    :raises PackageTooLarge: ``package-too-large``, ``package-too-many-members``,
        ``package-member-too-large``, ``package-bomb`` (HTTP 413).
    :raises PackageError: ``package-not-zip``, ``package-corrupt``,
        ``package-path``, ``package-symlink``, ``package-duplicate-name``, ``package-encrypted``,
        ``package-compression``, ``package-nested-archive``, ``package-overlapping-entries``,
        ``package-header-mismatch``, ``package-filename-encoding``, ``package-missing-manifest``.
    """
    if len(data) > limits.max_package_bytes:
        raise PackageTooLarge(f"申請パッケージが上限（{limits.max_package_bytes} バイト）を超えています",
                              code="package-too-large")
    if not data.startswith(_LOCAL_MAGIC):
        # Also refuses data in front of the archive (self-extractors, PDF+ZIP polyglots).
        raise PackageError("ZIP 形式ではありません", code="package-not-zip")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except UnicodeDecodeError as exc:
        raise PackageError("ファイル名が UTF-8 ではありません", code="package-filename-encoding") from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, struct.error,
            NotImplementedError) as exc:
        # NotImplementedError: a "version needed to extract" above what zipfile reads (found by
        # fuzz/harness.py: it was an HTTP 500, and the refusal went unrecorded).
        raise PackageError("ZIP 形式ではありません", code="package-not-zip") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_members:
            raise PackageTooLarge(f"メンバー数が上限（{limits.max_members}）を超えています",
                                  code="package-too-many-members")
        _check_entries(infos, limits)
        starts = _check_layout(data, infos, archive.start_dir)
    members = _read_members(data, infos, starts, limits)
    if MANIFEST_MEMBER not in members:
        raise PackageError("kousei.xml（構成管理情報）がありません", code="package-missing-manifest")
    return RawPackage(members=MappingProxyType(members), names=tuple(members))


def _check_entries(infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    """Names, types, flags and declared sizes, from the central directory alone."""
    seen: set[str] = set()
    declared_total = 0
    max_member_bytes, max_total = limits.max_member_bytes, limits.max_uncompressed_bytes
    for info in infos:
        name = info.orig_filename
        if not (info.flag_bits & _UTF8_FLAG or name.isascii()):
            raise PackageError(f"ファイル名が UTF-8 ではありません: {name!r}", code="package-filename-encoding")
        _check_name(info, name)
        if name in seen:
            raise PackageError(f"同じ名前のメンバーが複数あります: {name}", code="package-duplicate-name")
        seen.add(name)
        if info.flag_bits & _ENCRYPTED_FLAGS:
            raise PackageError(f"暗号化されたメンバーは受け付けません: {name}", code="package-encrypted")
        if info.compress_type not in _ALLOWED_METHODS:
            raise PackageError(f"対応していない圧縮方式です: {name}", code="package-compression")
        # Honest headers fail fast here; dishonest ones are caught by the bounded read.
        if info.file_size > max_member_bytes:
            raise PackageTooLarge(f"メンバーが上限を超えています: {name}", code="package-member-too-large")
        declared_total += info.file_size
        if declared_total > max_total:
            raise PackageTooLarge("展開後の合計サイズが上限を超えています", code="package-too-large")


def _check_name(info: zipfile.ZipInfo, name: str) -> None:
    """``name``: ``info.orig_filename``."""
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_ISLNK(mode):
        raise PackageError(f"シンボリックリンクは受け付けません: {name}", code="package-symlink")
    problem = ""
    if name != info.filename or not name:
        problem = "NUL 文字を含むか空です"
    elif name[-1] == "/" or info.external_attr & _DOS_DIRECTORY or stat.S_IFMT(mode) not in _FILE_TYPES:
        problem = "ディレクトリまたは通常ファイル以外です"  # name[-1] == "/": info.is_dir()
    elif len(name) > _MAX_CHARS_WITHIN_NAME_BYTES and len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        problem = "長すぎます"
    elif not _BAD_NAME.search(name):
        return
    elif _FORBIDDEN_NAME_CHAR.search(name):
        problem = "使用できない文字（\\ : # ? 制御文字）を含みます"
    elif _DOT_OR_EMPTY_SEGMENT.search(name):
        problem = "絶対パスまたは . / .. を含みます"
    if problem:
        raise PackageError(f"メンバー名が不正です（{problem}）: {name!r}", code="package-path")


def _check_layout(data: bytes, infos: list[zipfile.ZipInfo], central_directory_at: int) -> list[int]:
    """Local headers agree with the central directory; entries neither overlap nor leave the data.

    :returns: Where each member's (compressed) data begins, in ``infos`` order.
    """
    spans = []
    starts = []
    for info in infos:
        start = info.header_offset
        header = data[start:start + _LOCAL_HEADER.size]
        if len(header) != _LOCAL_HEADER.size:
            raise PackageError(f"ZIP のヘッダーが壊れています: {info.orig_filename}", code="package-corrupt")
        magic, _, flags, method, _, _, _, _, _, name_len, extra_len = _LOCAL_HEADER.unpack(header)
        raw_name = data[start + _LOCAL_HEADER.size:start + _LOCAL_HEADER.size + name_len]
        # The central directory's bytes: UTF-8, or CP437 without the flag, where _check_entries
        # has let only ASCII names through, which CP437 encodes as UTF-8 does (without a codec
        # lookup and a Python-level encoder: "cp437" costs more than the rest of the loop).
        central_name = info.orig_filename.encode("utf-8")
        if (magic != _LOCAL_MAGIC or raw_name != central_name or method != info.compress_type
                or (flags ^ info.flag_bits) & (_ENCRYPTED_FLAGS | _UTF8_FLAG)):
            raise PackageError(f"ローカルヘッダーと中央ディレクトリが一致しません: {info.orig_filename}",
                               code="package-header-mismatch")
        data_start = start + _LOCAL_HEADER.size + name_len + extra_len
        end = data_start + info.compress_size
        spans.append((start, end, info.orig_filename))
        starts.append(data_start)
    spans.sort()
    if spans and spans[0][0] != 0:
        raise PackageError("ZIP の先頭に余分なデータがあります", code="package-not-zip")
    for (_, end, name), (next_start, _, _) in zip(spans, spans[1:], strict=False):
        if next_start < end:
            raise PackageError(f"メンバーの領域が重なっています: {name}", code="package-overlapping-entries")
    if spans and spans[-1][1] > central_directory_at:
        raise PackageError("メンバーの領域が中央ディレクトリと重なっています", code="package-overlapping-entries")
    return starts


def _read_members(data: bytes, infos: list[zipfile.ZipInfo], starts: list[int],
                  limits: Limits) -> dict[str, bytes]:
    members: dict[str, bytes] = {}
    remaining = limits.max_uncompressed_bytes
    max_member_bytes, max_ratio = limits.max_member_bytes, limits.max_compression_ratio
    view = memoryview(data)
    for info, start in zip(infos, starts, strict=True):
        name = info.orig_filename
        ratio_bound = max(_RATIO_FLOOR, info.compress_size * max_ratio)
        bound = min(max_member_bytes, remaining, ratio_bound)
        content = _bounded_read(view, info, start, bound)
        if len(content) > bound:
            if len(content) > max_member_bytes:
                raise PackageTooLarge(f"メンバーが上限を超えています: {name}", code="package-member-too-large")
            if len(content) > remaining:
                raise PackageTooLarge("展開後の合計サイズが上限を超えています", code="package-too-large")
            raise PackageTooLarge(f"圧縮率が異常です（ZIP 爆弾の疑い）: {name}", code="package-bomb")
        if content.startswith(_ARCHIVE_MAGICS):
            raise PackageError(f"アーカイブの中にアーカイブは入れられません: {name}", code="package-nested-archive")
        remaining -= len(content)
        members[name] = content
    return members


def _bounded_read(view: memoryview, info: zipfile.ZipInfo, start: int, bound: int) -> bytes:
    """The member's bytes, never more than ``bound + 1`` of them (one more than allowed proves it
    too big), nor more than one byte beyond its declared size.

    What fits the bound must be exactly the central directory's size with its CRC-32.
    """
    if info.flag_bits & _PATCHED_DATA_FLAG:
        raise _corrupt(info)
    limit = min(bound, info.file_size) + 1
    compressed = view[start:start + info.compress_size]
    if info.compress_type == zipfile.ZIP_STORED:
        content = bytes(compressed[:limit])
    else:
        try:
            content = zlib.decompressobj(-zlib.MAX_WBITS).decompress(compressed, limit)
        except zlib.error as exc:
            raise _corrupt(info) from exc
    if len(content) > bound:
        return content  # refused by its size; nothing more is inflated
    if len(content) != info.file_size or zlib.crc32(content) != info.CRC:
        raise _corrupt(info)
    return content


def _corrupt(info: zipfile.ZipInfo) -> PackageError:
    return PackageError(f"メンバーを読み取れません（破損）: {info.orig_filename}", code="package-corrupt")
