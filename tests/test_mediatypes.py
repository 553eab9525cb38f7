"""Attachments must be a plain file of their declared type: right start, right end, no ZIP inside."""

from __future__ import annotations

import io
import zipfile

import pytest

from gateway.mediatypes import attachment_problem
from gateway.sampleset import minimal_pdf

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(40) + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(30) + b"\x00\x00\x00\x00IEND\xaeB`\x82"
PDF = minimal_pdf("sample")


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.html", "<script>alert(1)</script>")
    return out.getvalue()


@pytest.mark.parametrize("media_type, data", [("application/pdf", PDF), ("image/jpeg", JPEG),
                                              ("image/jpeg", JPEG + b"\r\n"), ("image/png", PNG)])
def test_plain_files_pass(media_type: str, data: bytes) -> None:
    assert attachment_problem(media_type, data) is None


@pytest.mark.parametrize("media_type, data, says", [
    ("application/pdf", JPEG, "先頭"),
    ("image/png", PDF, "先頭"),
    ("application/pdf", PDF.replace(b"%%EOF", b"%%EOX"), "末尾"),
    ("image/jpeg", JPEG + zip_bytes(), "末尾"),
    ("image/png", PNG + b"<html>", "末尾"),
    ("application/pdf", PDF + zip_bytes() + b"\n%%EOF\n", "ZIP"),
    ("application/pdf", PDF[:-6] + zip_bytes() + PDF[-6:], "ZIP"),
    ("text/html", b"<html>", "メディア型"),
])
def test_lies_and_polyglots_are_named(media_type: str, data: bytes, says: str) -> None:
    problem = attachment_problem(media_type, data)
    assert problem is not None and says in problem


@pytest.mark.parametrize("size", [0, 3, 4, 5, 1023, 1024, 1025, 2047, 2048, 2049, 65556, 65557, 65558, 70000,
                                  131114, 131115, 131116])
@pytest.mark.parametrize("at", ["start", "edge-in", "edge-out", "end"])
def test_tails_are_searched_exactly_as_a_slice_would(size: int, at: str) -> None:
    # The tail windows (PDF's %%EOF, a ZIP's end record) are searched in place: the same
    # verdict as searching a copy of the last bytes, on both sides of each window's edge.
    from gateway.mediatypes import _in_tail

    for needle, window in ((b"%%EOF", 1024), (b"PK\x05\x06", 22 + 0xFFFF)):
        data = bytearray(b"x" * size)
        where = {"start": 0, "edge-in": size - window, "edge-out": size - window - 1, "end": size - len(needle)}[at]
        if 0 <= where <= size - len(needle):
            data[where:where + len(needle)] = needle
        data = bytes(data)
        assert _in_tail(needle, data, window) is (needle in data[-window:])
