"""Sample packages from each procedure's own samples, signed with the test PKI.

Used by ``gateway sample``, ``gateway demo``, the tests and the benchmark.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import secrets
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.errors import ProcedureError
from gateway.models import Procedure, Sample
from gateway.testpki import TestPKI, TestResident, init_pki, load_pki, reissue_crls

JST = dt.timezone(dt.timedelta(hours=9))


def new_arrival_number(today: dt.date | None = None) -> str:
    """An 18-digit 到達番号 in the portal's shape: the date, then ten random digits."""
    today = today or dt.datetime.now(JST).date()
    return f"{today:%Y%m%d}{secrets.randbelow(10**10):010d}"


def ensure_pki(directory: Path) -> TestPKI:
    """Load the test PKI in ``directory``, creating it on first use; its CRLs are issued again
    when they are older than a day (they are fresh for two), so a kept PKI stays usable."""
    index = directory / "pki.json"
    if not index.is_file():
        init_pki(directory)
    pki = _load_cached(directory.resolve(), index.stat().st_mtime_ns)
    if any(time.time() - path.stat().st_mtime > 86_400 for path in pki.crl_paths):
        reissue_crls(pki)
    return pki


@functools.lru_cache(maxsize=8)
def _load_cached(directory: Path, _version: int) -> TestPKI:
    # Loading checks nine RSA keys (~0.7 s): once per PKI version is enough.
    return load_pki(directory)


def signing_residents(pki: TestPKI) -> list[TestResident]:
    """Residents whose certificates a verifier should accept (not revoked, expired or auth)."""
    return [r for r in pki.residents if not (r.revoked or r.expired or r.auth)]


def procedure_of(config: Mapping[str, Any], code: str) -> Procedure:
    from gateway.plugins import Plugins, make_plugin_manager

    plugins = Plugins(make_plugin_manager(config), config)
    versions = [p for (c, _), p in sorted(plugins.procedures.items()) if c == code]
    if not versions:
        raise ProcedureError(f"手続 {code} は登録されていません")
    return versions[-1]


def sample_for(config: Mapping[str, Any], code: str, variant: str = "valid") -> Sample:
    procedure = procedure_of(config, code)
    if procedure.sample is None:
        raise ProcedureError(f"手続 {code} にはサンプルがありません", code="procedure-no-sample")
    try:
        return procedure.sample(variant)
    except (KeyError, FileNotFoundError) as exc:
        raise ProcedureError(f"手続 {code} にサンプル {variant!r} はありません",
                             code="procedure-no-sample") from exc


def make_sample_package(config: Mapping[str, Any], code: str, sample: Sample, *,
                        pki_dir: Path | None = None, resident: int = 0,
                        arrival_number: str | None = None, signed: bool = True,
                        **sign_options: Any) -> bytes:
    """Sign ``sample`` as resident number ``resident`` of the test PKI into a package."""
    from gateway.packaging import make_signed_package

    procedure = procedure_of(config, code)
    pki = ensure_pki(pki_dir or Path(config["DATA_DIR"]) / "testpki")
    signer = signing_residents(pki)[resident]
    return make_signed_package(
        sample.form_xml, form_filename=f"{code}.xml", procedure_code=code,
        municipality_code=signer.municipality.code, form_version=procedure.version,
        arrival_number=arrival_number or new_arrival_number(), applicant=signer.applicant,
        signer=signer if signed else None, attachments=dict(sample.attachments), **sign_options)


def tamper_form(package: bytes) -> bytes:
    """The same package with one byte of the form changed after signing (for demos and tests)."""
    members: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        for info in zf.infolist():
            members[info.filename] = zf.read(info)
    form_name = next(n for n in members if n != "kousei.xml" and n.endswith(".xml"))
    members[form_name] = members[form_name].replace(b"</", b" </", 1)
    from gateway.packaging import build_package

    kousei = members.pop("kousei.xml")
    return build_package(members, kousei)
