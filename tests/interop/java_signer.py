"""Sign and verify application packages with the JDK's javax.xml.crypto.dsig (JavaSigner.java).

The Java source is compiled once per content hash into a cache directory under the system
temp dir, then run with ``java -cp``; one JVM runs a whole batch of jobs, since loading the
XML security classes costs far more than a signature. Member files are handed to the JVM
through a UTF-8 job file mapping each reference URI to an ASCII temp path, so Japanese names
survive whatever locale (``sun.jnu.encoding``) the JVM starts with.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

JAVA = shutil.which("java")
JAVAC = shutil.which("javac")
SOURCE = Path(__file__).with_name("JavaSigner.java")


@dataclass(frozen=True)
class JavaResult:
    ok: bool
    output: str


def java_available() -> bool:
    return JAVA is not None and JAVAC is not None


def compiled_classes() -> Path:
    """Directory holding JavaSigner.class, compiling it on first use (cached by source hash)."""
    if not java_available():
        raise RuntimeError("java/javac are not installed (Debian: apt-get install openjdk-17-jdk-headless)")
    source = SOURCE.read_bytes()
    cache = Path(tempfile.gettempdir()) / f"gateway-javasigner-{hashlib.sha256(source).hexdigest()[:16]}"
    if not (cache / "JavaSigner.class").exists():
        building = Path(tempfile.mkdtemp(prefix="javasigner-build-"))
        subprocess.run([str(JAVAC), "-encoding", "UTF-8", "-d", str(building), str(SOURCE)],
                       check=True, capture_output=True, timeout=120)
        try:
            building.rename(cache)  # atomic: parallel test workers never see half a cache
        except OSError:
            shutil.rmtree(building, ignore_errors=True)  # another worker won the race
    return cache


@dataclass(frozen=True)
class JavaSignRequest:
    kousei_xml: bytes
    """The unsigned manifest; the JDK appends 署名情報/ds:Signature."""
    members: Mapping[str, bytes]
    key_pem_path: Path | str
    cert_pem_path: Path | str
    c14n: Literal["inclusive", "exclusive"] = "inclusive"
    uri_style: Literal["raw", "percent"] = "raw"
    signature_id: str = "sig-java"


# Class loading dominates; C1 only and no perf-data file shave a little more off each start.
JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData")


def _run_jobs(jobs: Sequence[tuple[Mapping[str, str], Mapping[str, bytes]]], work: Path) -> list[str]:
    """Run all jobs in one JVM; return each job's report text."""
    job_files, reports = [], []
    for n, (job, members) in enumerate(jobs):
        lines = [f"{k}={v}" for k, v in job.items()]
        report = work / f"report-{n}.txt"
        lines.append(f"report={report}")
        for i, (name, data) in enumerate(members.items()):
            local = work / f"job-{n}-member-{i}.bin"
            local.write_bytes(data)
            lines.append(f"member={name}\t{local}")
        job_file = work / f"job-{n}.txt"
        job_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        job_files.append(str(job_file))
        reports.append(report)
    command = (str(JAVA), *JVM_OPTIONS, "-cp", str(compiled_classes()), "JavaSigner", *job_files)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"JavaSigner failed: {done.stdout}{done.stderr}")
    return [report.read_text(encoding="utf-8") for report in reports]


def sign_many_with_java(requests: Sequence[JavaSignRequest]) -> list[bytes]:
    """Signed ``kousei.xml`` bytes for each request, all in one JVM."""
    with tempfile.TemporaryDirectory(prefix="javasigner-") as tmp:
        work = Path(tmp)
        jobs = []
        for n, req in enumerate(requests):
            (work / f"in-{n}.xml").write_bytes(req.kousei_xml)
            jobs.append(({"mode": "sign", "key": str(Path(req.key_pem_path).resolve()),
                          "cert": str(Path(req.cert_pem_path).resolve()), "in": str(work / f"in-{n}.xml"),
                          "out": str(work / f"out-{n}.xml"), "c14n": req.c14n, "uri": req.uri_style,
                          "id": req.signature_id}, req.members))
        reports = _run_jobs(jobs, work)
        for report in reports:
            if report != "SIGNED":
                raise RuntimeError(f"JavaSigner could not sign: {report}")
        return [(work / f"out-{n}.xml").read_bytes() for n in range(len(requests))]


def sign_with_java(kousei_xml: bytes, members: Mapping[str, bytes], key_pem_path: Path | str,
                   cert_pem_path: Path | str, *, c14n: Literal["inclusive", "exclusive"] = "inclusive",
                   uri_style: Literal["raw", "percent"] = "raw", signature_id: str = "sig-java") -> bytes:
    """Signed ``kousei.xml`` bytes: the unsigned manifest plus 署名情報/ds:Signature by the JDK."""
    return sign_many_with_java([JavaSignRequest(kousei_xml, members, key_pem_path, cert_pem_path,
                                                c14n, uri_style, signature_id)])[0]


def verify_many_with_java(items: Sequence[tuple[bytes, Mapping[str, bytes]]]) -> list[JavaResult]:
    """Cryptographic check of each (signed kousei.xml, members), all in one JVM.

    Key from the embedded certificate; no trust, no revocation (xmlsec1 and the gateway do
    that). Resolves both the raw and the percent-encoded manifest reference, which xmlsec1
    cannot. JDK secure validation is on.
    """
    with tempfile.TemporaryDirectory(prefix="javaverify-") as tmp:
        work = Path(tmp)
        jobs = []
        for n, (kousei, members) in enumerate(items):
            (work / f"in-{n}.xml").write_bytes(kousei)
            jobs.append(({"mode": "verify", "in": str(work / f"in-{n}.xml")}, members))
        return [JavaResult(report.endswith("\nOK"), report) for report in _run_jobs(jobs, work)]


def verify_with_java(kousei_xml: bytes, members: Mapping[str, bytes]) -> JavaResult:
    return verify_many_with_java([(kousei_xml, members)])[0]
