"""Building blocks for hostile packages: valid packages from the test PKI, edits, re-signing, raw ZIPs.

Every hostile package starts from a real package the reference signer made with the session
test PKI (``gateway.packaging``), then changes one thing. Where an attack is only interesting
if the signature is otherwise valid (a resident's own key signing a malicious structure),
:func:`resign` recomputes every digest and the SignatureValue, so the only thing wrong with
the package is the attack itself.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import struct
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from gateway.config import load_config
from gateway.models import Procedure, Sample
from gateway.packaging import build_package, canonicalize, make_signed_package
from gateway.samples import new_arrival_number, procedure_of, signing_residents
from gateway.testpki import TestPKI, TestResident

DS = "http://www.w3.org/2000/09/xmldsig#"
XML_NS = "http://www.w3.org/XML/1998/namespace"
KOUSEI = "kousei.xml"
FORM_NAME = "childcare-01.xml"
PROCEDURE = "childcare-01"
_DIGESTS = {
    "http://www.w3.org/2000/09/xmldsig#sha1": hashes.SHA1, "http://www.w3.org/2001/04/xmlenc#sha256": hashes.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashes.SHA384,
    "http://www.w3.org/2001/04/xmlenc#sha512": hashes.SHA512, "http://www.w3.org/2001/04/xmldsig-more#md5": hashes.MD5,
}
_SIGNATURE_HASHES = {
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": hashes.SHA1,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-md5": hashes.MD5,
}
# Our own output only: the plain lxml parser, but still no entities and no network.
_EDIT_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def ds(tag: str) -> str:
    return f"{{{DS}}}{tag}"


@dataclass
class Kit:
    """What every builder gets: the session test PKI and where "external" things point."""

    pki: TestPKI
    external: str = "http://attacker.invalid"
    """Base URL written into hostile references, DTDs and entities. The real-server test points
    it at a canary HTTP server on loopback that must never be called."""
    secret_file: str = "file:///etc/passwd"
    """A local file hostile references and entities name; the tests point it at a canary file
    whose access time shows whether anything read it."""

    @property
    def resident(self) -> TestResident:
        return signing_residents(self.pki)[0]

    def package(self, *, signer: Any = None, signed: bool = True, form: bytes | None = None,
                attachments: Mapping[str, tuple[str, str, bytes]] | None = None, **options: Any) -> bytes:
        """childcare-01's own valid sample, signed (exclusive C14N unless ``c14n=`` says otherwise).

        ``signer`` defaults to the first ordinary resident; pass a ``(key, cert)`` pair (then an
        ``applicant=``) for a certificate made by :mod:`tests.hostile.certs`; ``signed=False``
        leaves 署名情報 out.
        """
        sample = _sample()
        signer = (self.resident if signer is None else signer) if signed else None
        options.setdefault("c14n", "exclusive")
        options.setdefault("arrival_number", new_arrival_number())
        options.setdefault("municipality_code", self.resident.municipality.code)
        if not hasattr(signer, "applicant"):
            options.setdefault("applicant", self.resident.applicant)
        return make_signed_package(
            sample.form_xml if form is None else form, form_filename=FORM_NAME, procedure_code=PROCEDURE,
            form_version=_procedure().version, signer=signer,
            attachments=dict(sample.attachments) if attachments is None else attachments, **options)

    def parts(self, **options: Any) -> tuple[bytes, dict[str, bytes]]:
        """``(kousei.xml, other members)`` of :meth:`package`."""
        return split(self.package(**options))

    @property
    def sample_attachments(self) -> dict[str, tuple[str, str, bytes]]:
        return dict(_sample().attachments)

    @property
    def form(self) -> bytes:
        return _sample().form_xml


@functools.lru_cache(maxsize=None)
def _procedure() -> Procedure:
    return procedure_of(load_config({}), PROCEDURE)


def _sample() -> Sample:
    return _procedure().sample("valid")


# --------------------------------------------------------------------------- packages


def split(package: bytes) -> tuple[bytes, dict[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    return members.pop(KOUSEI), members


def rezip(kousei: bytes, members: Mapping[str, bytes]) -> bytes:
    return build_package(dict(members), kousei)


def edited(kit: Kit, change: Callable[[etree._Element], object], *, resign_with: rsa.RSAPrivateKey | None = None,
           resign_members: Callable[[dict[str, bytes]], dict[str, bytes]] | None = None,
           **options: Any) -> bytes:
    """A valid package whose kousei.xml ``change`` edited; re-signed with ``resign_with`` if given."""
    kousei, members = kit.parts(**options)
    root = etree.fromstring(kousei, _EDIT_PARSER)
    change(root)
    if resign_members is not None:
        members = resign_members(members)
    if resign_with is not None:
        resign(root, resign_with, members)
    return rezip(serialize(root), members)


def serialize(root: etree._Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8") + b"\n"


def signature(root: etree._Element) -> etree._Element:
    return next(root.iter(ds("Signature")))


def signed_info(root: etree._Element) -> etree._Element:
    return signature(root).find(ds("SignedInfo"))


def references(root: etree._Element) -> list[etree._Element]:
    return list(signed_info(root).iter(ds("Reference")))


def resign(root: etree._Element, key: rsa.RSAPrivateKey, members: Mapping[str, bytes], *,
           which: etree._Element | None = None) -> None:
    """Recompute every DigestValue and the SignatureValue of ``which`` (default: the first
    signature), with the hash each DigestMethod/SignatureMethod names: a *validly* signed attack.

    Same-document references are digested over the exclusive C14N of the element carrying
    ``ID`` = the fragment (the kit signs with exclusive C14N); anything unresolvable over "".
    """
    sig = which if which is not None else signature(root)
    info = sig.find(ds("SignedInfo"))
    for reference in info.iter(ds("Reference")):
        uri = reference.get("URI") or ""
        if uri.startswith("#"):
            found = root.xpath("//*[@ID=$v]", v=unquote(uri[1:]))
            data = canonicalize(found[0], "exclusive") if found else b""
        else:
            data = members.get(uri, b"")
        method = reference.find(ds("DigestMethod"))
        algorithm = _DIGESTS.get(method.get("Algorithm") if method is not None else "", hashes.SHA256)
        digest = hashes.Hash(algorithm())
        digest.update(data)
        value = reference.find(ds("DigestValue"))
        if value is not None:
            value.text = base64.b64encode(digest.finalize()).decode()
    method = info.find(ds("SignatureMethod"))
    algorithm = _SIGNATURE_HASHES.get(method.get("Algorithm") if method is not None else "", hashes.SHA256)
    value = sig.find(ds("SignatureValue"))
    value.text = base64.b64encode(key.sign(canonicalize(info, "exclusive"), padding.PKCS1v15(), algorithm())).decode()


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# --------------------------------------------------------------------------- raw ZIPs


def make_zip(entries: Iterable[tuple[str | zipfile.ZipInfo, bytes]], *,
             compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP exactly as listed (duplicates allowed), through zipfile's writer."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return buffer.getvalue()


def valid_entries(kit: Kit) -> list[tuple[str, bytes]]:
    """The members of a valid package, kousei.xml first, for raw ZIP attacks."""
    kousei, members = kit.parts()
    return [(KOUSEI, kousei), *members.items()]


def patch_both_headers(data: bytes, name: bytes, patch: Callable[[bytearray, int, bool], None]) -> bytes:
    """Apply ``patch(buffer, header_offset, is_central)`` to the local and central header of ``name``."""
    buffer = bytearray(data)
    at = 0
    while (at := buffer.find(b"PK\x03\x04", at)) != -1:
        if buffer[at + 30:at + 30 + len(name)] == name:
            patch(buffer, at, False)
        at += 4
    at = 0
    while (at := buffer.find(b"PK\x01\x02", at)) != -1:
        if buffer[at + 46:at + 46 + len(name)] == name:
            patch(buffer, at, True)
        at += 4
    return bytes(buffer)


def set_sizes(buffer: bytearray, at: int, central: bool, *, uncompressed: int) -> None:
    """Write a (lying) uncompressed size into a local (offset 22) or central (24) header."""
    offset = 24 if central else 22
    buffer[at + offset:at + offset + 4] = struct.pack("<I", uncompressed)
