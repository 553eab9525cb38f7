"""Write the fuzzing seed corpus: valid packages from a test PKI and a few hostile ones.

    python fuzz/make_corpus.py            # (./dev fuzz runs it) -> fuzz/work/, fuzz/corpus/

``fuzz/work/pki`` is a test PKI made once and reused (the harness trusts its roots), and
``fuzz/work/base.zip`` is the package whose members the "kousei.xml only" inputs go with.
Every seed is ``<target byte><payload>`` (see ``fuzz/harness.py``). Nothing here is committed:
``fuzz/.gitignore`` keeps ``work/``, ``corpus/`` and ``findings/`` out of git.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gateway.testpki import TestPKI, init_pki, load_pki  # noqa: E402
from tests.hostile import archive_cases as z  # noqa: E402
from tests.hostile import parser_cases as p  # noqa: E402
from tests.hostile import signature_cases as s  # noqa: E402
from tests.hostile import signedinfo_cases as r  # noqa: E402
from tests.hostile.kit import Kit, split  # noqa: E402

WORK = HERE / "work"
CORPUS = HERE / "corpus"
PACKAGE, KOUSEI, XML = b"\x00", b"\x01", b"\x02"
ARRIVAL = "202611280000012345"

# Small hostile seeds: one of each kind of structure, so mutations start near the checks.
HOSTILE_PACKAGES = [z.zip_slip, z.zip_symlink, z.zip_duplicate_form, z.zip_overlapping_entries,
                    z.zip_encrypted_member, z.zip_header_mismatch, z.zip_nested_zip, z.zip_sjis_name,
                    z.zip_truncated, z.zip_corrupt_member, z.pdf_before_zip]
HOSTILE_KOUSEI = [s.xsw_second_manifest_first, s.xsw_original_renamed, s.xsw_pristine_in_object,
                  s.xsw_ds_manifest_resigned, s.xsw_second_signature, r.key_value_next_to_x509,
                  r.xslt_reading_files, r.transform_on_member, r.issuer_serial_mismatch,
                  r.extra_reference(lambda kit: "#xpointer(/)"), r.hmac_output_length,
                  p.kousei_doctype("billion-laughs"), p.kousei_doctype("attlist-default-id"),
                  p.kousei_processing_instruction]


def pki() -> TestPKI:
    if (WORK / "pki" / "pki.json").is_file():
        return load_pki(WORK / "pki")
    return init_pki(WORK / "pki")


def write(seed: bytes) -> None:
    (CORPUS / hashlib.sha1(seed).hexdigest()).write_bytes(seed)  # noqa: S324 - a file name, not security


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    CORPUS.mkdir(parents=True, exist_ok=True)
    kit = Kit(pki(), external="http://127.0.0.1:9/", secret_file="file:///nonexistent/secret")
    base = kit.package(arrival_number=ARRIVAL)
    (WORK / "base.zip").write_bytes(base)
    kousei, members = split(base)
    seeds = [PACKAGE + base, KOUSEI + kousei, XML + kousei, *(XML + data for n, data in members.items()
                                                                 if n.endswith(".xml"))]
    for c14n in ("inclusive", "exclusive"):
        for uri_style in ("raw", "percent"):
            variant = kit.package(arrival_number=ARRIVAL, c14n=c14n, uri_style=uri_style)
            seeds += [PACKAGE + variant, KOUSEI + split(variant)[0]]
    seeds.append(PACKAGE + kit.package(arrival_number=ARRIVAL, attachments={}))
    seeds.append(PACKAGE + kit.package(arrival_number=ARRIVAL, signed=False))
    seeds += [PACKAGE + build(kit) for build in HOSTILE_PACKAGES]
    for build in HOSTILE_KOUSEI:
        package = build(kit)
        seeds.append(PACKAGE + package)
        hostile_kousei, hostile_members = split(package)
        if hostile_members == members:  # same members as base.zip: usable as a kousei-only input
            seeds.append(KOUSEI + hostile_kousei)
    for seed in seeds:
        write(seed)
    print(f"{len(seeds)} seeds in {CORPUS.relative_to(HERE.parent)} ({sum(map(len, seeds)) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
