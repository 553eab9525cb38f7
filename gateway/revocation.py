"""Revocation as of arrival: what verification calls, how sources compose, the refresh schedule.

``verify_package`` calls ``checker.check(certificate, signer, arrival_time)`` after trust and
signature. The answer is ``good``, ``revoked`` (refused) or ``unknown`` (no fresh data: the
package is deferred, never accepted or refused on a guess), with the evidence of what decided.

:class:`~gateway.crlcheck.CrlChecker` answers from the index ``gateway crl refresh`` installed
(:mod:`gateway.crlrefresh`, :mod:`gateway.crlindex`): memory only, no I/O, microseconds at
10⁶ entries. :class:`RevocationRefresher` runs the refresh off the request path on a schedule
and tells the caller which partitions got fresh data, so deferred applications waiting on them
can be verified again. OCSP (:mod:`gateway.ocsp`) is optional; :class:`FirstDecisive` composes:
CRL first, OCSP only when the CRL cannot decide.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from cryptography import x509

from gateway.crlrefresh import RefreshReport, refresh, sources_from_config
from gateway.errors import StartupError
from gateway.models import CertificateInfo

if TYPE_CHECKING:
    from gateway.crlcheck import CrlChecker
    from gateway.ocsp import OcspChecker
    from gateway.trust import TrustAnchors

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]
RevocationState = Literal["good", "revoked", "unknown", "not-checked"]
CHECK_MODES = ("crl", "crl+ocsp", "ocsp", "none")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class RevocationStatus:
    """The revocation decision for one certificate as of the arrival time."""

    state: RevocationState
    source: str = ""
    """Which data decided it: ``crl:<issuer key id>/<CRL number>`` or ``ocsp:<responder URL>``."""
    detail: Mapping[str, object] = field(default_factory=dict)
    """JSON-serialisable evidence (CRL number, thisUpdate, revocation date…). For ``unknown``:
    ``reason`` (a ``revocation-…`` code) and ``awaiting``, the partition ids whose fresh data
    would decide it (see :class:`RevocationRefresher`)."""

    @property
    def awaiting(self) -> tuple[str, ...]:
        return tuple(self.detail.get("awaiting", ()))  # type: ignore[arg-type]


class RevocationChecker(Protocol):
    def check(self, cert: x509.Certificate, signer: CertificateInfo, at: dt.datetime) -> RevocationStatus:
        """Status of ``cert`` (already trusted as ``signer``) as of ``at``; never raises for "unknown"."""
        ...


class NoRevocationChecker:
    """No revocation data configured: every certificate is "not checked", and says so in the evidence."""

    def check(self, cert: x509.Certificate, signer: CertificateInfo, at: dt.datetime) -> RevocationStatus:
        return RevocationStatus(state="not-checked", source="none",
                                detail={"reason": "失効確認は未設定です（CRL/OCSP なし）"})


# --------------------------------------------------------------------------- composition


class FirstDecisive:
    """Ask each checker in turn (CRL, then OCSP); the first ``good``/``revoked`` answer decides."""

    def __init__(self, *checkers: RevocationChecker) -> None:
        self.checkers = checkers

    def check(self, cert: x509.Certificate, signer: CertificateInfo, at: dt.datetime) -> RevocationStatus:
        undecided: list[RevocationStatus] = []
        for checker in self.checkers:
            status = checker.check(cert, signer, at)
            if status.state != "unknown":
                return status
            undecided.append(status)
        return RevocationStatus("unknown", "+".join(s.source for s in undecided), {
            "reason": undecided[0].detail.get("reason"),
            "awaiting": [pid for s in undecided for pid in s.awaiting],
            "checks": [{"source": s.source, **s.detail} for s in undecided]})


# --------------------------------------------------------------------------- the schedule


class RevocationRefresher:
    """Keeps revocation data fresh in a background thread, off the request path.

    Every ``poll_seconds``: run the CRL refresh when ``refresh_seconds`` have passed (0: never
    here, only ``gateway crl refresh``), reload an index another process installed, fetch OCSP
    answers checks asked for, then call ``on_change(partition_ids)`` when any partition got new
    data: re-verify the deferred applications whose ``awaiting`` names one of them.
    """

    def __init__(self, *, checker: CrlChecker | None = None, refresh: Callable[[], RefreshReport] | None = None,
                 ocsp: OcspChecker | None = None, refresh_seconds: float = 3600, poll_seconds: float = 10,
                 on_change: Callable[[frozenset[str]], None] | None = None,
                 last_refresh: float | None = None) -> None:
        self.checker, self.refresh, self.ocsp = checker, refresh, ocsp
        self.refresh_seconds, self.poll_seconds = float(refresh_seconds), float(poll_seconds)
        self.on_change = on_change
        self.last_report: RefreshReport | None = None
        self._last_refresh = last_refresh
        """``time.monotonic()`` of the last refresh (a start-up refresh counts: not repeated at once)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, *, force_refresh: bool = False) -> frozenset[str]:
        changed: set[str] = set()
        due = self._last_refresh is None or time.monotonic() - self._last_refresh >= self.refresh_seconds
        if self.refresh is not None and (force_refresh or (self.refresh_seconds > 0 and due)):
            self._last_refresh = time.monotonic()
            try:
                self.last_report = self.refresh()
                changed |= self.last_report.changed
            except Exception:  # a broken source must not stop the schedule
                log.exception("CRL の更新に失敗しました")
        if self.checker is not None:
            changed |= self.checker.reload_if_changed()
        if self.ocsp is not None:
            changed |= self.ocsp.fetch_pending()
        if changed and self.on_change is not None:
            try:
                self.on_change(frozenset(changed))
            except Exception:
                log.exception("失効情報の更新通知の処理に失敗しました")
        return frozenset(changed)

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="crl-refresher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> RevocationRefresher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("失効情報の更新で予期しないエラー")
            self._stop.wait(self.poll_seconds)


# --------------------------------------------------------------------------- from configuration


@dataclass
class Revocation:
    """What the app wires: ``checker`` for verify_package, ``refresher(on_change)`` for the server."""

    checker: RevocationChecker
    crl: CrlChecker | None = None
    ocsp: OcspChecker | None = None
    refresh: Callable[[], RefreshReport] | None = None
    refresh_seconds: float = 3600
    poll_seconds: float = 10
    last_refresh: float | None = None
    """``time.monotonic()`` of the last :meth:`refresh_now`; the refresher starts from it."""

    def refresh_now(self) -> RefreshReport | None:
        """Refresh (when CRLs are configured) and load the result, in the caller's thread."""
        if self.refresh is None:
            return None
        self.last_refresh = time.monotonic()
        report = self.refresh()
        if self.crl is not None:
            self.crl.reload()
        return report

    def load_if_empty(self) -> None:
        """First start: nothing installed yet, so refresh now rather than defer every package
        until the first scheduled refresh (later refreshes run off the request path)."""
        if self.crl is None or self.crl.describe():
            return
        report = self.refresh_now()
        if report is None:
            return
        for outcome in report.outcomes:
            if outcome.outcome == "rejected":
                log.warning("CRL を取り込めません: %s: %s (%s)", outcome.source, outcome.message, outcome.code)
        log.info("失効情報を読み込みました: CRL %d 件中 %d 件", len(report.outcomes),
                 sum(o.outcome == "installed" for o in report.outcomes))

    def refresher(self, on_change: Callable[[frozenset[str]], None] | None = None) -> RevocationRefresher:
        return RevocationRefresher(checker=self.crl, refresh=self.refresh, ocsp=self.ocsp, on_change=on_change,
                                   refresh_seconds=self.refresh_seconds, poll_seconds=self.poll_seconds,
                                   last_refresh=self.last_refresh)


def refresh_from_config(config: Mapping[str, Any], anchors: TrustAnchors, *,
                        clock: Clock = utcnow) -> RefreshReport:
    """One ``gateway crl refresh`` with the configured sources and limits, as of ``clock()``."""
    return refresh(Path(config["REVOCATION_INDEX_DIR"]), sources_from_config(config), anchors,
                   grace_seconds=float(config["REVOCATION_GRACE_SECONDS"]),
                   timeout=float(config["REVOCATION_FETCH_TIMEOUT_SECONDS"]),
                   max_bytes=int(config["REVOCATION_MAX_CRL_BYTES"]), now=clock())


def revocation_from_config(config: Mapping[str, Any], anchors: TrustAnchors, *,
                           clock: Clock = utcnow) -> Revocation:
    """Build the configured checker (``REVOCATION_CHECK``); fails start-up on a bad setting.

    ``clock`` is the one clock of revocation: the CRL and OCSP checks judge freshness by it, and
    the refreshes it schedules judge the CRLs they install by it too.
    """
    mode = config["REVOCATION_CHECK"]
    if mode not in CHECK_MODES:
        raise StartupError(f"REVOCATION_CHECK は {', '.join(CHECK_MODES)} のいずれかです: {mode!r}")
    timing = {"refresh_seconds": float(config["REVOCATION_REFRESH_SECONDS"]),
              "poll_seconds": float(config["REVOCATION_POLL_SECONDS"])}
    if mode == "none":
        log.warning("失効確認が無効です（REVOCATION_CHECK=none）: 失効した証明書の申請も受け付けます")
        return Revocation(NoRevocationChecker(), **timing)
    crl = ocsp = refresher = None
    if "crl" in mode:
        from gateway.crlcheck import CrlChecker

        try:
            sources_from_config(config)
        except ValueError as exc:
            raise StartupError(f"REVOCATION_SOURCES: {exc}") from exc
        crl = CrlChecker(Path(config["REVOCATION_INDEX_DIR"]),
                         grace_seconds=float(config["REVOCATION_GRACE_SECONDS"]), clock=clock)
        refresher = functools.partial(refresh_from_config, config, anchors, clock=clock)
    if "ocsp" in mode:
        from gateway.ocsp import OcspChecker

        if not config["REVOCATION_OCSP_URL"]:
            raise StartupError("REVOCATION_CHECK に ocsp を含めるときは REVOCATION_OCSP_URL が必要です")
        ocsp = OcspChecker(config["REVOCATION_OCSP_URL"], anchors,
                           timeout=float(config["REVOCATION_OCSP_TIMEOUT_SECONDS"]),
                           max_age_seconds=float(config["REVOCATION_OCSP_MAX_AGE_SECONDS"]),
                           grace_seconds=float(config["REVOCATION_GRACE_SECONDS"]), clock=clock)
    checker: RevocationChecker = FirstDecisive(crl, ocsp) if crl and ocsp else (crl or ocsp)  # type: ignore[assignment]
    return Revocation(checker, crl=crl, ocsp=ocsp, refresh=refresher, **timing)
