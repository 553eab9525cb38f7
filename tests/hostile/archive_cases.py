"""Builders for the archive attacks (security.md §5, cases 58-64), MIME lies and polyglots.

Archive attacks are raw ZIPs around a valid package's members: the archive reader must
refuse them before any XML is parsed. MIME lies are *signed* by the resident, so only the
attachment check stands between them and a core system.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zipfile
import zlib

from tests.hostile.kit import KOUSEI, Kit, make_zip, patch_both_headers, set_sizes, valid_entries

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64) + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def _with_extra(name: str | zipfile.ZipInfo, data: bytes):
    return lambda kit: make_zip([*valid_entries(kit), (name, data)])


zip_slip = _with_extra("../../../../tmp/evil.pdf", PDF)
zip_absolute_name = _with_extra("/etc/cron.d/evil", PDF)
zip_backslash_slip = _with_extra("..\\..\\evil.pdf", PDF)
zip_drive_letter = _with_extra("C:\\Windows\\evil.pdf", PDF)
zip_directory_entry = _with_extra("添付/", b"")
zip_nested_zip = _with_extra("inner.pdf", make_zip([("kousei.xml", b"<DataRoot/>")]))
zip_nested_gzip = _with_extra("inner.pdf", b"\x1f\x8b\x08\x00" + bytes(16))


def zip_symlink(kit: Kit) -> bytes:
    info = zipfile.ZipInfo("link.pdf")
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    return make_zip([*valid_entries(kit), (info, b"/etc/passwd")])


def zip_duplicate_form(kit: Kit) -> bytes:
    """The signed form, then a second entry with the same name and other content."""
    entries = valid_entries(kit)
    form = next(d for n, d in entries if n.endswith("01.xml"))
    return make_zip([*entries, ("childcare-01.xml", form.replace(b"</", b"<!--x--></", 1))])


def zip_duplicate_manifest(kit: Kit) -> bytes:
    entries = valid_entries(kit)
    return make_zip([*entries, (KOUSEI, entries[0][1])])


def zip_ratio_bomb(kit: Kit) -> bytes:
    """5 MB of zeros (deflates ~1000x) under an attachment name: over the ratio of 200."""
    return make_zip([*valid_entries(kit), ("bomb.pdf", b"%PDF" + bytes(5 * 1024 * 1024))])


@functools.lru_cache(maxsize=None)
def _deflated_zeros(size: int) -> tuple[bytes, int]:
    """``size`` zero bytes as a raw deflate stream, and their CRC (once per run).

    Each MiB is compressed after a full flush, which resets the compressor: every block is
    the same ~1 KB, so the stream is one block repeated, never 1 GiB in memory.
    """
    chunk = bytes(1024 * 1024)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    return block * (size // len(chunk)) + compressor.flush(), crc


def _with_deflated_member(kit: Kit, name: str, size: int) -> bytes:
    """The valid entries plus member ``name``: ``size`` zeros, written from the cached raw stream."""
    raw, crc = _deflated_zeros(size)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry, data in valid_entries(kit):
            archive.writestr(entry, data)
        info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
        info.compress_type, info.CRC, info.compress_size, info.file_size = zipfile.ZIP_DEFLATED, crc, len(raw), size
        info.header_offset = buffer.tell()
        buffer.write(info.FileHeader(zip64=False) + raw)
        archive.filelist.append(info)
        archive.NameToInfo[name] = info
        archive.start_dir = buffer.tell()
    return buffer.getvalue()


def zip_gib_bomb_honest(kit: Kit) -> bytes:
    """1 GiB of zeros (~1 MB deflated), sizes declared honestly."""
    return _with_deflated_member(kit, "bomb.pdf", 1024 ** 3)


def zip_gib_bomb_lying(kit: Kit) -> bytes:
    """The same 1 GiB member, both headers claiming it inflates to 1,000 bytes (zipfile stops
    there and the CRC cannot match: corrupt, and nothing beyond the claim is inflated)."""
    data = zip_gib_bomb_honest(kit)
    return patch_both_headers(data, b"bomb.pdf", lambda b, at, central: set_sizes(b, at, central, uncompressed=1000))


def zip_total_size(kit: Kit) -> bytes:
    """Three 8 MB attachments that compress ~100x each: 24 MB in total, over the 20 MB limit."""
    block = random.Random(7).randbytes(16 * 1024)
    member = b"%PDF" + block * (8 * 1024 * 1024 // len(block))
    return make_zip([*valid_entries(kit), *((f"big{i}.pdf", member) for i in range(3))])


def zip_overlapping_entries(kit: Kit) -> bytes:
    """Fifield's non-recursive bomb shape: a central directory entry points inside another's data."""
    kousei = valid_entries(kit)[0][1]
    local_kousei = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, zlib.crc32(kousei), len(kousei),
                               len(kousei), len(KOUSEI), 0) + KOUSEI.encode() + kousei
    inner_data = b"%PDF-inner"
    inner_local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, zlib.crc32(inner_data), len(inner_data),
                              len(inner_data), 5, 0) + b"b.pdf" + inner_data
    a_offset = len(local_kousei)
    a_local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, zlib.crc32(inner_local), len(inner_local),
                          len(inner_local), 5, 0) + b"a.pdf" + inner_local
    body = local_kousei + a_local
    central = (_central(KOUSEI.encode(), 0, kousei)
               + _central(b"a.pdf", a_offset, inner_local) + _central(b"b.pdf", a_offset + 35, inner_data))
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 3, 3, len(central), len(body), 0)
    return body + central + end


def _central(name: bytes, offset: int, data: bytes) -> bytes:
    return struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, zlib.crc32(data), len(data), len(data),
                       len(name), 0, 0, 0, 0, 0o100644 << 16, offset) + name


def zip_encrypted_member(kit: Kit) -> bytes:
    data = make_zip(valid_entries(kit))

    def encrypt(buffer: bytearray, at: int, central: bool) -> None:
        buffer[at + (8 if central else 6)] |= 0x1

    return patch_both_headers(data, b"childcare-01.xml", encrypt)


def zip_too_many_entries(kit: Kit) -> bytes:
    return make_zip([*valid_entries(kit), *((f"p{i:05d}.pdf", b"%PDF") for i in range(10_000))],
                    compression=zipfile.ZIP_STORED)


def zip_header_mismatch(kit: Kit) -> bytes:
    """The local header names another file than the central directory (different readers, different files)."""
    data = bytearray(make_zip(valid_entries(kit)))
    at = data.find(b"childcare-01.xml")  # the local header's copy comes first
    data[at:at + 5] = b"evil_"
    return bytes(data)


def zip_unsupported_version(kit: Kit) -> bytes:
    """The central directory says version 23.5 is needed to extract the form: zipfile raises
    NotImplementedError, which was an HTTP 500 until the fuzzer found it."""
    def version(buffer: bytearray, at: int, central: bool) -> None:
        if central:
            buffer[at + 6:at + 8] = struct.pack("<H", 235)

    return patch_both_headers(make_zip(valid_entries(kit)), b"childcare-01.xml", version)


def zip_bzip2(kit: Kit) -> bytes:
    return make_zip(valid_entries(kit), compression=zipfile.ZIP_BZIP2)


def zip_truncated(kit: Kit) -> bytes:
    data = kit.package()
    return data[: data.rfind(b"PK\x01\x02") + 10]


def zip_corrupt_member(kit: Kit) -> bytes:
    data = bytearray(kit.package())
    at = data.find(b"childcare-01.xml") + len("childcare-01.xml") + 20  # inside the deflate stream
    data[at] ^= 0xFF
    return bytes(data)


def zip_sjis_name(kit: Kit) -> bytes:
    sjis = "添付書類.pdf".encode("cp932")
    placeholder = "x" * len(sjis)
    data = make_zip([*valid_entries(kit), (placeholder, PDF)])
    return data.replace(placeholder.encode(), sjis)


def zip_missing_manifest(kit: Kit) -> bytes:
    return make_zip(valid_entries(kit)[1:])


def pdf_before_zip(kit: Kit) -> bytes:
    """A PDF+ZIP polyglot package (data in front of the archive, as self-extractors have)."""
    return PDF + kit.package()


def not_a_zip(kit: Kit) -> bytes:
    return PDF


def oversized_body(kit: Kit) -> bytes:
    return kit.package() + random.Random(1).randbytes(10 * 1024 * 1024)


# --------------------------------------------------------------------------- MIME lies, polyglots (signed)


def attachment(content: bytes | None = None, media_type: str | None = None):
    """The first sample attachment with other ``content`` and/or declared ``media_type``, signed."""
    def build(kit: Kit) -> bytes:
        attachments = kit.sample_attachments
        name, (title, declared, data) = next(iter(attachments.items()))
        attachments[name] = (title, media_type or declared, data if content is None else content)
        return kit.package(attachments=attachments)
    return build


def polyglot(prefix: bytes, media_type: str):
    """``prefix`` (a whole small file of ``media_type``) with a ZIP appended: a valid ZIP to most readers."""
    def build(kit: Kit) -> bytes:
        inner = make_zip([("payload.html", b"<script>alert(1)</script>")])
        return attachment(prefix + inner, media_type)(kit)
    return build


def polyglot_hidden_trailer(kit: Kit) -> bytes:
    """A PDF that still *ends* with ``%%EOF``: the ZIP's end record declares the PDF trailer as its
    comment, so checking the last bytes alone does not find the archive."""
    trailer = b"\n%%EOF\n"
    inner = bytearray(make_zip([("payload.html", b"<script>alert(1)</script>")]))
    inner[-2:] = struct.pack("<H", len(trailer))  # end-of-central-directory comment length
    return attachment(PDF + bytes(inner) + trailer, "application/pdf")(kit)


HTML = b"<!DOCTYPE html><html><body><script>fetch('/api')</script></body></html>"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(48) + b"PE\x00\x00"
