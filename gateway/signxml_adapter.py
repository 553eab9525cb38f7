"""signxml's ``XMLVerifier``, narrowly adapted to the detached ``kousei.xml`` signature.

Tested with signxml 5.2.0 and lxml 6.1.3 (libxml2 2.14); each override says why it exists
and has a test in ``tests/test_signature.py`` that fails without it. Reference handling,
algorithm policy and the signature math stay signxml's.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from lxml import etree
from signxml import InvalidDigest, InvalidInput, XMLVerifier
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm
from signxml.verifier import VerifyResult

from gateway.c14n import canonicalize

DS = "http://www.w3.org/2000/09/xmldsig#"


def _ds(tag: str) -> str:
    return f"{{{DS}}}{tag}"


def fragment(uri: str) -> str | None:
    """The decoded fragment of a ``#…`` URI (percent-encoding as strict UTF-8), or None."""
    try:
        return unquote(uri[1:], errors="strict")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class VerifiedReference:
    """One reference as signxml verified it (read from the verified SignedInfo)."""

    uri: str
    digest_method: str
    digest_value: str
    """Base64, as signed."""
    transform: str | None
    signed_xml: etree._Element | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "digest_method": self.digest_method, "digest": self.digest_value,
                "transform": self.transform}



class DetachedVerifier(XMLVerifier):
    """signxml's verifier with the fixes this package format needs, each as small as possible.

    Reference handling, algorithm policy and the signature math stay signxml's. One instance
    per verification (signxml keeps per-call state on the instance).
    """

    def __init__(self, members: Mapping[str, bytes]) -> None:
        super().__init__()
        self._members = members
        self.verified_references: list[VerifiedReference] = []

    def resolve_member(self, uri: str) -> bytes | None:
        """``uri_resolver``: a detached reference names a member exactly; nothing else resolves."""
        return self._members.get(uri)

    def get_root(self, data: Any) -> etree._Element:
        # Saving: verify the very tree inspect_signature checked (parsed once, by xmlsafe's
        # hardened parser) instead of a serialised copy. signxml only reads the root; every
        # step that could modify it works on copies of its own.
        if isinstance(data, etree._Element):
            return data
        return super().get_root(data)

    def _tostring(self, xml_node: etree._Element, **kwargs: Any) -> bytes:
        # Fix (a): signxml copies nodes with etree.tostring(), which defaults to ASCII. Text can
        # be escaped as character references but element names cannot, so the copy of a
        # document with Japanese element names (構成情報, 署名情報) does not re-parse.
        kwargs.setdefault("encoding", "utf-8")
        return etree.tostring(xml_node, **kwargs)

    def _c14n(self, nodes: Any, algorithm: CanonicalizationMethod, inclusive_ns_prefixes: Any = None) -> bytes:
        # Fix (b): libxml2's inclusive C14N of a subtree whose default namespace is declared on
        # an ancestor emits xmlns="" on grandchildren (SignedInfo/Reference/DigestMethod…), so
        # the canonical SignedInfo differs from what the signer signed. Canonicalizing the
        # subtree as the root of its own document is correct: lxml's serialisation carries the
        # ancestors' namespace declarations. Exclusive C14N is unaffected and left alone.
        exclusive = algorithm.value.startswith(CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value)
        if isinstance(nodes, etree._Element) and nodes.getparent() is not None and not exclusive:
            return canonicalize(nodes, exclusive=False)
        return super()._c14n(nodes, algorithm, inclusive_ns_prefixes=inclusive_ns_prefixes)

    def _resolve_reference(self, doc_root: etree._Element, reference: etree._Element,
                           uri_resolver: Any = None) -> Any:
        # Fix (c): a same-document reference may be percent-encoded (#%E6%A7%8B…, as some e-Gov
        # tooling writes); signxml compares the raw fragment with the attribute value. Decode
        # it as UTF-8 (strictly) and let signxml resolve the decoded fragment as usual.
        uri = reference.get("URI")
        if uri is not None and uri.startswith("#") and "%" in uri:
            decoded = fragment(uri)
            if decoded is None:
                raise InvalidInput(f"Unable to resolve reference URI: {uri}")
            reference = etree.Element(reference.tag, URI="#" + decoded)  # signxml reads only URI
        return super()._resolve_reference(doc_root, reference, uri_resolver=uri_resolver)

    def _get_cert_description(self, cert: x509.Certificate, cert_source: str) -> str:
        # Saving: signxml renders the subject (rfc4514_string, ~30 µs) on every call only for an
        # error message; trust.py has already judged the certificate's validity as of arrival.
        return f"{cert_source} (serial={cert.serial_number})"

    def _verify_reference(self, reference: etree._Element, index: int, root: etree._Element,
                          uri_resolver: Any, *args: Any) -> Any:
        uri = reference.get("URI") or ""
        digest_method = self._find(reference, "DigestMethod").get("Algorithm")
        digest_value = "".join((self._find(reference, "DigestValue").text or "").split())
        if uri.startswith("#"):
            result = super()._verify_reference(reference, index, root, uri_resolver, *args)
            transform = reference.find(f"{_ds('Transforms')}/{_ds('Transform')}")
            transform_uri = None if transform is None else transform.get("Algorithm")
        else:
            result = self._verify_member_reference(reference, index, uri, digest_method, digest_value, *args)
            transform_uri = None
        # Record which reference was verified, read from the verified SignedInfo (signxml's
        # results carry no URI), so the caller matches results to members exactly.
        self.verified_references.append(VerifiedReference(
            uri=uri, digest_method=digest_method, digest_value=digest_value, transform=transform_uri,
            signed_xml=result.signed_xml if uri.startswith("#") else None))
        return result

    def _verify_member_reference(self, reference: etree._Element, index: int, uri: str, digest_method: str,
                                 digest_value: str, c14n_algorithm: Any, signature: etree._Element,
                                 signature_key_used: Any) -> VerifyResult:
        # Saving: for a detached member reference signxml would serialise and re-parse the
        # whole kousei.xml (a copy only the enveloped transform needs) and then try to parse
        # the member itself as XML for a signed_xml nobody reads. What it checks is kept:
        # the member resolved by exact name, no transforms, an allowed digest algorithm, and
        # the digest of the member's raw bytes.
        payload = self.resolve_member(uri)
        if payload is None:
            raise InvalidInput(f"Unable to resolve reference URI: {uri}")
        if self._find(reference, "Transforms", require=False) is not None:
            raise InvalidInput(f"Transforms are not allowed on a member reference: {uri}")
        algorithm = DigestAlgorithm(digest_method)
        self.check_digest_alg_expected(algorithm)
        if base64.b64decode(digest_value) != self._get_digest(payload, algorithm):
            raise InvalidDigest(f"Digest mismatch for reference {index} ({uri})")
        return VerifyResult(payload, None, signature, signature_key=b"")
