"""CrlChecker: revocation as of arrival from the installed index, matched by issuer key and DP."""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import json
import os
import socket

import pytest
from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from gateway import crlcheck
from gateway.crlcheck import CrlChecker, certificate_dps
from gateway.crlindex import ALL_CERTIFICATES, Partition, name_key
from gateway.crlrefresh import CrlSource, refresh
from gateway.testpki import root_ski
from tests.revocation_helpers import DAY, anchors_of, crl_bytes, signer_of, utcnow, write


def install(tmp_path, pki, *crls: tuple[str, bytes]):
    paths = [write(tmp_path / "crl", name, data) for name, data in crls]
    report = refresh(tmp_path / "index", [CrlSource(str(p)) for p in paths], anchors_of(pki))
    assert report.ok, report
    return report


def checker(tmp_path, pki, **kw) -> CrlChecker:
    return CrlChecker(tmp_path / "index", **kw)


def serial(pki, resident: str) -> int:
    return pki.resident(resident).cert.serial_number


def test_good_and_revoked_with_evidence(tmp_path, pki):
    revoked_at = utcnow() - DAY
    sato = serial(pki, "sato-ichiro")
    install(tmp_path, pki, ("a.crl", crl_bytes(pki, 1, 0, number=7, revoked=[(sato, revoked_at)])))
    check = checker(tmp_path, pki).check
    cert, signer = signer_of(pki, "yamada-taro")
    good = check(cert, signer, utcnow())
    assert good.state == "good" and good.source == f"crl:{root_ski(pki.roots[1]).hex()}/7"
    assert {"crl_number", "this_update", "next_update", "issuer_key_id", "distribution_point", "partition",
            "location", "crl_sha256", "serial", "as_of"} <= set(good.detail)
    assert good.detail["crl_number"] == 7 and "千代田区" in good.detail["distribution_point"]
    json.dumps(dict(good.detail))  # stored with the application
    cert, signer = signer_of(pki, "sato-ichiro")
    revoked = check(cert, signer, utcnow())
    assert revoked.state == "revoked"
    assert revoked.detail["revocation_date"] == revoked_at.isoformat()
    assert revoked.detail["revocation_reason"] == "superseded"


def test_revoked_after_arrival_was_good_at_arrival(tmp_path, pki):
    revoked_at = utcnow() - DAY
    install(tmp_path, pki, ("a.crl", crl_bytes(pki, 1, 0, revoked=[(serial(pki, "sato-ichiro"), revoked_at)])))
    cert, signer = signer_of(pki, "sato-ichiro")
    check = checker(tmp_path, pki).check
    before = check(cert, signer, revoked_at - dt.timedelta(seconds=1))  # a deferred package that arrived earlier
    assert before.state == "good" and before.detail["revoked_after_arrival"] is True
    assert check(cert, signer, revoked_at).state == "revoked"  # at the very second: revoked


def test_stale_crl_is_unknown_and_names_the_partition_it_waits_for(tmp_path, pki):
    now = utcnow()
    report = install(tmp_path, pki, ("a.crl", crl_bytes(pki, 1, 0, this_update=now - DAY, next_update=now + DAY)))
    [pid] = report.changed
    cert, signer = signer_of(pki, "yamada-taro")
    later = checker(tmp_path, pki, clock=lambda: now + 2 * DAY)
    status = later.check(cert, signer, now + 2 * DAY)
    assert status.state == "unknown" and status.detail["reason"] == "revocation-crl-stale"
    assert status.awaiting == (pid,)
    assert status.detail["stale"][0]["next_update"] == (now + DAY).isoformat()
    # the grace setting keeps a late CRL usable for a while
    assert checker(tmp_path, pki, clock=lambda: now + DAY + dt.timedelta(minutes=5),
                   grace_seconds=600).check(cert, signer, now).state == "good"


def test_missing_crl_is_unknown(tmp_path, pki):
    cert, signer = signer_of(pki, "yamada-taro")
    status = checker(tmp_path, pki).check(cert, signer, utcnow())  # nothing installed at all
    assert status.state == "unknown" and status.detail["reason"] == "revocation-crl-missing"
    install(tmp_path, pki, ("osaka.crl", crl_bytes(pki, 1, 1)), ("old-root.crl", crl_bytes(pki, 0, 0)))
    status = checker(tmp_path, pki).check(cert, signer, utcnow())  # other DP, other root: still no data
    assert status.state == "unknown" and status.detail["reason"] == "revocation-crl-missing"
    assert status.awaiting and status.awaiting[0].startswith(f"crl:{root_ski(pki.roots[1]).hex()}:")


def test_two_root_generations_have_separate_crls(tmp_path, pki):
    # suzuki (older root) and yamada (newer root) live in the same municipality. Serials are unique
    # only per issuing key: listing a serial in one root's CRL says nothing about the other root's.
    suzuki, yamada = serial(pki, "suzuki-hanako"), serial(pki, "yamada-taro")
    long_ago = utcnow() - 10 * DAY
    install(tmp_path, pki, ("old.crl", crl_bytes(pki, 0, 0, revoked=[(suzuki, long_ago), (yamada, long_ago)])),
            ("new.crl", crl_bytes(pki, 1, 0)))
    check = checker(tmp_path, pki).check
    assert check(*signer_of(pki, "suzuki-hanako"), utcnow()).state == "revoked"
    status = check(*signer_of(pki, "yamada-taro"), utcnow())
    assert status.state == "good" and status.detail["issuer_key_id"] == root_ski(pki.roots[1]).hex()


def test_a_serial_in_another_municipalitys_crl_does_not_count(tmp_path, pki):
    install(tmp_path, pki, ("chiyoda.crl", crl_bytes(pki, 1, 0)),
            ("osaka.crl", crl_bytes(pki, 1, 1, revoked=[(serial(pki, "yamada-taro"), utcnow() - DAY)])))
    assert checker(tmp_path, pki).check(*signer_of(pki, "yamada-taro"), utcnow()).state == "good"


def test_check_uses_no_network_and_no_files(tmp_path, pki, monkeypatch):
    install(tmp_path, pki, ("a.crl", crl_bytes(pki, 1, 0, revoked=[(serial(pki, "sato-ichiro"), utcnow() - DAY)])))
    crl = checker(tmp_path, pki)
    certs = [signer_of(pki, r) for r in ("yamada-taro", "sato-ichiro", "suzuki-hanako")]

    def forbidden(*args, **kwargs):
        raise AssertionError("I/O during check()")

    for target, name in ((socket.socket, "connect"), (socket, "create_connection"), (socket, "getaddrinfo"),
                         (builtins, "open"), (os, "open"), (os, "stat")):
        monkeypatch.setattr(target, name, forbidden)
    states = [crl.check(cert, signer, utcnow()).state for cert, signer in certs]
    assert states == ["good", "revoked", "unknown"]


def test_reload_picks_up_another_process_refresh(tmp_path, pki):
    crl = checker(tmp_path, pki)
    assert crl.reload_if_changed() == frozenset()
    report = install(tmp_path, pki, ("a.crl", crl_bytes(pki, 1, 0, number=1)))
    assert crl.reload_if_changed() == report.changed
    assert crl.reload_if_changed() == frozenset()
    cert, signer = signer_of(pki, "yamada-taro")
    assert crl.check(cert, signer, utcnow()).detail["crl_number"] == 1
    report = install(tmp_path, pki, ("a.crl", crl_bytes(pki, 1, 0, number=2)))
    assert crl.reload_if_changed() == report.changed
    assert crl.check(cert, signer, utcnow()).detail["crl_number"] == 2
    [row] = crl.describe()
    assert row["fresh"] and row["entries"] == 0 and row["crl_number"] == 2


def test_a_damaged_index_file_is_no_data_not_a_crash(tmp_path, pki):
    install(tmp_path, pki, ("a.crl", crl_bytes(pki, 1, 0)))
    for path in (tmp_path / "index").glob("*.idx"):
        path.write_bytes(b"garbage")
    status = checker(tmp_path, pki).check(*signer_of(pki, "yamada-taro"), utcnow())
    assert status.state == "unknown"


@pytest.mark.parametrize("resident", ["tanaka-misaki", "yamasaki-jiro"])
def test_every_partition_of_the_test_pki(tmp_path, pki, resident):
    install(tmp_path, pki, *[(f"{i}.crl", p.read_bytes()) for i, p in enumerate(pki.crl_paths)])
    assert checker(tmp_path, pki).check(*signer_of(pki, resident), utcnow()).state == "good"


# --------------------------------------------------------------------------- what check reads


class _Unreadable:
    """A certificate whose extensions must not be read again (check has them from trust)."""

    def __init__(self, cert):
        self.serial_number, self.issuer = cert.serial_number, cert.issuer

    @property
    def extensions(self):
        raise AssertionError("the certificate's extensions were parsed again")


def test_the_issuer_key_is_the_one_trust_recorded_and_nothing_else(tmp_path, pki):
    """Partitions are found by the key of the root that verified the certificate (the signer
    record's), never by the certificate's own authorityKeyIdentifier; a record without one is
    ``unknown``, not a guess."""
    install(tmp_path, pki, ("old.crl", crl_bytes(pki, 0, 0)), ("new.crl", crl_bytes(pki, 1, 0)))
    check = checker(tmp_path, pki).check
    cert, signer = signer_of(pki, "yamada-taro")  # issued by roots[1]
    assert check(_Unreadable(cert), signer, utcnow()).detail["issuer_key_id"] == root_ski(pki.roots[1]).hex()
    other = dataclasses.replace(signer, issuer_key_id=root_ski(pki.roots[0]))
    assert check(_Unreadable(cert), other, utcnow()).detail["issuer_key_id"] == root_ski(pki.roots[0]).hex()
    none = check(_Unreadable(cert), dataclasses.replace(signer, issuer_key_id=b""), utcnow())
    assert none.state == "unknown" and none.detail["reason"] == "revocation-crl-missing"
    assert none.detail["message"] == "発行者の鍵識別子がわかりません" and none.awaiting == ()


def test_the_distribution_points_are_the_ones_trust_recorded(tmp_path, pki):
    """Recorded as absent (an empty extension value): the certificate is not parsed again, and only
    a complete CRL of the key could decide. Not recorded at all (None): read from the certificate."""
    install(tmp_path, pki, ("a.crl", crl_bytes(pki, 1, 0)))
    crl = checker(tmp_path, pki)
    cert, signer = signer_of(pki, "yamada-taro")
    no_points = dataclasses.replace(signer, crl_distribution_points=x509.CRLDistributionPoints([]))
    status = crl.check(_Unreadable(cert), no_points, utcnow())
    assert status.state == "unknown" and status.awaiting == (Partition(signer.issuer_key_id, ALL_CERTIFICATES).id,)
    not_recorded = dataclasses.replace(signer, crl_distribution_points=None)
    assert crl.check(cert, not_recorded, utcnow()) == crl.check(cert, signer, utcnow())


def test_distribution_point_keys_are_name_key(pki):
    """The remembered keys are :func:`name_key`'s, names differing only where it folds included."""
    cn, ou, o = NameOID.COMMON_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.ORGANIZATION_NAME

    def dp(*rdns: tuple[tuple[x509.ObjectIdentifier, str], ...]) -> x509.Name:
        return x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(k, v) for k, v in rdn]) for rdn in rdns])

    names = [dp(((cn, "千代田区"),), ((ou, "東京都"),), ((ou, "CRL Distribution Points"),), ((o, "JPKI"),)),
             dp(((cn, "千代田区 "),), ((ou, "東京都"),), ((ou, "CRL  Distribution Points"),), ((o, "jpki"),)),
             dp(((cn, "千代田区"), (ou, "東京都")), ((o, "JPKI"),)), dp(((ou, "東京都"), (cn, "千代田区")), ((o, "JPKI"),)),
             dp(((cn, "千代田区"),), ((ou, "東京都"),), ((o, "JPKI"),)), dp(((cn, "千代田区"), (ou, "東京都"), (o, "JPKI"))),
             x509.Name([x509.NameAttribute(cn, "千代田区", _type=_ASN1Type.PrintableString)]),
             x509.Name([x509.NameAttribute(cn, "千代田区")])]
    for _ in range(2):  # computed, then remembered
        assert [crlcheck._dp_key(n) for n in names] == [name_key(n) for n in names]
    cert = pki.resident("yamada-taro").cert
    relative = x509.CRLDistributionPoints([x509.DistributionPoint(
        None, x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "CRL1")]), None, None)])
    assert certificate_dps(cert, relative) == (name_key(x509.Name([*cert.issuer.rdns, relative[0].relative_name])),)
    [point] = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert certificate_dps(cert) == (name_key(point.full_name[0].value),)
