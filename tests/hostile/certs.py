"""Certificates and CRLs the test PKI does not ship, made with the same profile (jpki-profile.md).

The session PKI has an expired, a revoked and a user-authentication resident; everything else
(not yet valid, weak key, SHA-1, wrong keyUsage, attacker roots with the same DN, CRL
partitions that are stale, badly signed or missing) is issued here from the PKI's own root
keys with :func:`gateway.testpki.issue_certificate`, or by hand where the profile must be
broken. Keys are cached per process: RSA key generation is the slow part.
"""

from __future__ import annotations

import datetime as dt
import functools
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from gateway.testpki import (
    POLICY_SIGNING_PRODUCTION,
    POLICY_SIGNING_TEST,
    Municipality,
    TestPKI,
    _der,
    issue_certificate,
    make_crl,
    root_name,
    root_ski,
)

Signer = tuple[rsa.RSAPrivateKey, x509.Certificate]
ROOT = 1
"""The newer root generation issues every certificate made here."""
DAY = dt.timedelta(days=1)
# CRL partitions that exist only for these cases (札幌市, 函館市, 小樽市): one stale, one badly
# signed, one with no CRL at all. The package itself is still addressed to the resident's city.
STALE_CITY = Municipality("011002", "北海道", "札幌市")
BAD_SIGNATURE_CITY = Municipality("012025", "北海道", "函館市")
NO_CRL_CITY = Municipality("012033", "北海道", "小樽市")
FACTS = ("山田　太郎", "00000", "1", "319800415", "東京都千代田区千代田１丁目１番１号", "0" * 17)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@functools.lru_cache(maxsize=None)
def key(name: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA key per ``name`` (cached: the same name gives the same key in one run)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def leaf(pki: TestPKI, name: str, *, municipality: Municipality | None = None, bits: int = 2048,
         not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
         policy: x509.ObjectIdentifier | None = None, auth: bool = False) -> Signer:
    """A signing certificate from the PKI's own root, per the profile unless told otherwise."""
    signer_key = key(name, bits)
    cert = issue_certificate(
        pki.roots[ROOT], pki.root_keys[ROOT], signer_key, municipality=municipality or pki.municipalities[0],
        cn=f"{now():%Y%m%d%H%M%S}{abs(hash(name)) % 10**6:06d}131016",
        not_before=not_before or now() - DAY, not_after=not_after or now() + 365 * DAY,
        facts=None if auth else FACTS,
        policy=policy or (POLICY_SIGNING_PRODUCTION if pki.production_like else POLICY_SIGNING_TEST), auth=auth)
    return signer_key, cert


def custom_leaf(pki: TestPKI, name: str, *, hash_algorithm: hashes.HashAlgorithm | None = None,
                key_usage: x509.KeyUsage | None = None, key_usage_critical: bool = True, ca: bool = False,
                critical_unknown: bool = False, issuer_key: rsa.RSAPrivateKey | None = None,
                issuer: x509.Certificate | None = None, raw_subject_alt_name: bytes | None = None) -> Signer:
    """A leaf built by hand, for the properties :func:`issue_certificate` keeps right.

    ``raw_subject_alt_name``: the subjectAltName's DER as given (e.g. an entry no library decodes)."""
    issuer = issuer or pki.roots[ROOT]
    signer_key = key(name)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                                        x509.NameAttribute(NameOID.COMMON_NAME, f"hostile-{name}")]))
               .issuer_name(issuer.subject).public_key(signer_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now() - DAY).not_valid_after(now() + 30 * DAY)
               .add_extension(key_usage or x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                              critical=key_usage_critical)
               .add_extension(x509.CertificatePolicies([x509.PolicyInformation(POLICY_SIGNING_TEST, None)]),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier(root_ski(issuer), None, None), critical=False))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    if critical_unknown:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00"), critical=True)
    if raw_subject_alt_name is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, raw_subject_alt_name), critical=False)
    return signer_key, builder.sign(issuer_key or pki.root_keys[ROOT], hash_algorithm or hashes.SHA256())


_SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")  # DER of OID 1.2.840.113549.1.1.11
_SHA1_WITH_RSA = bytes.fromhex("06092a864886f70d010105")  # 1.2.840.113549.1.1.5


def sha1_leaf(pki: TestPKI, name: str) -> Signer:
    """A leaf signed by the real root with sha1WithRSAEncryption.

    cryptography no longer signs certificates with SHA-1, so the TBS of a SHA-256 leaf gets the
    SHA-1 algorithm identifier and is signed by hand (the root key signs PKCS#1 v1.5 over SHA-1).
    """
    signer_key, cert = custom_leaf(pki, name)
    tbs = cert.tbs_certificate_bytes
    assert tbs.count(_SHA256_WITH_RSA) == 1
    tbs = tbs.replace(_SHA256_WITH_RSA, _SHA1_WITH_RSA)
    signature = pki.root_keys[ROOT].sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    algorithm = _der(0x30, _SHA1_WITH_RSA + b"\x05\x00")
    der = _der(0x30, tbs + algorithm + _der(0x03, b"\x00" + signature))
    return signer_key, x509.load_der_x509_certificate(der)


def attacker_root(*, forge_key_id_of: x509.Certificate | None = None) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A self-signed root with exactly the test roots' DN and its own key.

    ``forge_key_id_of``: claim that root's subjectKeyIdentifier too, so the issuer cannot be
    picked by key identifier alone either.
    """
    root_key = key("attacker-root" if forge_key_id_of is None else "attacker-root-forged")
    ski = root_ski(forge_key_id_of) if forge_key_id_of is not None else \
        x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()).digest
    cert = (x509.CertificateBuilder().subject_name(root_name()).issuer_name(root_name())
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now() - 365 * DAY).not_valid_after(now() + 3650 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier(ski), critical=False)
            .sign(root_key, hashes.SHA256()))
    return root_key, cert


def attacker_leaf(pki: TestPKI, *, forge_key_id: bool) -> Signer:
    """A profile-perfect signing certificate from an attacker root with the pinned roots' DN."""
    root_key, root = attacker_root(forge_key_id_of=pki.roots[ROOT] if forge_key_id else None)
    signer_key = key("attacker-leaf")
    cert = issue_certificate(root, root_key, signer_key, municipality=pki.municipalities[0],
                             cn=f"{now():%Y%m%d%H%M%S}000666131016", not_before=now() - DAY,
                             not_after=now() + 365 * DAY, facts=FACTS, policy=POLICY_SIGNING_TEST)
    return signer_key, cert


def self_signed_leaf() -> Signer:
    """A leaf that issued itself, with the pinned roots' DN as issuer and subject."""
    signer_key = key("self-signed")
    cert = (x509.CertificateBuilder().subject_name(root_name()).issuer_name(root_name())
            .public_key(signer_key.public_key()).serial_number(1)
            .not_valid_before(now() - DAY).not_valid_after(now() + DAY)
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.CertificatePolicies([x509.PolicyInformation(POLICY_SIGNING_TEST, None)]),
                           critical=False)
            .sign(signer_key, hashes.SHA256()))
    return signer_key, cert


# --------------------------------------------------------------------------- CRLs


def prepare_crl_dir(pki: TestPKI, target: Path) -> Path:
    """A revocation directory laid out as the test PKI writes it (``<root SKI hex>/<code>.crl``):
    the PKI's fresh CRLs, plus a stale CRL for :data:`STALE_CITY` and a CRL with a bad
    signature for :data:`BAD_SIGNATURE_CITY`. :data:`NO_CRL_CITY` has none."""
    shutil.copytree(pki.directory / "crl", target, dirs_exist_ok=True)
    root, root_key = pki.roots[ROOT], pki.root_keys[ROOT]
    folder = target / root_ski(root).hex()
    folder.mkdir(parents=True, exist_ok=True)
    stale = make_crl(root, root_key, STALE_CITY, this_update=now() - 10 * DAY, next_update=now() - 3 * DAY)
    (folder / f"{STALE_CITY.code}.crl").write_bytes(stale)
    # Right issuer name and authority key identifier, signed with another key.
    forged = make_crl(root, key("crl-forger"), BAD_SIGNATURE_CITY, this_update=now(), next_update=now() + 2 * DAY)
    (folder / f"{BAD_SIGNATURE_CITY.code}.crl").write_bytes(forged)
    return target


# --------------------------------------------------------------------------- package builders


def resident_signs(resident_id: str):
    """A package signed by one of the PKI's own special residents (expired, revoked, auth)."""
    return lambda kit: kit.package(signer=kit.pki.resident(resident_id))


def signs_with(make):
    """A package signed with ``make(pki) -> (key, certificate)``."""
    return lambda kit: kit.package(signer=make(kit.pki))


def root_signs(kit) -> bytes:
    """The pinned root's own key and certificate sign the package."""
    return kit.package(signer=(kit.pki.root_keys[ROOT], kit.pki.roots[ROOT]))
