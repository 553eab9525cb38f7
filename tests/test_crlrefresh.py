"""``gateway crl refresh``: only CRLs signed by the pinned root with the matching key, fresh and in
scope, are installed; a bad one leaves the previous good index in place."""

from __future__ import annotations

import datetime as dt
import random
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gateway.crlcheck import CrlChecker
from gateway.crlindex import PartitionIndex, read_manifest
from gateway.crlrefresh import CrlSource, fetch, refresh, sources_from_config
from gateway.testpki import crl_distribution_name, load_pki, make_crl, make_large_crl, reissue_crls, root_ski
from tests.revocation_helpers import (
    DAY,
    anchors_of,
    attacker_root,
    crl_bytes,
    http_server,
    signer_of,
    utcnow,
    write,
)


def dp_text(pki, muni: int) -> str:
    return crl_distribution_name(pki.municipalities[muni]).rfc4514_string()


def run(tmp_path, pki, *paths, **kw):
    return refresh(tmp_path / "index", [CrlSource(str(p)) for p in paths], anchors_of(pki), **kw)


def only(report):
    assert len(report.outcomes) == 1, report
    return report.outcomes[0]


def test_installs_every_test_pki_crl(tmp_path, pki):
    report = run(tmp_path, pki, *pki.crl_paths)
    assert report.ok and len(report.changed) == 4
    assert {o.outcome for o in report.outcomes} == {"installed"}
    manifest = read_manifest(tmp_path / "index")
    assert {p["issuer_key_id"] for p in manifest["partitions"]} == {root_ski(r).hex() for r in pki.roots}
    assert all((tmp_path / "index" / p["file"]).is_file() for p in manifest["partitions"])
    again = run(tmp_path, pki, *pki.crl_paths)
    assert again.changed == frozenset() and {o.outcome for o in again.outcomes} == {"unchanged"}


def test_bad_signature_is_refused_and_the_previous_index_stays(tmp_path, pki):
    good = write(tmp_path / "crl", "a.crl", crl_bytes(pki, 1, 0, number=1))
    assert only(run(tmp_path, pki, good)).outcome == "installed"
    bad = bytearray(crl_bytes(pki, 1, 0, number=2))
    bad[-1] ^= 0x01  # the last byte of the signature
    write(tmp_path / "crl", "a.crl", bytes(bad))
    outcome = only(run(tmp_path, pki, good))
    assert (outcome.outcome, outcome.code) == ("rejected", "revocation-crl-signature")
    [entry] = read_manifest(tmp_path / "index")["partitions"]
    assert entry["crl_number"] == 1


def test_attacker_root_with_the_same_dn_is_not_installed(tmp_path, pki):
    fake, key = attacker_root()
    assert fake.subject == pki.roots[0].subject
    data = make_crl(fake, key, pki.municipalities[0], this_update=utcnow(), next_update=utcnow() + DAY)
    outcome = only(run(tmp_path, pki, write(tmp_path, "fake.crl", data)))
    assert (outcome.outcome, outcome.code) == ("rejected", "revocation-crl-untrusted")
    # Claiming the pinned root's key identifier does not help: the signature does not verify.
    forged, key = attacker_root(ski=root_ski(pki.roots[0]))
    data = make_crl(forged, key, pki.municipalities[0], this_update=utcnow(), next_update=utcnow() + DAY)
    outcome = only(run(tmp_path, pki, write(tmp_path, "forged.crl", data)))
    assert (outcome.outcome, outcome.code) == ("rejected", "revocation-crl-signature")
    assert read_manifest(tmp_path / "index")["partitions"] == []


def test_stale_and_future_crls_are_refused(tmp_path, pki):
    now = utcnow()
    stale = crl_bytes(pki, 0, 0, this_update=now - 3 * DAY, next_update=now - DAY)
    outcome = only(run(tmp_path, pki, write(tmp_path, "stale.crl", stale)))
    assert (outcome.outcome, outcome.code) == ("rejected", "revocation-crl-stale")
    # a grace period admits a CRL that is only a little late
    late = crl_bytes(pki, 0, 0, this_update=now - 2 * DAY, next_update=now - dt.timedelta(minutes=30))
    assert only(run(tmp_path, pki, write(tmp_path, "late.crl", late), grace_seconds=3600)).outcome == "installed"
    future = crl_bytes(pki, 0, 1, this_update=now + DAY, next_update=now + 3 * DAY)
    outcome = only(run(tmp_path, pki, write(tmp_path, "future.crl", future)))
    assert (outcome.outcome, outcome.code) == ("rejected", "revocation-crl-future")


def test_an_older_crl_never_replaces_a_newer_one(tmp_path, pki):
    path = write(tmp_path, "a.crl", crl_bytes(pki, 0, 0, number=5))
    assert only(run(tmp_path, pki, path)).outcome == "installed"
    write(tmp_path, "a.crl", crl_bytes(pki, 0, 0, number=4))  # a replayed, still unexpired older CRL
    outcome = only(run(tmp_path, pki, path))
    assert (outcome.outcome, outcome.code, outcome.crl_number) == ("rejected", "revocation-crl-rollback", 4)
    write(tmp_path, "a.crl", crl_bytes(pki, 0, 0, number=6))
    assert only(run(tmp_path, pki, path)).outcome == "installed"


def test_the_newest_of_several_copies_wins(tmp_path, pki):
    old = write(tmp_path, "old.crl", crl_bytes(pki, 0, 0, number=1))
    new = write(tmp_path, "new.crl", crl_bytes(pki, 0, 0, number=2))
    report = run(tmp_path, pki, new, old)
    assert [(o.source, o.crl_number) for o in report.outcomes] == [(str(new), 2)]


def test_malformed_missing_and_unsupported_sources(tmp_path, pki):
    report = run(tmp_path, pki, write(tmp_path, "junk.crl", b"not a crl"), tmp_path / "absent.crl")
    assert [o.code for o in report.outcomes] == ["revocation-crl-malformed", "revocation-crl-unreachable"]
    assert not report.ok
    report = refresh(tmp_path / "index", [CrlSource("ldap://example.jp/cn=x")], anchors_of(pki))
    assert only(report).code == "revocation-crl-unreachable"
    with pytest.raises(Exception) as info:
        fetch(str(write(tmp_path, "big.crl", b"x" * 100)), timeout=1, max_bytes=99)
    assert getattr(info.value, "code", "") == "revocation-crl-malformed"


def test_scope_checks(tmp_path, pki):
    root, key = pki.roots[0], pki.root_keys[0]
    now = utcnow()
    # A CRL for CA certificates only, or for some reasons only, is not the list of revoked signing certificates.
    builder = (x509.CertificateRevocationListBuilder().issuer_name(root.subject).last_update(now)
               .next_update(now + DAY)
               .add_extension(x509.AuthorityKeyIdentifier(root_ski(root), None, None), critical=False)
               .add_extension(x509.CRLNumber(1), critical=False))
    ca_only = builder.add_extension(x509.IssuingDistributionPoint(
        full_name=[x509.DirectoryName(crl_distribution_name(pki.municipalities[0]))], relative_name=None,
        only_contains_user_certs=False, only_contains_ca_certs=True, only_some_reasons=None, indirect_crl=False,
        only_contains_attribute_certs=False), critical=True)
    delta = builder.add_extension(x509.DeltaCRLIndicator(1), critical=True)
    unknown_critical = builder.add_extension(x509.UnrecognizedExtension(
        x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00"), critical=True)
    codes = []
    for name, b in (("ca.crl", ca_only), ("delta.crl", delta), ("crit.crl", unknown_critical)):
        der = b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        codes.append(only(run(tmp_path, pki, write(tmp_path, name, der))).code)
    assert codes == ["revocation-crl-scope", "revocation-crl-scope", "revocation-crl-critical-extension"]
    # A complete CRL (no IssuingDistributionPoint) is installed for every certificate of its key.
    complete = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    outcome = only(run(tmp_path, pki, write(tmp_path, "complete.crl", complete)))
    assert outcome.outcome == "installed" and outcome.partition.endswith(":all")


def test_a_configured_dp_must_match_the_crl(tmp_path, pki):
    osaka = write(tmp_path, "osaka.crl", crl_bytes(pki, 0, 1))
    report = refresh(tmp_path / "index", [CrlSource(str(osaka), dp_text(pki, 0))], anchors_of(pki))
    assert only(report).code == "revocation-crl-scope"
    report = refresh(tmp_path / "index", [CrlSource(str(osaka), dp_text(pki, 1))], anchors_of(pki))
    assert only(report).outcome == "installed"


def test_a_large_crl_made_by_splicing_is_installed_entry_for_entry(tmp_path, pki):
    rng = random.Random(3)
    listed = [(rng.getrandbits(159), utcnow() - dt.timedelta(minutes=i)) for i in range(3000)]
    data = make_large_crl(pki.roots[0], pki.root_keys[0], pki.municipalities[1], revoked=listed,
                          this_update=utcnow(), next_update=utcnow() + DAY, number=9)
    crl = x509.load_der_x509_crl(data)
    assert crl.is_signature_valid(pki.roots[0].public_key()) and len(crl) == 3000
    assert crl.get_revoked_certificate_by_serial_number(listed[7][0]).revocation_date_utc == listed[7][1]
    outcome = only(run(tmp_path, pki, write(tmp_path, "large.crl", data)))
    assert (outcome.outcome, outcome.crl_number) == ("installed", 9)
    [entry] = read_manifest(tmp_path / "index")["partitions"]
    index = PartitionIndex(tmp_path / "index" / entry["file"])
    assert entry["entries"] == index.size == 3000
    assert all(index.lookup(s).revocation_date == int(when.timestamp()) for s, when in listed)


def test_reissued_test_pki_crls_replace_the_old_ones(tmp_path, pki):
    copy = load_pki(shutil.copytree(pki.directory, tmp_path / "pki"))
    assert run(tmp_path, copy, *copy.crl_paths).ok
    reissue_crls(copy, now=utcnow() + DAY)  # a day later: number + 1, same entries
    report = run(tmp_path, copy, *copy.crl_paths, now=utcnow() + DAY)
    assert {(o.outcome, o.crl_number) for o in report.outcomes} == {("installed", 2)}
    checker = CrlChecker(tmp_path / "index", clock=lambda: utcnow() + 2 * DAY)
    assert checker.check(*signer_of(copy, "sato-ichiro"), utcnow()).state == "revoked"
    assert checker.check(*signer_of(copy, "yamada-taro"), utcnow()).state == "good"


def test_refresh_over_http(tmp_path, pki):
    served = {"/chiyoda-1.crl": crl_bytes(pki, 1, 0, revoked=[(pki.resident("yamada-taro").cert.serial_number,
                                                                utcnow() - DAY)])}

    def handler(request):
        body = served.get(request.path)
        return (200, "application/pkix-crl", body) if body else (404, "text/plain", b"no")

    with http_server(handler) as base:
        sources = [CrlSource(f"{base}/chiyoda-1.crl", dp_text(pki, 0)),
                   CrlSource(f"{base}/missing.crl", dp_text(pki, 1))]
        report = refresh(tmp_path / "index", sources, anchors_of(pki))
    assert [o.outcome for o in report.outcomes] == ["rejected", "installed"]
    assert report.outcomes[0].code == "revocation-crl-unreachable"
    cert, signer = signer_of(pki, "yamada-taro")
    assert CrlChecker(tmp_path / "index").check(cert, signer, utcnow()).state == "revoked"


def test_sources_from_config(tmp_path, pki):
    write(tmp_path / "dir" / "sub", "x.crl", b"")
    write(tmp_path / "dir", "ignored.txt", b"")
    config = {"REVOCATION_DIR": str(tmp_path / "dir"),
              "REVOCATION_SOURCES": {dp_text(pki, 0): "http://crl.example/1.crl",
                                     dp_text(pki, 1): ["a.crl", "b.crl"]}}
    assert sources_from_config(config) == [
        CrlSource("http://crl.example/1.crl", dp_text(pki, 0)), CrlSource("a.crl", dp_text(pki, 1)),
        CrlSource("b.crl", dp_text(pki, 1)), CrlSource(str(tmp_path / "dir" / "sub" / "x.crl"))]
    with pytest.raises(ValueError):
        sources_from_config({"REVOCATION_DIR": str(tmp_path), "REVOCATION_SOURCES": {"not a DN": "x.crl"}})
