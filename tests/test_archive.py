"""The in-memory archive reader: limits, bombs, paths, headers (security.md §5, cases 58-62)."""

from __future__ import annotations

import io
import itertools
import struct
import warnings
import zipfile
import zlib

import pytest

from gateway import archive
from gateway.archive import RawPackage, read_package
from gateway.errors import PackageError, PackageTooLarge
from gateway.models import Limits

KOUSEI = b'<?xml version="1.0" encoding="UTF-8"?>\n<DataRoot/>\n'
LIMITS = Limits()


def make_zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names some tests need
        with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return buffer.getvalue()


def refused(data: bytes, limits: Limits = LIMITS) -> PackageError:
    with pytest.raises(PackageError) as info:
        read_package(data, limits)
    return info.value


def test_reads_members_in_archive_order_without_touching_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = make_zip([("kousei.xml", KOUSEI), ("childcare-01.xml", b"<f/>"), ("健康保険証.pdf", b"%PDF-1.4")])
    package = read_package(data, LIMITS)
    assert isinstance(package, RawPackage)
    assert package.names == ("kousei.xml", "childcare-01.xml", "健康保険証.pdf")
    assert list(package.members) == list(package.names)
    assert package.members["健康保険証.pdf"] == b"%PDF-1.4"
    with pytest.raises(TypeError):
        package.members["x"] = b""  # type: ignore[index]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("data", [b"", b"not a zip", b"PK\x03\x04truncated", KOUSEI])
def test_not_a_zip(data):
    assert refused(data).code == "package-not-zip"


def test_data_in_front_of_the_archive_is_refused():  # PDF+ZIP polyglot, self-extractor
    assert refused(b"%PDF-1.4\n" + make_zip([("kousei.xml", KOUSEI)])).code == "package-not-zip"


def test_missing_manifest():
    assert refused(make_zip([("childcare-01.xml", b"<f/>")])).code == "package-missing-manifest"


def test_package_size_limits_are_413():
    data = make_zip([("kousei.xml", KOUSEI), ("a.pdf", b"%PDF" + bytes(range(256)) * 40)])
    err = refused(data, Limits(max_package_bytes=len(data) - 1))
    assert isinstance(err, PackageTooLarge) and err.status == 413 and err.code == "package-too-large"
    many = make_zip([("kousei.xml", KOUSEI)] + [(f"{i}.pdf", b"%PDF") for i in range(21)])
    err = refused(many)
    assert err.status == 413 and err.code == "package-too-many-members"


def test_member_and_total_uncompressed_limits():
    big = bytes(range(256)) * 4096  # 1 MiB, incompressible enough
    err = refused(make_zip([("kousei.xml", KOUSEI), ("a.pdf", big)]), Limits(max_member_bytes=len(big) - 1))
    assert err.status == 413 and err.code == "package-member-too-large"
    err = refused(make_zip([("kousei.xml", KOUSEI), ("a.pdf", big), ("b.pdf", big)]),
                  Limits(max_uncompressed_bytes=len(big) + 1000))
    assert err.status == 413 and err.code == "package-too-large"


def test_declared_sizes_are_not_trusted():
    """A header that understates the size does not let more than the limit be inflated."""
    payload = b"\0" * (3 * 1024 * 1024)
    data = bytearray(make_zip([("kousei.xml", KOUSEI), ("a.pdf", payload)]))
    lie = struct.pack("<I", 100)
    cd = data.rfind(b"PK\x01\x02")  # the a.pdf central directory entry
    data[cd + 24:cd + 28] = lie  # uncompressed size
    local = data.find(b"PK\x03\x04", 1)
    data[local + 22:local + 26] = lie
    err = refused(bytes(data), Limits(max_member_bytes=1024 * 1024))
    assert err.code in ("package-corrupt", "package-member-too-large", "package-bomb")


def test_compression_bomb_is_refused():
    zeros = b"\0" * (5 * 1024 * 1024)  # inflates ~1000x: far beyond the ratio of 200
    err = refused(make_zip([("kousei.xml", KOUSEI), ("bomb.pdf", zeros)]))
    assert err.code == "package-bomb" and err.status == 413
    # A small, repetitive file is not a bomb (below the 1 MiB floor).
    read_package(make_zip([("kousei.xml", KOUSEI), ("form.xml", b"<a>" + b" " * 500_000 + b"</a>")]), LIMITS)


@pytest.mark.parametrize("name", [
    "../evil.xml", "a/../../evil.xml", "/etc/passwd", "a\\b.pdf", "C:evil.pdf", "c:\\x.pdf", "dir/", "a//b.pdf",
    "./a.pdf", "#構成情報", "http://x/a.pdf", "a?.pdf", "tab\tname.pdf", "x" * 300,
])
def test_bad_member_names(name):  # case 58
    assert refused(make_zip([("kousei.xml", KOUSEI), (name, b"%PDF")])).code == "package-path"


@pytest.mark.parametrize("name, problem", [
    ("dir/", "ディレクトリまたは通常ファイル以外です"),
    ("x" * 256, "長すぎます"),
    ("あ" * 86, "長すぎます"),  # 258 bytes in UTF-8
    ("\U0001f600" * 64, "長すぎます"),  # 64 characters, 256 bytes
    ("a\x7f.pdf", "使用できない文字"),
    ("a/../b:c.pdf", "使用できない文字"),  # the characters are judged before the segments
    ("a/./b.pdf", "絶対パスまたは . / .. を含みます"),
    ("a/b/..", "絶対パスまたは . / .. を含みます"),
    ("..", "絶対パスまたは . / .. を含みます"),
])
def test_a_bad_name_is_refused_for_its_first_problem(name, problem):
    err = refused(make_zip([("kousei.xml", KOUSEI), (name, b"%PDF")]))
    assert err.code == "package-path" and problem in err.detail


def test_the_name_patterns_are_their_plain_definitions():
    """The two regular expressions say exactly what the character set and the split said before."""
    forbidden = frozenset("\\:#?") | {chr(c) for c in range(0x20)} | {"\x7f"}
    for code in range(0x110000):
        assert bool(archive._FORBIDDEN_NAME_CHAR.search(f"a{chr(code)}b")) == (chr(code) in forbidden)
        # _BAD_NAME, which clears good names in one search, is the two patterns together.
        assert bool(archive._BAD_NAME.search(f"a{chr(code)}b")) == (chr(code) in forbidden)
    for length in range(8):
        for letters in itertools.product("a./\n", repeat=length):
            name = "".join(letters)
            plain = name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/"))
            assert bool(archive._DOT_OR_EMPTY_SEGMENT.search(name)) == plain, repr(name)
            assert bool(archive._BAD_NAME.search(name)) == (plain or "\n" in name), repr(name)
    # _check_layout encodes the central directory's names as UTF-8: names without the UTF-8
    # flag get there only when ASCII (_check_entries), which CP437 encodes the same.
    assert all(chr(code).encode("cp437") == chr(code).encode("utf-8") for code in range(0x80))
    # A name short enough in characters is never too long in UTF-8 (4 bytes a character at most).
    assert len(chr(0x10FFFF).encode("utf-8")) == 4
    assert 4 * archive._MAX_CHARS_WITHIN_NAME_BYTES <= archive._MAX_NAME_BYTES


@pytest.mark.parametrize("name", ["a.pdf", "dir/a.pdf", "a..b/c.d.pdf", "...", ".a/b.", "健康保険証.pdf",
                                  "x" * 255, "あ" * 85, "\U0001f600" * 63])
def test_good_member_names(name):
    assert read_package(make_zip([("kousei.xml", KOUSEI), (name, b"%PDF")]), LIMITS).names[-1] == name


def test_nul_in_a_name_is_refused():
    data = bytearray(make_zip([("kousei.xml", KOUSEI), ("aaaaa.pdf", b"%PDF")]))
    for at in (data.find(b"aaaaa.pdf"), data.rfind(b"aaaaa.pdf")):
        data[at + 1] = 0
    assert refused(bytes(data)).code == "package-path"


def test_symlink_is_refused():
    info = zipfile.ZipInfo("link.pdf")
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    assert refused(make_zip([("kousei.xml", KOUSEI), (info, b"/etc/passwd")])).code == "package-symlink"


def test_duplicate_names_are_refused():  # case 62
    data = make_zip([("kousei.xml", KOUSEI), ("a.pdf", b"%PDF-1"), ("a.pdf", b"%PDF-2")])
    assert refused(data).code == "package-duplicate-name"


def test_encrypted_members_are_refused():  # case 64
    data = bytearray(make_zip([("kousei.xml", KOUSEI), ("a.pdf", b"%PDF")]))
    local, central = data.find(b"PK\x03\x04", 1), data.rfind(b"PK\x01\x02")
    data[local + 6] |= 0x1  # general purpose flag: encrypted (zipfile's writer clears it)
    data[central + 8] |= 0x1
    assert refused(bytes(data)).code == "package-encrypted"


def test_only_stored_and_deflated():
    data = make_zip([("kousei.xml", KOUSEI), ("a.pdf", b"%PDF" * 100)], compression=zipfile.ZIP_BZIP2)
    assert refused(data).code == "package-compression"


@pytest.mark.parametrize("inner", [make_zip([("x.txt", b"x")]), b"\x1f\x8b\x08\x00gzip", b"7z\xbc\xaf\x27\x1crest"])
def test_nested_archives_are_refused(inner):  # case 59
    assert refused(make_zip([("kousei.xml", KOUSEI), ("a.pdf", inner)])).code == "package-nested-archive"


def test_local_header_name_differs_from_central_directory():  # case 62
    data = bytearray(make_zip([("kousei.xml", KOUSEI), ("aaaa.pdf", b"%PDF")]))
    local = data.find(b"aaaa.pdf")
    data[local:local + 4] = b"bbbb"
    assert refused(bytes(data)).code == "package-header-mismatch"


def test_non_utf8_names_are_refused():
    # A Shift_JIS name without the UTF-8 flag: zipfile would read it as cp437 mojibake.
    sjis = "申請書.pdf".encode("cp932")
    data = bytearray(make_zip([("kousei.xml", KOUSEI), ("x" * len(sjis), b"%PDF")]))
    for at in (data.find(b"x" * len(sjis)), data.rfind(b"x" * len(sjis))):
        data[at:at + len(sjis)] = sjis
    assert refused(bytes(data)).code == "package-filename-encoding"


def test_invalid_utf8_name_with_the_utf8_flag_is_refused():
    data = bytearray(make_zip([("kousei.xml", KOUSEI), ("申.pdf", b"%PDF")]))
    name = "申".encode()
    for at in (data.find(name), data.rfind(name)):
        data[at:at + 3] = b"\xff\xfe\xfd"
    assert refused(bytes(data)).code == "package-filename-encoding"


def test_corrupt_member_data():
    data = bytearray(make_zip([("kousei.xml", KOUSEI), ("a.pdf", b"%PDF" + bytes(range(256)) * 8)]))
    local = data.find(b"a.pdf")
    data[local + 20] ^= 0xFF  # inside the deflate stream
    assert refused(bytes(data)).code == "package-corrupt"


def _central_entry(name: bytes, offset: int, compressed: int, size: int, crc: int, method: int) -> bytes:
    return struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc, compressed, size,
                       len(name), 0, 0, 0, 0, 0o100644 << 16, offset) + name


def test_overlapping_entries_are_refused():  # case 60 (Fifield's non-recursive bomb)
    """Two central directory entries whose data overlaps: the second points inside the first."""
    kousei_local = make_zip([("kousei.xml", KOUSEI)], compression=zipfile.ZIP_STORED)
    kousei_local = kousei_local[:kousei_local.find(b"PK\x01\x02")]
    inner = make_zip([("b.pdf", b"%PDF-inner")], compression=zipfile.ZIP_STORED)
    inner_local = inner[:inner.find(b"PK\x01\x02")]
    a_name = b"a.pdf"
    a_offset = len(kousei_local)
    a_local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, zlib.crc32(inner_local), len(inner_local),
                          len(inner_local), len(a_name), 0) + a_name + inner_local
    b_offset = a_offset + 30 + len(a_name)  # the inner local header, inside a.pdf's data
    body = kousei_local + a_local
    central = (_central_entry(b"kousei.xml", 0, len(KOUSEI), len(KOUSEI), zlib.crc32(KOUSEI), 0)
               + _central_entry(a_name, a_offset, len(inner_local), len(inner_local), zlib.crc32(inner_local), 0)
               + _central_entry(b"b.pdf", b_offset, 10, 10, zlib.crc32(b"%PDF-inner"), 0))
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 3, 3, len(central), len(body), 0)
    assert refused(body + central + end).code == "package-overlapping-entries"


def _patch_sizes_and_crc(data: bytes, name: bytes, *, size: int | None = None, crc: int | None = None) -> bytes:
    """Rewrite ``name``'s declared size and/or CRC-32 in both its local and central headers."""
    out = bytearray(data)
    local = out.rfind(b"PK\x03\x04", 0, out.find(name))
    central = out.rfind(b"PK\x01\x02", 0, out.rfind(name))
    for header, crc_at, size_at in ((local, 14, 22), (central, 16, 24)):
        if crc is not None:
            out[header + crc_at:header + crc_at + 4] = struct.pack("<I", crc)
        if size is not None:
            out[header + size_at:header + size_at + 4] = struct.pack("<I", size)
    return bytes(out)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_member_must_match_its_declared_crc(compression):
    body = b"%PDF" + bytes(range(256)) * 8
    data = make_zip([("kousei.xml", KOUSEI), ("a.pdf", body)], compression=compression)
    assert refused(_patch_sizes_and_crc(data, b"a.pdf", crc=zlib.crc32(body) ^ 1)).code == "package-corrupt"


def test_member_must_have_exactly_its_declared_size():
    """Shorter than declared, with the right CRC-32: not the member the directory describes."""
    body = b"%PDF" + bytes(range(256)) * 8
    data = make_zip([("kousei.xml", KOUSEI), ("a.pdf", body)])
    assert refused(_patch_sizes_and_crc(data, b"a.pdf", size=len(body) + 1)).code == "package-corrupt"
    assert refused(_patch_sizes_and_crc(data, b"a.pdf", size=len(body) - 1)).code == "package-corrupt"


def test_compressed_patched_data_is_refused():
    data = bytearray(make_zip([("kousei.xml", KOUSEI), ("a.pdf", b"%PDF")]))
    local, central = data.find(b"PK\x03\x04", 1), data.rfind(b"PK\x01\x02")
    data[local + 6] |= 0x20
    data[central + 8] |= 0x20
    assert refused(bytes(data)).code == "package-corrupt"
