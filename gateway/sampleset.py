"""A procedure's sample applications: forms in a folder, attachments made on the fly.

Every procedure plugin ships fictitious samples for ``gateway sample``, the demo, the benchmark
and its tests, laid out the same way::

    samples/
        valid-two-children.xml            a form that passes every check
        invalid-dates.xml                 a form that must fail ...
        invalid-dates.expected.json       ... with exactly these problems: [{"code", "path"}, ...]

The variant name is the file stem; ``valid`` names the plugin's default variant. Attachments
are not stored: each is a tiny real PDF made from its file name, declared per variant::

    SAMPLES = SampleSet(Path(__file__).parent / "samples", "childcare-01", "valid-two-children",
                        attachments={"valid-two-children": (("hoken.pdf", "健康保険の資格確認書類"),)})
    PROCEDURE = Procedure(..., sample=SAMPLES.sample)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from gateway.models import Sample

DEFAULT = "valid"
"""The variant name that stands for the plugin's default sample."""


class SampleSet:
    """The samples of one procedure, in ``samples_dir``.

    ``default_variant`` is what ``valid`` means (the sample ``gateway sample`` gives without a
    variant); ``attachments`` is ``{variant: ((filename, 添付書類名称), ...)}``, and a variant
    not listed there has none. ``code`` is the procedure code, for messages.
    """

    def __init__(self, samples_dir: Path, code: str, default_variant: str,
                 attachments: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> None:
        self.samples_dir = Path(samples_dir)
        self.code = code
        self.default_variant = default_variant
        self.declared_attachments: Mapping[str, Sequence[tuple[str, str]]] = dict(attachments or {})

    def __repr__(self) -> str:
        return f"SampleSet({str(self.samples_dir)!r}, {self.code!r}, {self.default_variant!r})"

    def variants(self) -> list[str]:
        """Names of all samples (file stems), the valid ones first, each group sorted."""
        names = sorted(path.stem for path in self.samples_dir.glob("*.xml"))
        return [n for n in names if n.startswith("valid")] + [n for n in names if not n.startswith("valid")]

    def resolve(self, variant: str = DEFAULT) -> str:
        """The file stem of ``variant``; :class:`KeyError` naming the known ones if there is none."""
        name = self.default_variant if variant == DEFAULT else variant
        if not (self.samples_dir / f"{name}.xml").is_file():
            raise KeyError(f"{self.code} に見本 {variant!r} はありません（{', '.join(self.variants())}）")
        return name

    def form(self, variant: str = DEFAULT) -> bytes:
        """The form bytes of a sample, exactly as stored."""
        return (self.samples_dir / f"{self.resolve(variant)}.xml").read_bytes()

    def attachments(self, variant: str = DEFAULT) -> dict[str, tuple[str, str, bytes]]:
        """``{filename: (添付書類名称, media type, bytes)}`` for a sample: tiny real PDFs."""
        return {filename: (title, "application/pdf", minimal_pdf(f"SAMPLE {filename} (fictitious)"))
                for filename, title in self.declared_attachments.get(self.resolve(variant), ())}

    def sample(self, variant: str = DEFAULT) -> Sample:
        """The sample as ``gateway sample`` and the tests take it (``Procedure.sample``)."""
        return Sample(form_xml=self.form(variant), attachments=self.attachments(variant))

    def expected_problems(self, variant: str) -> list[dict[str, str]]:
        """The ``{code, path}`` problems an invalid sample must produce (empty for valid ones)."""
        path = self.samples_dir / f"{self.resolve(variant)}.expected.json"
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
    return pdf_document(objects)


def pdf_document(objects: list[bytes], header: bytes = b"%PDF-1.4\n") -> bytes:
    """A PDF file of numbered ``objects`` (object 1 is the catalog) with a correct xref table."""
    out = bytearray(header)
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
