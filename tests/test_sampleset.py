"""gateway.sampleset: a procedure's samples from a real folder, and the PDFs made for them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gateway.models import Sample
from gateway.sampleset import SampleSet, minimal_pdf


@pytest.fixture
def samples(tmp_path: Path) -> SampleSet:
    for name in ("valid-b", "valid-a", "invalid-z", "invalid-y"):
        (tmp_path / f"{name}.xml").write_bytes(f"<form name='{name}'/>".encode())
    (tmp_path / "invalid-z.expected.json").write_text(
        json.dumps([{"code": "rule-x", "path": "/申請書/氏名"}], ensure_ascii=False), encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a sample")
    return SampleSet(tmp_path, "example-01", "valid-b",
                     attachments={"valid-b": (("a.pdf", "住民票の写し"), ("b.pdf", "別居監護申立書"))})


def test_variants_are_file_stems_valid_first(samples: SampleSet) -> None:
    assert samples.variants() == ["valid-a", "valid-b", "invalid-y", "invalid-z"]


def test_valid_means_the_default_variant(samples: SampleSet) -> None:
    assert samples.form() == samples.form("valid") == samples.form("valid-b") == b"<form name='valid-b'/>"
    assert samples.form("invalid-y") == b"<form name='invalid-y'/>"


def test_unknown_variant_is_a_key_error_naming_the_known_ones(samples: SampleSet) -> None:
    with pytest.raises(KeyError, match="example-01 に見本 'nope' はありません（valid-a, valid-b, invalid-y, invalid-z）"):
        samples.sample("nope")
    with pytest.raises(KeyError):
        samples.expected_problems("notes")


def test_attachments_are_declared_per_variant(samples: SampleSet) -> None:
    attachments = samples.attachments()
    assert {name: (title, media) for name, (title, media, _) in attachments.items()} == {
        "a.pdf": ("住民票の写し", "application/pdf"), "b.pdf": ("別居監護申立書", "application/pdf")}
    assert attachments["a.pdf"][2] == minimal_pdf("SAMPLE a.pdf (fictitious)")
    assert samples.attachments("valid-a") == {}


def test_sample_is_form_and_attachments(samples: SampleSet) -> None:
    sample = samples.sample("valid")
    assert isinstance(sample, Sample)
    assert sample.form_xml == samples.form() and dict(sample.attachments) == samples.attachments()


def test_expected_problems_of_invalid_samples_only(samples: SampleSet) -> None:
    assert samples.expected_problems("invalid-z") == [{"code": "rule-x", "path": "/申請書/氏名"}]
    assert samples.expected_problems("invalid-y") == [] and samples.expected_problems("valid") == []


def test_minimal_pdf_is_a_well_formed_one_page_pdf() -> None:
    pdf = minimal_pdf("SAMPLE (a)\\b")
    assert pdf.startswith(b"%PDF-1.4\n") and pdf.endswith(b"%%EOF\n")
    assert b"(SAMPLE \\(a\\)\\\\b) Tj" in pdf
    xref = int(pdf.rsplit(b"startxref\n", 1)[1].split()[0])
    assert pdf[xref:].startswith(b"xref\n0 6\n")
    # every xref entry points at its object, and /Length is the stream's length
    offsets = [int(line[:10]) for line in pdf[xref:].split(b"\n")[3:8]]
    assert [pdf[offset:].split(b"\n", 1)[0] for offset in offsets] == [b"%d 0 obj" % n for n in range(1, 6)]
    length = int(re.search(rb"/Length (\d+)", pdf)[1])
    stream = pdf.split(b"stream\n", 1)[1].split(b"\nendstream", 1)[0]
    assert len(stream) == length
    assert minimal_pdf("x") == minimal_pdf("x")  # deterministic: samples are reproducible
    with pytest.raises(UnicodeEncodeError):
        minimal_pdf("見本")
