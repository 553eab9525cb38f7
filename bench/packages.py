"""Distinct signed sample packages of a given size, made the way a portal would make them.

Every package carries its own 到達番号, so every POST is a *new* application (a repeated
到達番号 with the same bytes is a replay: 200 and much cheaper). Signing costs an RSA-2048
signature per package, so pools are generated in worker processes; the soak streams its
packages from a producer process on the other CPU so the generator's memory never shows in
the measured process's RSS.

Size: the procedure's own sample form, plus one PDF attachment (a one-page "scan": an
uncompressed-looking random image, so the ZIP cannot shrink it) padded until the whole ZIP
is the target size.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gateway.packaging import make_signed_package
from gateway.samples import procedure_of, sample_for, signing_residents
from gateway.sampleset import pdf_document
from gateway.testpki import TestResident, load_pki

JST = dt.timezone(dt.timedelta(hours=9))
DEFAULT_ATTACHMENT = ("hoken.pdf", "健康保険の資格を確認できる書類", "application/pdf")


@dataclass(frozen=True)
class PackageSpec:
    """What all packages of one size share; only the 到達番号 (and so the signature) differs."""

    label: str
    target_bytes: int
    procedure_code: str
    form_version: str
    form_filename: str
    form_xml: bytes
    attachments: Mapping[str, tuple[str, str, bytes]]
    pki_dir: str
    resident: int = 0
    date_prefix: str = ""
    """YYYYMMDD of the 到達番号s (today in JST unless given)."""
    seq_base: int = 0
    """Added to every sequence number, so that two sizes never share a 到達番号."""

    def arrival_number(self, seq: int) -> str:
        return f"{self.date_prefix}{self.seq_base + seq:010d}"


def padded_pdf(size: int, seed: int = 1) -> bytes:
    """A valid one-page PDF of exactly ``size`` bytes (>= ~600): a gray image of random pixels."""
    head = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    content = b"q 595 0 0 842 0 0 cm /Im0 Do Q"
    fixed = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im0 5 0 R >> >>"
        b" /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]

    def render(pixels: bytes) -> bytes:
        width = max(1, len(pixels))
        image = (b"<< /Type /XObject /Subtype /Image /Width %d /Height 1 /ColorSpace /DeviceGray"
                 b" /BitsPerComponent 8 /Length %d >>\nstream\n" % (width, len(pixels)) + pixels + b"\nendstream")
        return pdf_document([*fixed, image], header=head)

    overhead = len(render(b"x" * 1000)) - 1000
    pixels = random.Random(seed).randbytes(max(1, size - overhead))
    pdf = render(pixels)
    # The digit count of /Width and /Length can shift the total by a byte or two; settle it.
    for _ in range(3):
        if len(pdf) == size:
            break
        pixels = pixels[: len(pixels) + size - len(pdf)] if len(pdf) > size else pixels + b"\0" * (size - len(pdf))
        pdf = render(pixels)
    return pdf


def make_spec(config: Mapping[str, Any], pki_dir: Path, *, label: str, target_bytes: int,
              procedure_code: str = "childcare-01", date_prefix: str | None = None,
              seq_base: int = 0) -> PackageSpec:
    """The procedure's valid sample, its first attachment (or a 健康保険 PDF) padded to size."""
    procedure = procedure_of(config, procedure_code)
    sample = sample_for(config, procedure_code)
    attachments = dict(sample.attachments)
    name, (title, media, _) = next(iter(attachments.items()), (DEFAULT_ATTACHMENT[0], DEFAULT_ATTACHMENT[1:] + (b"",)))
    if media != "application/pdf":  # pad with a PDF all the same; keep the sample's other files
        name, title, media = DEFAULT_ATTACHMENT
    spec = PackageSpec(label=label, target_bytes=target_bytes, procedure_code=procedure_code,
                       form_version=procedure.version, form_filename=f"{procedure_code}.xml",
                       form_xml=sample.form_xml, attachments={}, pki_dir=str(pki_dir),
                       date_prefix=date_prefix or dt.datetime.now(JST).strftime("%Y%m%d"), seq_base=seq_base)
    signer = signing_residents(load_pki(pki_dir))[spec.resident]
    pdf_size = 1000
    for _ in range(4):  # the random image does not compress, so the ZIP grows byte for byte
        attachments[name] = (title, media, padded_pdf(pdf_size))
        spec = replace(spec, attachments=dict(attachments))
        size = len(build(spec, signer, 0))
        if abs(size - target_bytes) <= 16:
            break
        pdf_size = max(700, pdf_size + target_bytes - size)
    return spec


def build(spec: PackageSpec, signer: TestResident, seq: int) -> bytes:
    return make_signed_package(
        spec.form_xml, form_filename=spec.form_filename, procedure_code=spec.procedure_code,
        municipality_code=signer.municipality.code, form_version=spec.form_version,
        arrival_number=spec.arrival_number(seq), signer=signer, attachments=dict(spec.attachments))


# --------------------------------------------------------------------------- pools and streams

_worker_state: dict[str, Any] = {}


def _init_worker(spec: PackageSpec, cpus: set[int] | None) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    _worker_state["spec"] = spec
    _worker_state["signer"] = signing_residents(load_pki(Path(spec.pki_dir)))[spec.resident]


def _build_range(bounds: tuple[int, int]) -> list[bytes]:
    spec, signer = _worker_state["spec"], _worker_state["signer"]
    return [build(spec, signer, seq) for seq in range(*bounds)]


def generate(spec: PackageSpec, start: int, count: int, *, workers: int | None = None) -> list[bytes]:
    """``count`` distinct packages with sequence numbers ``start`` … ``start + count - 1``."""
    if count <= 0:
        return []
    workers = workers or len(os.sched_getaffinity(0) | set(range(os.cpu_count() or 1)))
    chunk = max(1, min(500, count // (workers * 4) or 1))
    bounds = [(s, min(s + chunk, start + count)) for s in range(start, start + count, chunk)]
    all_cpus = set(range(os.cpu_count() or 1))
    with mp.get_context("fork").Pool(workers, _init_worker, (spec, all_cpus)) as pool:
        return [pkg for part in pool.imap(_build_range, bounds) for pkg in part]


def _produce(spec: PackageSpec, start: int, count: int, queue: Any, cpus: set[int] | None) -> None:
    _init_worker(spec, cpus)
    signer = _worker_state["signer"]
    batch: list[bytes] = []
    for seq in range(start, start + count):
        batch.append(build(spec, signer, seq))
        if len(batch) == 50:
            queue.put(batch)
            batch = []
    queue.put(batch)
    queue.put(None)


def stream(spec: PackageSpec, start: int, count: int, *, cpus: set[int] | None = None,
           depth: int = 40) -> Iterator[bytes]:
    """Packages made on the fly by one producer process (bounded queue: little memory here)."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue(maxsize=depth)
    producer = ctx.Process(target=_produce, args=(spec, start, count, queue, cpus), daemon=True)
    producer.start()
    try:
        while (batch := queue.get()) is not None:
            yield from batch
    finally:
        producer.kill()
        producer.join()
