"""The revocation seam end to end: configuration, the refresher thread, and verify_package."""

from __future__ import annotations

import datetime as dt
import json
import queue

import pytest

from gateway.config import load_config
from gateway.crlcheck import CrlChecker
from gateway.crlrefresh import RefreshReport
from gateway.errors import RevocationError, RevocationUnknown, StartupError
from gateway.models import Limits, SignaturePolicy
from gateway.packaging import make_signed_package
from gateway.revocation import (
    FirstDecisive,
    NoRevocationChecker,
    Revocation,
    RevocationRefresher,
    RevocationStatus,
    revocation_from_config,
)
from gateway.trust import CertificateValidator
from gateway.verification import verify_package
from tests.revocation_helpers import (
    DAY,
    anchors_of,
    crl_bytes,
    signer_of,
    utcnow,
    write,
)

FORM = '<?xml version="1.0" encoding="UTF-8"?>\n<申請書 xmlns="urn:example:childcare-01"/>\n'.encode()


def config_for(tmp_path, pki, **settings):
    return load_config({"DATA_DIR": str(tmp_path / "var"), "TRUST_ANCHORS": [str(p) for p in pki.root_paths],
                        "REVOCATION_DIR": str(tmp_path / "crl"), **settings})


def test_status_says_which_partitions_it_awaits():
    assert RevocationStatus("unknown", "crl", {"awaiting": ["a", "b"]}).awaiting == ("a", "b")
    assert RevocationStatus("good").awaiting == ()


def test_from_config_builds_the_configured_checker(tmp_path, pki):
    anchors = anchors_of(pki)
    default = revocation_from_config(config_for(tmp_path, pki), anchors)
    assert isinstance(default.checker, CrlChecker) and default.refresh is not None and default.ocsp is None
    assert default.crl.index_dir == tmp_path / "var" / "revocation"
    none = revocation_from_config(config_for(tmp_path, pki, REVOCATION_CHECK="none"), anchors)
    assert isinstance(none.checker, NoRevocationChecker)
    both = revocation_from_config(config_for(tmp_path, pki, REVOCATION_CHECK="crl+ocsp",
                                             REVOCATION_OCSP_URL="http://127.0.0.1:9/ocsp"), anchors)
    assert isinstance(both.checker, FirstDecisive) and both.checker.checkers == (both.crl, both.ocsp)
    for bad in ({"REVOCATION_CHECK": "sometimes"}, {"REVOCATION_CHECK": "ocsp"},
                {"REVOCATION_SOURCES": {"not a DN": "x.crl"}}):
        with pytest.raises(StartupError):
            revocation_from_config(config_for(tmp_path, pki, **bad), anchors)


def test_one_clock_for_checks_and_refreshes(tmp_path, pki):
    """The clock revocation is built with also dates the refreshes it schedules: a CRL is judged
    fresh or stale by the same "now" when installed and when checked."""
    write(tmp_path / "crl", "chiyoda-new-root.crl", crl_bytes(pki, 1, 0))  # nextUpdate: in two days
    cert, signer = signer_of(pki, "yamada-taro")
    for days, installed in ((0, True), (3, False)):
        config = config_for(tmp_path / str(days), pki, REVOCATION_DIR=str(tmp_path / "crl"))
        revocation = revocation_from_config(config, anchors_of(pki), clock=lambda days=days: utcnow() + days * DAY)
        report = revocation.refresh_now()
        assert [o.outcome == "installed" for o in report.outcomes] == [installed]
        if not installed:
            assert report.outcomes[0].code == "revocation-crl-stale"
        assert revocation.checker.check(cert, signer, utcnow()).state == ("good" if installed else "unknown")


def test_refresher_thread_installs_new_crls_and_reports_the_partitions(tmp_path, pki):
    write(tmp_path / "crl", "chiyoda-new-root.crl", crl_bytes(pki, 1, 0, number=1))
    config = config_for(tmp_path, pki, REVOCATION_REFRESH_SECONDS=0.05, REVOCATION_POLL_SECONDS=0.02)
    revocation = revocation_from_config(config, anchors_of(pki))
    cert, signer = signer_of(pki, "yamada-taro")
    deferred = revocation.checker.check(cert, signer, utcnow())
    assert deferred.state == "unknown"  # nothing installed yet: the package would wait
    changes: queue.Queue[frozenset[str]] = queue.Queue()
    refresher = revocation.refresher(on_change=changes.put)
    refresher.start()
    try:
        first = changes.get(timeout=20)
        assert set(deferred.awaiting) <= first  # what the deferred package waits for has arrived
        assert revocation.checker.check(cert, signer, utcnow()).state == "good"
        write(tmp_path / "crl", "chiyoda-new-root.crl",
              crl_bytes(pki, 1, 0, number=2, revoked=[(cert.serial_number, utcnow() - DAY)]))
        assert changes.get(timeout=20) == set(deferred.awaiting)
        assert revocation.checker.check(cert, signer, utcnow()).state == "revoked"
        assert refresher.running
    finally:
        refresher.stop()
    assert not refresher.running


def test_refresher_survives_failures_and_zero_interval_only_reloads(tmp_path, pki):
    calls = []

    def broken_refresh():
        calls.append(1)
        raise RuntimeError("source down")

    def broken_callback(changed):
        raise RuntimeError("callback bug")

    checker = CrlChecker(tmp_path / "index")
    refresher = RevocationRefresher(checker=checker, refresh=broken_refresh, refresh_seconds=3600,
                                    on_change=broken_callback)
    assert refresher.run_once() == frozenset() and calls == [1]
    assert refresher.run_once() == frozenset() and calls == [1]  # not due again for an hour
    assert refresher.run_once(force_refresh=True) == frozenset() and calls == [1, 1]
    # `gateway crl refresh` in another process installs an index: the schedule picks it up
    from gateway.crlrefresh import CrlSource, refresh

    path = write(tmp_path / "crl", "a.crl", crl_bytes(pki, 1, 0))
    report = refresh(tmp_path / "index", [CrlSource(str(path))], anchors_of(pki))
    idle = RevocationRefresher(checker=checker, refresh=broken_refresh, refresh_seconds=0)
    assert idle.run_once() == report.changed and calls == [1, 1]


def package_of(pki, resident: str) -> bytes:
    r = pki.resident(resident)
    return make_signed_package(FORM, form_filename="childcare-01.xml", procedure_code="childcare-01",
                               municipality_code=r.municipality.code, arrival_number="202611280000012345",
                               signer=r)


def verify(pki, data, checker, at):
    return verify_package(data, limits=Limits(), validator=CertificateValidator(anchors_of(pki), allow_test_roots=True),
                          signature_policy_for=lambda code: SignaturePolicy(), arrival_time=at, revocation=checker)


def test_verify_package_good_revoked_and_deferred(tmp_path, pki):
    revoked_at = utcnow() - DAY
    sato = pki.resident("sato-ichiro").cert.serial_number
    write(tmp_path / "crl", "a.crl", crl_bytes(pki, 1, 0, number=3, revoked=[(sato, revoked_at)]))
    revocation = revocation_from_config(config_for(tmp_path, pki), anchors_of(pki))
    assert revocation.refresh_now().ok
    now = utcnow()
    verified = verify(pki, package_of(pki, "yamada-taro"), revocation.checker, now)
    assert verified.evidence["revocation"]["state"] == "good"
    assert verified.evidence["revocation"]["detail"]["crl_number"] == 3
    with pytest.raises(RevocationError) as refused:
        verify(pki, package_of(pki, "sato-ichiro"), revocation.checker, now)
    assert refused.value.extra["revocation"]["detail"]["revocation_date"] == revoked_at.isoformat()
    # arrived before the revocation (a deferred package verified again now): accepted as of arrival
    early = verify(pki, package_of(pki, "sato-ichiro"), revocation.checker, revoked_at - dt.timedelta(hours=1))
    assert early.evidence["revocation"]["detail"]["revoked_after_arrival"] is True
    with pytest.raises(RevocationUnknown) as deferred:  # 大阪市: no CRL installed
        verify(pki, package_of(pki, "yamasaki-jiro"), revocation.checker, now)
    assert deferred.value.extra["revocation"]["detail"]["awaiting"]


def test_crl_commands(tmp_path, pki, monkeypatch):
    from click.testing import CliRunner

    from gateway.cli import main
    from tests.e2e_helpers import gateway_settings, use_settings

    monkeypatch.chdir(tmp_path)
    dp = "CN=千代田区,OU=東京都,OU=CRL Distribution Points,OU=JPKI for digital signature,O=JPKI,C=JP"
    good = write(tmp_path / "src", "chiyoda.crl", crl_bytes(pki, 1, 0))
    use_settings(monkeypatch, gateway_settings(tmp_path / "var", pki, REVOCATION_SOURCES={dp: str(good)}))
    run = CliRunner().invoke
    status = run(main, ["crl", "status"])
    assert status.exit_code == 1 and "MISSING" in status.output  # nothing installed yet: monitoring alerts
    refreshed = run(main, ["crl", "refresh", "--json"])
    assert refreshed.exit_code == 0, refreshed.output
    assert json.loads(refreshed.output)["outcomes"][0]["outcome"] == "installed"
    status = run(main, ["crl", "status", "--json"])
    assert status.exit_code == 0 and json.loads(status.output)["partitions"][0]["fresh"] is True
    write(tmp_path / "src", "chiyoda.crl", b"broken")
    refreshed = run(main, ["crl", "refresh"])
    assert refreshed.exit_code == 1 and "revocation-crl-malformed" in refreshed.output
    assert run(main, ["crl", "status"]).exit_code == 0  # the previous good CRL is still installed


def test_a_refresh_at_start_up_is_not_repeated_by_the_refresher_at_once():
    calls = []

    def refresh():
        calls.append(1)
        return RefreshReport(outcomes=(), changed=frozenset())

    revocation = Revocation(NoRevocationChecker(), refresh=refresh, refresh_seconds=3600)
    revocation.refresh_now()
    revocation.refresher().run_once()
    assert len(calls) == 1
    revocation.refresher().run_once(force_refresh=True)
    assert len(calls) == 2
