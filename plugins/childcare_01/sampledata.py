"""Sample forms and attachments of childcare-01, for tests and ``gateway sample``.

Every sample is fictitious: names are 見本, 個人番号 are made-up digits whose check digit
alone is right (``gateway.identifiers.make_my_number``). Each ``invalid-*.xml`` has an
``invalid-*.expected.json`` listing exactly the problems (code and path) it must produce.
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway.models import Sample

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
DEFAULT_VARIANT = "valid-two-children"

HEALTH = ("hoken.pdf", "健康保険の資格確認書類")
SEPARATION = ("bekkyo.pdf", "別居監護申立書")

# Which attachments go with which sample; anything not listed has none.
_ATTACHMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "valid-two-children": (HEALTH, SEPARATION),
    "invalid-mynumber": (HEALTH, SEPARATION),
    "invalid-separated": (HEALTH, SEPARATION),
}


def sample_variants() -> list[str]:
    """Names of all samples (file stems), valid ones first."""
    names = sorted(p.stem for p in SAMPLES_DIR.glob("*.xml"))
    return [n for n in names if n.startswith("valid")] + [n for n in names if not n.startswith("valid")]


def _resolve(variant: str) -> str:
    name = DEFAULT_VARIANT if variant == "valid" else variant
    if not (SAMPLES_DIR / f"{name}.xml").is_file():
        raise KeyError(f"childcare-01 に見本 {variant!r} はありません（{', '.join(sample_variants())}）")
    return name


def sample_form(variant: str = "valid") -> bytes:
    """The form bytes of a sample (``valid`` is the two-children sample)."""
    return (SAMPLES_DIR / f"{_resolve(variant)}.xml").read_bytes()


def sample_attachments(variant: str = "valid") -> dict[str, tuple[str, str, bytes]]:
    """``{filename: (添付書類名称, media type, bytes)}`` for a sample: tiny real PDFs."""
    return {filename: (title, "application/pdf", minimal_pdf(f"SAMPLE {filename} (fictitious)"))
            for filename, title in _ATTACHMENTS.get(_resolve(variant), ())}


def sample(variant: str = "valid") -> Sample:
    """The sample as ``gateway sample`` and the tests take it (``Procedure.sample``)."""
    return Sample(form_xml=sample_form(variant), attachments=sample_attachments(variant))


def expected_problems(variant: str) -> list[dict[str, str]]:
    """The ``{code, path}`` problems an invalid sample must produce (empty for valid ones)."""
    path = SAMPLES_DIR / f"{_resolve(variant)}.expected.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF 1.4 showing ``text`` (ASCII) in Helvetica, with a correct xref table."""
    line = text.encode("ascii").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    stream = b"BT /F1 18 Tf 72 760 Td (" + line + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
