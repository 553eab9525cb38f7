"""Packages signed by independent XMLDSig implementations (xmlsec1, the JDK).

:func:`interop_packages` gives the gateway's verifier real third-party signatures to accept:
same manifest, form and attachments, signed by xmlsec1 (raw ``#構成情報`` only: it cannot
resolve the percent-encoded spelling) and by the JDK (raw and percent-encoded), each with
inclusive and exclusive C14N.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from gateway.models import AttachmentInfo
from gateway.packaging import build_manifest, build_package

from .java_signer import (
    JavaSignRequest, java_available, sign_many_with_java, sign_with_java, verify_many_with_java, verify_with_java,
)
from .xmlsec1_signer import XMLSEC1, sign_with_xmlsec1, unzip_package, verify_package_with_xmlsec1, verify_with_xmlsec1

XMLSEC1_VARIANTS = ("xmlsec1-inclusive-raw", "xmlsec1-exclusive-raw")
JAVA_VARIANTS = ("java-inclusive-raw", "java-exclusive-raw", "java-inclusive-percent", "java-exclusive-percent")
ALL_VARIANTS = XMLSEC1_VARIANTS + JAVA_VARIANTS
JST = dt.timezone(dt.timedelta(hours=9))


def missing_tools(signers: Iterable[str] = ("xmlsec1", "java")) -> str:
    """A skip reason naming the tools that are not installed, or "" when all are there."""
    missing = []
    if "xmlsec1" in signers and XMLSEC1 is None:
        missing.append("xmlsec1 (apt-get install xmlsec1)")
    if "java" in signers and not java_available():
        missing.append("java/javac (apt-get install openjdk-17-jdk-headless)")
    return ("not installed: " + ", ".join(missing)) if missing else ""


def interop_packages(pki, form_xml: bytes, *, form_filename: str = "childcare-01.xml",
                     procedure_code: str = "childcare-01", municipality_code: str | None = None,
                     resident_id: str = "yamada-taro",
                     attachments: Mapping[str, tuple[str, str, bytes]] | None = None,
                     arrival_number_base: str = "2026112899990000", applied_at: dt.datetime | None = None,
                     signers: Iterable[str] = ("xmlsec1", "java")) -> dict[str, bytes]:
    """Variant name (see ``ALL_VARIANTS``) -> package ZIP bytes, signed by ``pki.resident(resident_id)``.

    Each variant gets its own 到達番号: ``arrival_number_base`` (16 digits) + a two-digit
    variant index, so all of them can be ingested into one gateway. ``attachments`` maps a
    file name to (添付書類名称, media type, bytes). ``municipality_code`` defaults to the
    resident's. Raises RuntimeError when a requested tool is missing.
    """
    signers = tuple(signers)
    if reason := missing_tools(signers):
        raise RuntimeError(reason)
    resident = pki.resident(resident_id)
    attachments = dict(attachments or {})
    members = {form_filename: form_xml, **{name: data for name, (_, _, data) in attachments.items()}}
    applied_at = applied_at or dt.datetime.now(JST).replace(microsecond=0)
    wanted = [v for v in ALL_VARIANTS if v.split("-")[0] in signers]
    signed: dict[str, bytes] = {}
    java_requests: dict[str, JavaSignRequest] = {}
    for variant in wanted:
        tool, c14n, uri_style = variant.split("-")
        kousei = build_manifest(
            arrival_number=f"{arrival_number_base}{ALL_VARIANTS.index(variant):02d}",
            procedure_code=procedure_code, municipality_code=municipality_code or resident.municipality.code,
            form_filename=form_filename, applicant=resident.applicant,
            attachments=[AttachmentInfo(title, name, media) for name, (title, media, _) in attachments.items()],
            applied_at=applied_at)
        if tool == "xmlsec1":
            signed[variant] = sign_with_xmlsec1(kousei, members, resident.key_path, resident.cert_path, c14n)
        else:
            java_requests[variant] = JavaSignRequest(kousei, members, resident.key_path, resident.cert_path,
                                                     c14n, uri_style)  # type: ignore[arg-type]
    signed.update(zip(java_requests, sign_many_with_java(list(java_requests.values())) if java_requests else []))
    return {variant: build_package(members, signed[variant]) for variant in wanted}


__all__ = ["ALL_VARIANTS", "JAVA_VARIANTS", "XMLSEC1_VARIANTS", "JavaSignRequest", "interop_packages",
           "missing_tools", "sign_many_with_java", "sign_with_java", "sign_with_xmlsec1", "unzip_package",
           "verify_many_with_java", "verify_package_with_xmlsec1", "verify_with_java", "verify_with_xmlsec1"]
