"""A small certificate factory for trust tests: roots and leaves varied one property at a time.

``gateway.testpki`` copies the JPKI profile field by field; this module builds certificates
*outside* it (other names, other keys, other extension order) and deliberately broken ones
(weak keys and hashes, wrong keyUsage, cA=TRUE leaves, unknown critical extensions …), each
with cryptography's own builder so every test certificate is a real, correctly signed one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gateway.testpki import POLICY_SIGNING_PRODUCTION

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
Extension = tuple[x509.ExtensionType, bool]
"""An extension value and its critical flag."""

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
DAY = dt.timedelta(days=1)
SIGNING_KEY_USAGE = x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                  data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                  crl_sign=False, encipher_only=False, decipher_only=False)
CA_KEY_USAGE = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=True,
                             crl_sign=True, encipher_only=False, decipher_only=False)
UNKNOWN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.1")


@cache
def rsa_key(bits: int = 2048, exponent: int = 65537, tag: str = "") -> rsa.RSAPrivateKey:
    """One key per (bits, exponent, tag): generated once per test session (RSA keygen is slow)."""
    return rsa.generate_private_key(public_exponent=exponent, key_size=bits)


@cache
def ec_key(tag: str = "") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key (so it can issue further certificates)."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def key_identifier(self) -> bytes:
        return x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()).digest


def build(subject: x509.Name, issuer_name: x509.Name, public_key, signer: PrivateKey,
          extensions: Sequence[Extension], *, not_before: dt.datetime, not_after: dt.datetime,
          serial: int | None = None, hash_algorithm: hashes.HashAlgorithm | None = hashes.SHA256()
          ) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(public_key)
               .serial_number(serial or x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after))
    for value, critical in extensions:
        builder = builder.add_extension(value, critical=critical)
    return builder.sign(signer, hash_algorithm)


def make_root(subject: x509.Name, *, key: PrivateKey | None = None, not_before: dt.datetime = NOW - 400 * DAY,
              not_after: dt.datetime = NOW + 3650 * DAY, key_usage: x509.KeyUsage | None = CA_KEY_USAGE,
              path_length: int | None = 0, ski: bool = True,
              order: Callable[[list[Extension]], list[Extension]] = list) -> Issued:
    """A self-signed CA (``order`` may permute its extensions)."""
    key = key or rsa_key(tag=f"root:{subject.rfc4514_string()}")
    extensions: list[Extension] = [(x509.BasicConstraints(ca=True, path_length=path_length), True)]
    if key_usage is not None:
        extensions.append((key_usage, True))
    if ski:
        extensions.append((x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False))
    cert = build(subject, subject, key.public_key(), key, order(extensions), not_before=not_before,
                 not_after=not_after)
    return Issued(cert, key)


_DEFAULT_LEAF_NAME = name((NameOID.COUNTRY_NAME, "JP"), (NameOID.LOCALITY_NAME, "東京都"),
                          (NameOID.LOCALITY_NAME, "千代田区"), (NameOID.COMMON_NAME, "20261128000000000001131016"))
_KEEP = object()


def make_leaf(issuer: Issued, *, subject: x509.Name = _DEFAULT_LEAF_NAME, key: PrivateKey | None = None,
              not_before: dt.datetime = NOW - 30 * DAY, not_after: dt.datetime = NOW + 365 * DAY,
              key_usage: x509.KeyUsage | None = SIGNING_KEY_USAGE, key_usage_critical: bool = True,
              basic_constraints: x509.BasicConstraints | None = None,
              policies: Sequence[x509.ObjectIdentifier] | None = (POLICY_SIGNING_PRODUCTION,),
              authority_key_id: bytes | None | object = _KEEP, extra: Sequence[Extension] = (),
              issuer_name: x509.Name | None = None, hash_algorithm: hashes.HashAlgorithm | None = hashes.SHA256(),
              order: Callable[[list[Extension]], list[Extension]] = list) -> Issued:
    """An end-entity certificate signed by ``issuer``; defaults meet the JPKI signing profile.

    ``authority_key_id``: the issuer's key identifier by default, ``None`` to leave the AKI out,
    or explicit bytes (e.g. another root's). ``extra`` extensions go last, before ``order``.
    """
    key = key or rsa_key()
    extensions: list[Extension] = []
    if key_usage is not None:
        extensions.append((key_usage, key_usage_critical))
    if basic_constraints is not None:
        extensions.append((basic_constraints, True))
    if policies is not None:
        extensions.append((x509.CertificatePolicies([x509.PolicyInformation(p, None) for p in policies]), False))
    aki = issuer.key_identifier if authority_key_id is _KEEP else authority_key_id
    if aki is not None:
        extensions.append((x509.AuthorityKeyIdentifier(aki, None, None), False))  # type: ignore[arg-type]
    extensions.extend(extra)
    cert = build(subject, issuer_name or issuer.cert.subject, key.public_key(), issuer.key, order(extensions),
                 not_before=not_before, not_after=not_after, hash_algorithm=hash_algorithm)
    return Issued(cert, key)


def unknown_extension(critical: bool, oid: x509.ObjectIdentifier = UNKNOWN_OID) -> Extension:
    return x509.UnrecognizedExtension(oid, b"\x05\x00"), critical  # an ASN.1 NULL


__all__ = ["CA_KEY_USAGE", "DAY", "Extension", "Issued", "NOW", "SIGNING_KEY_USAGE", "UNKNOWN_OID", "build",
           "ec_key", "make_leaf", "make_root", "name", "rsa_key", "unknown_extension"]
