"""A JPKI-like test hierarchy that copies ``jpki-profile.md`` field by field.

Real My Number cards cannot be used in tests, so this module builds the same shape: one tier,
two self-signed roots with the **same DN** and different keys (older and newer generation),
signing certificates carrying the four basic facts as ``otherName`` entries, one
user-authentication certificate, one expired and one revoked resident, and a DER CRL per
(root, municipality) partition.

It is a TEST PKI: every private key is written as unencrypted PKCS#8 PEM on purpose.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from gateway.basicfacts import (  # noqa: F401  (JPKI_FACT_ARC is re-exported for tests)
    JPKI_FACT_ARC,
    OID_ADDRESS,
    OID_ADDRESS_FLAGS,
    OID_BIRTH,
    OID_NAME,
    OID_NAME_FLAGS,
    OID_SEX,
)
from gateway.crlrefresh import REASON_CODES
from gateway.models import Applicant

POLICY_SIGNING_PRODUCTION = x509.ObjectIdentifier("1.2.392.200149.8.5.1.1.20")
POLICY_SIGNING_TEST = x509.ObjectIdentifier("1.2.392.200149.8.5.1.0.20")
POLICY_USER_AUTH = x509.ObjectIdentifier("1.2.392.200149.8.5.1.3.30")


class Municipality(NamedTuple):
    code: str
    """地方公共団体コード with check digit."""
    prefecture: str
    city: str


DEFAULT_MUNICIPALITIES: tuple[tuple[str, str, str], ...] = (
    ("131016", "東京都", "千代田区"), ("271004", "大阪府", "大阪市"))


@dataclass(frozen=True)
class TestResident:
    """A card holder: the certificate, its key and the basic facts written into it."""

    __test__ = False  # not a pytest test class

    id: str
    name: str
    name_kana: str
    sex: str
    birth: str
    """EYYYYMMDD with the era code first."""
    address: str
    name_flags: str
    address_flags: str
    postal_code: str
    email: str
    municipality: Municipality
    root_index: int
    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    cert_path: Path
    key_path: Path
    revoked: bool = False
    expired: bool = False
    auth: bool = False
    """A user-authentication (利用者証明用) certificate: must be refused for signing."""

    @property
    def applicant(self) -> Applicant:
        """What the resident types into the portal's 申請者情報."""
        return Applicant(name=self.name, name_kana=self.name_kana, postal_code=self.postal_code,
                         address=self.address, phone="0312345678", email=self.email)


@dataclass(frozen=True)
class TestPKI:
    __test__ = False

    directory: Path
    roots: tuple[x509.Certificate, ...]
    root_keys: tuple[rsa.RSAPrivateKey, ...]
    root_paths: tuple[Path, ...]
    residents: tuple[TestResident, ...]
    municipalities: tuple[Municipality, ...]
    crl_paths: tuple[Path, ...]
    production_like: bool = False

    @property
    def roots_dir(self) -> Path:
        return self.directory / "roots"

    def resident(self, resident_id: str) -> TestResident:
        for resident in self.residents:
            if resident.id == resident_id:
                return resident
        raise KeyError(resident_id)

    def crl_path(self, root_index: int, municipality_code: str) -> Path:
        return self.directory / "crl" / root_ski(self.roots[root_index]).hex() / f"{municipality_code}.crl"


# (id, 氏名, フリガナ, 性別, 生年月日, street after the city, substitute positions in the street,
#  name flags, municipality index, root index, flags). The 﨑 of 山﨑 and the 髙 of 髙麗橋 are
#  outside JIS levels 1-2, so the card carries 崎/高 and flags the position.
_RESIDENTS = (
    ("yamada-taro", "山田　太郎", "ヤマダ　タロウ", "1", "319800415", "千代田１丁目１番１号", (), "00000", 0, 1, ()),
    ("suzuki-hanako", "鈴木　花子", "スズキ　ハナコ", "2", "419900123", "丸の内２丁目３番４号", (), "00000", 0, 0, ()),
    ("yamasaki-jiro", "山崎　次郎", "ヤマサキ　ジロウ", "1", "319750630", "北区中之島１丁目３番２０号", (), "01000", 1, 1, ()),
    ("tanaka-misaki", "田中　美咲", "タナカ　ミサキ", "2", "420010310", "中央区高麗橋２丁目１番２２号", (3,), "00000", 1, 0, ()),
    ("sato-ichiro", "佐藤　一郎", "サトウ　イチロウ", "1", "319650101", "神田錦町３丁目５番", (), "00000", 0, 1, ("revoked",)),
    ("ito-kenji", "伊藤　健二", "イトウ　ケンジ", "1", "319701120", "西区江戸堀１丁目９番１号", (), "00000", 1, 0, ("expired",)),
    ("watanabe-kumiko", "渡辺　久美子", "ワタナベ　クミコ", "2", "319851205", "一番町１０番地", (), "000000", 0, 1, ("auth",)),
)
_POSTAL = {"131016": "1000001", "271004": "5300005"}


def root_ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def root_name(production_like: bool = False) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI" if production_like else "JPKI-TEST"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "JPKI for digital signature"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME,
                           "Japan Agency for Local Authority Information Systems"),
    ])


def crl_distribution_name(municipality: Municipality) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "JPKI for digital signature"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "CRL Distribution Points"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, municipality.prefecture),
        x509.NameAttribute(NameOID.COMMON_NAME, municipality.city),
    ])


def der_utf8string(text: str) -> bytes:
    """DER of an ASN.1 UTF8String (x509.OtherName wants the encoded value)."""
    body = text.encode("utf-8")
    if len(body) < 0x80:
        return bytes([0x0C, len(body)]) + body
    length = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(length)]) + length + body


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _fifth_birthday_after(issued: dt.datetime, birth: str) -> dt.datetime:
    month, day = int(birth[5:7]), int(birth[7:9])
    first = issued.replace(month=month, day=day, hour=23, minute=59, second=59)
    if first <= issued:
        first = first.replace(year=first.year + 1)
    return first.replace(year=first.year + 4)


def _make_root(key: rsa.RSAPrivateKey, not_before: dt.datetime, not_after: dt.datetime,
               production_like: bool) -> x509.Certificate:
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (x509.CertificateBuilder()
            .subject_name(root_name(production_like)).issuer_name(root_name(production_like))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                           critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier(ski.digest, None, None), critical=False)
            .sign(key, hashes.SHA256()))


def issue_certificate(root_cert: x509.Certificate, root_key: rsa.RSAPrivateKey, key: rsa.RSAPrivateKey,
                      *, municipality: Municipality, cn: str, not_before: dt.datetime,
                      not_after: dt.datetime, facts: Sequence[str] | None,
                      policy: x509.ObjectIdentifier, auth: bool = False) -> x509.Certificate:
    """Issue an end-entity certificate per the profile.

    ``facts`` = (氏名, 氏名代替文字フラグ, 性別, 生年月日, 住所, 住所代替文字フラグ) for a signing
    certificate; ``None`` for a user-authentication one (no personal data, digitalSignature only).
    Public so tests can issue odd certificates (wrong policy, other root) with the same profile.
    """
    subject = [x509.NameAttribute(NameOID.COUNTRY_NAME, "JP")]
    if not auth:
        subject += [x509.NameAttribute(NameOID.LOCALITY_NAME, municipality.prefecture),
                    x509.NameAttribute(NameOID.LOCALITY_NAME, municipality.city)]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name(subject)).issuer_name(root_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.KeyUsage(True, not auth, False, False, False, False, False, False, False),
                              critical=True)
               .add_extension(x509.CertificatePolicies([x509.PolicyInformation(policy, None)]), critical=False)
               .add_extension(x509.IssuerAlternativeName([x509.DirectoryName(x509.Name([
                   x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                   x509.NameAttribute(NameOID.ORGANIZATION_NAME, "公的個人認証サービス")]))]), critical=False)
               .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                   [x509.DirectoryName(crl_distribution_name(municipality))], None, None, None)]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier(root_ski(root_cert), None, None), critical=False))
    if facts is not None:
        oids = (OID_NAME, OID_NAME_FLAGS, OID_SEX, OID_BIRTH, OID_ADDRESS, OID_ADDRESS_FLAGS)
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.OtherName(oid, der_utf8string(value)) for oid, value in zip(oids, facts, strict=True)]),
            critical=False)
    return builder.sign(root_key, hashes.SHA256())


def make_crl(root_cert: x509.Certificate, root_key: rsa.RSAPrivateKey, municipality: Municipality, *,
             revoked: Iterable[tuple[int, dt.datetime]] = (), this_update: dt.datetime,
             next_update: dt.datetime, number: int = 1) -> bytes:
    """A DER CRL for one (root, municipality) partition. Public so tests can make stale ones."""
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(root_cert.subject).last_update(this_update).next_update(next_update)
               .add_extension(x509.AuthorityKeyIdentifier(root_ski(root_cert), None, None), critical=False)
               .add_extension(x509.CRLNumber(number), critical=False)
               .add_extension(x509.IssuingDistributionPoint(
                   full_name=[x509.DirectoryName(crl_distribution_name(municipality))], relative_name=None,
                   only_contains_user_certs=True, only_contains_ca_certs=False, only_some_reasons=None,
                   indirect_crl=False, only_contains_attribute_certs=False), critical=True))
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
            .add_extension(x509.CRLReason(x509.ReasonFlags.superseded), critical=False).build())
    return builder.sign(root_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def make_large_crl(root_cert: x509.Certificate, root_key: rsa.RSAPrivateKey, municipality: Municipality, *,
                   revoked: Iterable[tuple[int, dt.datetime]], this_update: dt.datetime,
                   next_update: dt.datetime, number: int = 1,
                   reason: x509.ReasonFlags = x509.ReasonFlags.superseded) -> bytes:
    """The CRL :func:`make_crl` makes, for many entries (benchmarks: 10⁶ entries in under a minute).

    cryptography's builder copies its entry list on every ``add_revoked_certificate`` (10⁵
    entries take ~40 s, 10⁶ would take hours), so the entries are DER-encoded here and spliced
    into the TBSCertList of a one-entry CRL from :func:`make_crl`, which is then signed again.
    """
    template = make_crl(root_cert, root_key, municipality, revoked=[(1, this_update)], this_update=this_update,
                        next_update=next_update, number=number)
    outer = _der_children(template)
    tbs = _der_children(outer[0])
    reason_code = _der(0x04, _der(0x0A, bytes([REASON_CODES[reason]])))  # OCTET STRING { ENUMERATED }
    reason_ext = _der(0x30, _der(0x30, bytes.fromhex("0603551d15") + reason_code))  # id-ce-cRLReasons
    body = b"".join(_der(0x30, _der(0x02, serial.to_bytes(serial.bit_length() // 8 + 1, "big", signed=True))
                         + _der_time(when) + reason_ext) for serial, when in revoked)
    # TBSCertList: version, signature, issuer, thisUpdate, nextUpdate, revokedCertificates, [0] extensions
    new_tbs = _der(0x30, b"".join(tbs[:5]) + (_der(0x30, body) if body else b"") + b"".join(tbs[6:]))
    signature = root_key.sign(new_tbs, padding.PKCS1v15(), hashes.SHA256())
    return _der(0x30, new_tbs + outer[1] + _der(0x03, b"\x00" + signature))


def reissue_crls(pki: TestPKI, *, now: dt.datetime | None = None,
                 validity: dt.timedelta = dt.timedelta(days=2)) -> tuple[Path, ...]:
    """Issue every partition's CRL again, fresh from ``now``, same entries, CRL number + 1.

    The CRLs :func:`init_pki` writes are fresh for two days; a PKI kept longer (the demo's) needs
    new ones, or every signed package would wait for revocation data.
    """
    now = (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    for path in pki.crl_paths:
        old = x509.load_der_x509_crl(path.read_bytes())
        root_index = next(i for i, root in enumerate(pki.roots) if root_ski(root).hex() == path.parent.name)
        municipality = next(m for m in pki.municipalities if m.code == path.stem)
        number = old.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
        path.write_bytes(make_crl(pki.roots[root_index], pki.root_keys[root_index], municipality,
                                  revoked=[(r.serial_number, r.revocation_date_utc) for r in old],
                                  this_update=now, next_update=now + validity, number=number))
    return pki.crl_paths


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def _der_time(when: dt.datetime) -> bytes:
    when = when.astimezone(dt.timezone.utc)
    if 1950 <= when.year < 2050:
        return _der(0x17, when.strftime("%y%m%d%H%M%SZ").encode())
    return _der(0x18, when.strftime("%Y%m%d%H%M%SZ").encode())


def _der_children(der: bytes) -> list[bytes]:
    """The encoded children of the outermost constructed element (definite lengths only)."""
    def header(at: int) -> tuple[int, int]:
        first = der[at + 1]
        if first < 0x80:
            return 2, first
        width = first & 0x7F
        return 2 + width, int.from_bytes(der[at + 2:at + 2 + width], "big")

    skip, _ = header(0)
    children, at = [], skip
    while at < len(der):
        head, length = header(at)
        children.append(der[at:at + head + length])
        at += head + length
    return children


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # test PKI: unencrypted


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def init_pki(directory: Path, *, municipalities: Sequence[tuple[str, str, str]] = DEFAULT_MUNICIPALITIES,
             now: dt.datetime | None = None, production_like: bool = False) -> TestPKI:
    """Create the whole hierarchy under ``directory`` and return it (see module docstring)."""
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).replace(microsecond=0)
    directory = Path(directory)
    for sub in ("roots", "keys", "certs", "crl"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    munis = tuple(Municipality(*m) for m in municipalities)
    day = dt.timedelta(days=1)
    generations = ((now - 6 * 365 * day, now + 4 * 365 * day), (now - 2 * 365 * day, now + 8 * 365 * day))
    root_keys = tuple(_new_key() for _ in generations)
    roots = tuple(_make_root(k, nb, na, production_like) for k, (nb, na) in zip(root_keys, generations))
    policy = POLICY_SIGNING_PRODUCTION if production_like else POLICY_SIGNING_TEST
    index: dict = {"format": 1, "production_like": production_like, "created": now.isoformat(),
                   "municipalities": [list(m) for m in munis], "roots": [], "residents": [], "crls": []}
    for i, (root, key) in enumerate(zip(roots, root_keys)):
        _write_cert(directory / "roots" / f"root-{i + 1}.pem", root)
        _write_key(directory / "keys" / f"root-{i + 1}.key.pem", key)
        index["roots"].append({"cert": f"roots/root-{i + 1}.pem", "key": f"keys/root-{i + 1}.key.pem",
                               "ski": root_ski(root).hex()})
    residents = []
    for seq, (rid, name, kana, sex, birth, street, street_subst, name_flags, mi, ri, flags) in enumerate(_RESIDENTS):
        muni = munis[mi % len(munis)]
        address = f"{muni.prefecture}{muni.city}{street}"
        offset = len(muni.prefecture) + len(muni.city)
        address_flags = "".join("1" if i - offset in street_subst else "0" for i in range(len(address)))
        issued = now - (3 * 365 if ri == 0 else 30) * day
        not_after = _fifth_birthday_after(issued, birth)
        if "expired" in flags:
            issued, not_after = now - (5 * 365 + 10) * day, now - 10 * day
        key = _new_key()
        auth = "auth" in flags
        cert = issue_certificate(
            roots[ri], root_keys[ri], key, municipality=muni, cn=f"{issued:%Y%m%d%H%M%S}{seq + 1:06d}{muni.code}",
            not_before=issued, not_after=not_after, policy=POLICY_USER_AUTH if auth else policy, auth=auth,
            facts=None if auth else (name, name_flags, sex, birth, address, address_flags))
        cert_path, key_path = directory / "certs" / f"{rid}.pem", directory / "keys" / f"{rid}.key.pem"
        _write_cert(cert_path, cert)
        _write_key(key_path, key)
        entry = {"id": rid, "name": name, "name_kana": kana, "sex": sex, "birth": birth, "address": address,
                 "name_flags": name_flags, "address_flags": address_flags,
                 "postal_code": _POSTAL.get(muni.code, "1000001"), "email": f"{rid}@example.jp",
                 "municipality": muni.code, "root_index": ri, "serial": format(cert.serial_number, "x"),
                 "cert": f"certs/{rid}.pem", "key": f"keys/{rid}.key.pem",
                 "revoked": "revoked" in flags, "expired": "expired" in flags, "auth": auth}
        index["residents"].append(entry)
        residents.append(_resident_from_entry(entry, muni, cert, key, directory))
    for ri, (root, key) in enumerate(zip(roots, root_keys)):
        for muni in munis:
            revoked = [(r.cert.serial_number, now - day) for r in residents
                       if r.revoked and r.root_index == ri and r.municipality == muni]
            rel = Path("crl") / root_ski(root).hex() / f"{muni.code}.crl"
            (directory / rel).parent.mkdir(parents=True, exist_ok=True)
            (directory / rel).write_bytes(make_crl(root, key, muni, revoked=revoked, this_update=now,
                                                   next_update=now + 2 * day, number=1))
            index["crls"].append({"path": str(rel), "root_index": ri, "municipality": muni.code, "number": 1})
    (directory / "pki.json").write_text(json.dumps(index, ensure_ascii=False, indent=2), encoding="utf-8")
    return load_pki(directory)


def _resident_from_entry(entry: dict, muni: Municipality, cert: x509.Certificate, key: rsa.RSAPrivateKey,
                         directory: Path) -> TestResident:
    return TestResident(
        id=entry["id"], name=entry["name"], name_kana=entry["name_kana"], sex=entry["sex"], birth=entry["birth"],
        address=entry["address"], name_flags=entry["name_flags"], address_flags=entry["address_flags"],
        postal_code=entry["postal_code"], email=entry["email"], municipality=muni, root_index=entry["root_index"],
        cert=cert, key=key, cert_path=directory / entry["cert"], key_path=directory / entry["key"],
        revoked=entry["revoked"], expired=entry["expired"], auth=entry["auth"])


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def load_pki(directory: Path) -> TestPKI:
    """Reload a hierarchy written by :func:`init_pki` from its ``pki.json`` index."""
    directory = Path(directory)
    index = json.loads((directory / "pki.json").read_text(encoding="utf-8"))
    munis = tuple(Municipality(*m) for m in index["municipalities"])
    by_code = {m.code: m for m in munis}
    residents = tuple(
        _resident_from_entry(e, by_code[e["municipality"]],
                             x509.load_pem_x509_certificate((directory / e["cert"]).read_bytes()),
                             _load_key(directory / e["key"]), directory)
        for e in index["residents"])
    return TestPKI(
        directory=directory,
        roots=tuple(x509.load_pem_x509_certificate((directory / r["cert"]).read_bytes()) for r in index["roots"]),
        root_keys=tuple(_load_key(directory / r["key"]) for r in index["roots"]),
        root_paths=tuple(directory / r["cert"] for r in index["roots"]),
        residents=residents, municipalities=munis,
        crl_paths=tuple(directory / c["path"] for c in index["crls"]),
        production_like=index["production_like"])


__all__ = ["DEFAULT_MUNICIPALITIES", "Municipality", "TestPKI", "TestResident", "init_pki", "load_pki",
           "issue_certificate", "make_crl", "make_large_crl", "reissue_crls", "root_ski", "root_name", "crl_distribution_name",
           "der_utf8string",
           "POLICY_SIGNING_PRODUCTION", "POLICY_SIGNING_TEST", "POLICY_USER_AUTH"]
