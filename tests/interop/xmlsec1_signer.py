"""Sign and verify application packages with the xmlsec1 command-line tool (libxmlsec1/OpenSSL).

An implementation independent of ours: it proves the hand-written signer in
``gateway.packaging`` is standard XMLDSig, and its signatures feed the gateway's verifier.

xmlsec1 cannot resolve the percent-encoded ``#%E6%A7%8B…`` spelling of the manifest
reference, so only the raw ``#構成情報`` is supported here. It counts a relative URI such as
``childcare-01.xml`` as "remote" (only ``file://`` is "local") and resolves it against the
working directory, so it runs inside a temp directory that holds the members.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lxml import etree

XMLSEC1 = shutil.which("xmlsec1")
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
C14N_URIS = {"inclusive": "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
             "exclusive": "http://www.w3.org/2001/10/xml-exc-c14n#"}
MANIFEST_ID = "構成情報"
# 構成情報/@ID is the only ID attribute; relative member names count as "remote" URIs.
COMMON_OPTIONS = ("--id-attr:ID", MANIFEST_ID, "--enabled-reference-uris", "same-doc,remote")


@dataclass(frozen=True)
class XmlsecResult:
    ok: bool
    output: str
    command: tuple[str, ...]


def _require() -> str:
    if XMLSEC1 is None:
        raise RuntimeError("xmlsec1 is not installed (Debian: apt-get install xmlsec1)")
    return XMLSEC1


def _write_members(directory: Path, members: Mapping[str, bytes]) -> None:
    for name, data in members.items():
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            raise ValueError(f"unsafe member name for a flat package: {name!r}")
        (directory / name).write_bytes(data)


def signature_template(kousei_xml: bytes, member_names: Sequence[str], c14n: Literal["inclusive", "exclusive"],
                       signature_id: str = "sig-xmlsec1") -> bytes:
    """``kousei_xml`` with an empty ds:Signature (digests, value, certificate left for xmlsec1)."""
    doc = etree.fromstring(kousei_xml, etree.XMLParser(resolve_entities=False, no_network=True))
    doc[-1].tail = "\n  "
    holder = etree.SubElement(doc, "署名情報")
    holder.tail = "\n"
    sig = etree.SubElement(holder, f"{{{DS_NS}}}Signature", {"Id": signature_id}, nsmap={None: DS_NS})

    def ds(parent: etree._Element, tag: str, **attrib: str) -> etree._Element:
        return etree.SubElement(parent, f"{{{DS_NS}}}{tag}", attrib)

    info = ds(sig, "SignedInfo")
    ds(info, "CanonicalizationMethod", Algorithm=C14N_URIS[c14n])
    ds(info, "SignatureMethod", Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    for uri in ("#" + MANIFEST_ID, *member_names):
        ref = ds(info, "Reference", URI=uri)
        if uri.startswith("#"):
            ds(ds(ref, "Transforms"), "Transform", Algorithm=C14N_URIS[c14n])
        ds(ref, "DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
        ds(ref, "DigestValue")
    ds(sig, "SignatureValue")
    ds(ds(sig, "KeyInfo"), "X509Data")  # xmlsec1 writes the certificate from --privkey-pem key,cert
    etree.indent(holder, space="  ", level=1)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(doc, encoding="UTF-8") + b"\n"


def sign_with_xmlsec1(kousei_template: bytes, members: Mapping[str, bytes], key_pem_path: Path | str,
                      cert_pem_path: Path | str, c14n: Literal["inclusive", "exclusive"] = "inclusive") -> bytes:
    """Signed ``kousei.xml`` bytes made by ``xmlsec1 --sign``.

    ``kousei_template`` is the unsigned manifest (``gateway.packaging.build_manifest``); the
    signature template is added here. Command (cwd = temp dir holding the members)::

        xmlsec1 --sign --privkey-pem KEY,CERT --id-attr:ID 構成情報
                --enabled-reference-uris same-doc,remote --output signed.xml template.xml
    """
    xmlsec1 = _require()
    with tempfile.TemporaryDirectory(prefix="xmlsec1-sign-") as tmp:
        work = Path(tmp)
        _write_members(work, members)
        (work / "template.xml").write_bytes(signature_template(kousei_template, list(members), c14n))
        key_and_cert = f"{Path(key_pem_path).resolve()},{Path(cert_pem_path).resolve()}"
        command = (xmlsec1, "--sign", "--privkey-pem", key_and_cert, *COMMON_OPTIONS,
                   "--output", "signed.xml", "template.xml")
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"xmlsec1 --sign failed: {done.stderr}")
        return (work / "signed.xml").read_bytes()


def verify_with_xmlsec1(kousei_xml: bytes, members: Mapping[str, bytes], trusted_pems: Sequence[Path | str],
                        *, at: dt.datetime | None = None) -> XmlsecResult:
    """``xmlsec1 --verify`` of a signed ``kousei.xml`` with its members, against pinned roots.

    ``at`` sets the certificate-validation time (``--verification-gmt-time``).
    """
    xmlsec1 = _require()
    with tempfile.TemporaryDirectory(prefix="xmlsec1-verify-") as tmp:
        work = Path(tmp)
        _write_members(work, members)
        (work / "kousei.xml").write_bytes(kousei_xml)
        command: list[str] = [xmlsec1, "--verify"]
        for pem in trusted_pems:
            command += ["--trusted-pem", str(Path(pem).resolve())]
        if at is not None:
            gmt = at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            command += ["--verification-gmt-time", gmt]
        command += [*COMMON_OPTIONS, "kousei.xml"]
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=60)
        return XmlsecResult(done.returncode == 0, done.stdout + done.stderr, tuple(command))


def unzip_package(package: bytes) -> tuple[bytes, dict[str, bytes]]:
    """(kousei.xml, other members) of a package ZIP."""
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    return members.pop("kousei.xml"), members


def verify_package_with_xmlsec1(package: bytes, trusted_pems: Sequence[Path | str],
                                *, at: dt.datetime | None = None) -> XmlsecResult:
    kousei, members = unzip_package(package)
    return verify_with_xmlsec1(kousei, members, trusted_pems, at=at)
