"""Is an attachment what its declared media type says, and only that?

The manifest declares each attachment's media type (``application/pdf``, ``image/jpeg``,
``image/png``). A core system or a staff member's viewer opens the file by that type, so the
bytes must begin *and* end like that format, and must not also be a ZIP archive: a file that
is a valid PDF to one reader and a ZIP (with HTML or an executable inside) to another is a
polyglot, the classic way to smuggle content past a type check.

This is a shape check, not a parser: it never interprets the document, it costs a few
microseconds, and anything it accepts is still only ever stored and passed on as bytes.
"""

from __future__ import annotations

_PDF_TRAILER_WINDOW = 1024
"""PDF readers look for ``%%EOF`` within the last 1,024 bytes (ISO 32000-1, 7.5.5 and common practice)."""
_ZIP_END_RECORD = b"PK\x05\x06"
_ZIP_END_WINDOW = 22 + 0xFFFF
"""A ZIP reader finds the end-of-central-directory record within its size plus the longest comment."""
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_WHITESPACE = b"\x00\t\n\r\x0c "


def attachment_problem(media_type: str, data: bytes) -> str | None:
    """Why ``data`` is not a plain file of ``media_type`` (Japanese, for the refusal), or None."""
    shape = _SHAPES.get(media_type)
    if shape is None:
        return f"受け付けないメディア型です（{media_type}）"
    head, ends_well = shape
    if not data.startswith(head):
        return "先頭がメディア型の形式と一致しません"
    if not ends_well(data):
        return "末尾がメディア型の形式と一致しません（後ろに別のデータが付いています）"
    if _in_tail(_ZIP_END_RECORD, data, _ZIP_END_WINDOW):
        return "ZIP アーカイブを含んでいます（複数の形式として読めるファイルは受け付けません）"
    return None


def _in_tail(needle: bytes, data: bytes, window: int) -> bool:
    """``needle in data[-window:]``, without copying the tail (up to 64 KiB) first."""
    return data.find(needle, max(0, len(data) - window)) != -1


def _pdf_ends_well(data: bytes) -> bool:
    return _in_tail(b"%%EOF", data, _PDF_TRAILER_WINDOW)


def _jpeg_ends_well(data: bytes) -> bool:
    return data.rstrip(_WHITESPACE).endswith(b"\xff\xd9")


def _png_ends_well(data: bytes) -> bool:
    return data.endswith(_PNG_END)


_SHAPES = {
    "application/pdf": (b"%PDF-", _pdf_ends_well),
    "image/jpeg": (b"\xff\xd8\xff", _jpeg_ends_well),
    "image/png": (b"\x89PNG\r\n\x1a\n", _png_ends_well),
}
