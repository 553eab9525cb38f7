"""``gateway crl refresh``: read or download every CRL, verify it, install the index atomically.

Runs OFF the request path (the command, or :class:`gateway.revocation.RevocationRefresher` in
the server). Each CRL must be signed by the pinned root whose key its authority key identifier
names (the roots share one DN, so the name proves nothing), be fresh, and cover exactly the
distribution point it was configured for. A CRL that fails any check is not installed and the
partition keeps its previous good index; an older CRL (lower CRL number) never replaces a
newer one, so a replayed or stale mirror cannot un-revoke anyone.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import logging
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID

from gateway.certpolicy import strong_signature_hash
from gateway.crlindex import (
    Partition,
    name_key,
    parse_dp,
    read_manifest,
    remove_unreferenced,
    write_manifest,
    write_partition,
)

log = logging.getLogger(__name__)
FUTURE_SKEW = dt.timedelta(minutes=5)
"""A CRL whose thisUpdate is further ahead of our clock than this is refused."""
_UNDERSTOOD = frozenset({ExtensionOID.AUTHORITY_KEY_IDENTIFIER, ExtensionOID.CRL_NUMBER,
                         ExtensionOID.ISSUING_DISTRIBUTION_POINT, ExtensionOID.ISSUER_ALTERNATIVE_NAME,
                         ExtensionOID.AUTHORITY_INFORMATION_ACCESS, ExtensionOID.FRESHEST_CRL})
REASON_CODES = {x509.ReasonFlags.unspecified: 0, x509.ReasonFlags.key_compromise: 1,
                x509.ReasonFlags.ca_compromise: 2, x509.ReasonFlags.affiliation_changed: 3,
                x509.ReasonFlags.superseded: 4, x509.ReasonFlags.cessation_of_operation: 5,
                x509.ReasonFlags.certificate_hold: 6, x509.ReasonFlags.privilege_withdrawn: 9,
                x509.ReasonFlags.aa_compromise: 10}


@dataclass(frozen=True)
class CrlSource:
    location: str
    """A file path or an ``http(s)://`` URL."""
    distribution_point: str = ""
    """The DP (RFC 4514) this source was configured for; empty for files found in ``REVOCATION_DIR``."""


@dataclass(frozen=True)
class SourceOutcome:
    source: str
    outcome: str
    """``installed``, ``unchanged`` or ``rejected`` (the partition keeps its previous index)."""
    code: str = ""
    message: str = ""
    partition: str = ""
    crl_number: int | None = None


@dataclass(frozen=True)
class RefreshReport:
    outcomes: tuple[SourceOutcome, ...]
    changed: frozenset[str]
    """Partition ids whose index was replaced: fresh data for applications waiting on them."""

    @property
    def ok(self) -> bool:
        return all(o.outcome != "rejected" for o in self.outcomes)


class RevocationDataRejected(Exception):
    """A CRL or OCSP answer that is no revocation data; ``code`` is a ``revocation-…`` code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class VerifiedCrl:
    crl: x509.CertificateRevocationList
    partition: Partition
    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    sha256: str
    source: str


def sources_from_config(config: Mapping[str, Any]) -> list[CrlSource]:
    """``REVOCATION_SOURCES`` (DP → location or list of locations), then every ``*.crl`` under ``REVOCATION_DIR``."""
    found = []
    for dp, locations in (config.get("REVOCATION_SOURCES") or {}).items():
        parse_dp(dp)  # a typo must fail loudly, not leave a partition silently without data
        for location in [locations] if isinstance(locations, str) else locations:
            found.append(CrlSource(str(location), dp))
    directory = Path(config["REVOCATION_DIR"])
    if directory.is_dir():
        found += [CrlSource(str(p)) for p in sorted(directory.rglob("*.crl"))]
    return found


def refresh(index_dir: Path, sources: Sequence[CrlSource], anchors: Any, *, grace_seconds: float = 0,
            timeout: float = 30, max_bytes: int = 256 << 20, now: dt.datetime | None = None) -> RefreshReport:
    """Verify every source and install the good ones; ``anchors`` is a :class:`~gateway.trust.TrustAnchors`."""
    now = now or dt.datetime.now(dt.timezone.utc)
    index_dir.mkdir(parents=True, exist_ok=True)
    with (index_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one refresh at a time (the command and the server's thread)
        return _refresh_locked(index_dir, sources, anchors, grace_seconds, timeout, max_bytes, now)


def _refresh_locked(index_dir: Path, sources: Sequence[CrlSource], anchors: Any, grace_seconds: float,
                    timeout: float, max_bytes: int, now: dt.datetime) -> RefreshReport:
    previous = read_manifest(index_dir)
    installed = {p["id"]: p for p in previous["partitions"]}
    outcomes: list[SourceOutcome] = []
    best: dict[str, VerifiedCrl] = {}
    for source in sources:
        try:
            found = verify_crl(fetch(source.location, timeout, max_bytes), source, anchors,
                               grace=dt.timedelta(seconds=grace_seconds), now=now)
        except RevocationDataRejected as err:
            log.warning("CRL を採用しません (%s): %s %s", source.location, err.code, err.message)
            outcomes.append(SourceOutcome(source.location, "rejected", err.code, err.message))
            continue
        pid = found.partition.id
        if pid not in best or (found.number, found.this_update) > (best[pid].number, best[pid].this_update):
            best[pid] = found
    entries = dict(installed)
    for pid, found in best.items():
        outcome = _install(index_dir, found, installed.get(pid), entries)
        outcomes.append(outcome)
    changed = frozenset(pid for pid, entry in entries.items() if installed.get(pid, {}).get("file") != entry["file"])
    if changed:
        write_manifest(index_dir, {"format": 1, "written": now.isoformat(), "partitions": list(entries.values())})
        remove_unreferenced(index_dir, {e["file"] for e in entries.values()} | {e["file"] for e in installed.values()})
    return RefreshReport(tuple(outcomes), changed)


def _install(index_dir: Path, found: VerifiedCrl, old: dict | None, entries: dict[str, dict]) -> SourceOutcome:
    pid = found.partition.id
    done = SourceOutcome(found.source, "unchanged", partition=pid, crl_number=found.number)
    if old and old["crl_sha256"] == found.sha256:
        return done
    if old and (found.number, found.this_update.isoformat()) <= (old["crl_number"], old["this_update"]):
        return SourceOutcome(found.source, "rejected", "revocation-crl-rollback",
                             f"導入済みの CRL（番号 {old['crl_number']}）より古い CRL（番号 {found.number}）です",
                             pid, found.number)
    header = crl_evidence(found)
    file = f"{pid.replace(':', '-')}-{found.sha256[:16]}.idx"
    try:
        count = write_partition(index_dir / file, _entries(found.crl), header)
    except RevocationDataRejected as err:
        return SourceOutcome(found.source, "rejected", err.code, err.message, pid, found.number)
    entries[pid] = {**header, "id": pid, "file": file, "entries": count}
    log.info("CRL を導入しました: %s 番号 %s (%d 件) %s", found.partition.dp_display, found.number, count, found.source)
    return SourceOutcome(found.source, "installed", partition=pid, crl_number=found.number)


def crl_evidence(found: VerifiedCrl) -> dict[str, Any]:
    """What a decision records about the CRL that made it."""
    return {"crl_number": found.number, "this_update": found.this_update.isoformat(),
            "next_update": found.next_update.isoformat(), "issuer_key_id": found.partition.issuer_key_id.hex(),
            "distribution_point": found.partition.dp_display, "dp_key": found.partition.dp_key,
            "crl_sha256": found.sha256, "source": found.source}


def fetch(location: str, timeout: float, max_bytes: int) -> bytes:
    try:
        if location.startswith(("http://", "https://")):
            request = urllib.request.Request(location, headers={"Accept": "application/pkix-crl, */*"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                data = response.read(max_bytes + 1)
        elif "://" in location:
            raise RevocationDataRejected("revocation-crl-unreachable",
                              "http(s) 以外の取得方法には対応していません（LDAP はファイルに取得して REVOCATION_DIR へ）")
        else:
            with open(location, "rb") as fh:
                data = fh.read(max_bytes + 1)
    except OSError as exc:  # URLError, HTTPError, timeouts, missing files
        raise RevocationDataRejected("revocation-crl-unreachable", f"CRL を取得できません: {exc}") from exc
    if len(data) > max_bytes:
        raise RevocationDataRejected("revocation-crl-malformed", f"CRL が大きすぎます（上限 {max_bytes} バイト）")
    return data


def verify_crl(data: bytes, source: CrlSource, anchors: Any, *, grace: dt.timedelta,
               now: dt.datetime) -> VerifiedCrl:
    """Parse and check one CRL (signature by the pinned root with its AKI's key, scope, freshness)."""
    try:
        crl = x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----BEGIN") else x509.load_der_x509_crl(data)
        extensions = crl.extensions
        this_update, next_update = crl.last_update_utc, crl.next_update_utc
    except ValueError as exc:
        raise RevocationDataRejected("revocation-crl-malformed", f"CRL を解析できません: {exc}") from exc
    key_id = _issuer_key(crl, extensions, anchors)
    for ext in extensions:
        if ext.oid == ExtensionOID.DELTA_CRL_INDICATOR:
            raise RevocationDataRejected("revocation-crl-scope", "差分 CRL（delta CRL）には対応していません")
        if ext.critical and ext.oid not in _UNDERSTOOD:
            raise RevocationDataRejected("revocation-crl-critical-extension", f"未知の重要拡張: {ext.oid.dotted_string}")
    partition = Partition.of(key_id, _scope(crl, extensions))
    if source.distribution_point and partition.dp_key != name_key(parse_dp(source.distribution_point)):
        raise RevocationDataRejected("revocation-crl-scope", f"設定された配布点と CRL の配布点が違います: {partition.dp_display}")
    if next_update is None:
        raise RevocationDataRejected("revocation-crl-stale", "nextUpdate のない CRL は新しさを判断できません")
    if now > next_update + grace:
        raise RevocationDataRejected("revocation-crl-stale", f"CRL の期限切れ（nextUpdate {next_update.isoformat()}）")
    if this_update > now + FUTURE_SKEW:
        raise RevocationDataRejected("revocation-crl-future", f"CRL の thisUpdate が未来です（{this_update.isoformat()}）")
    try:
        number = extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = 0
    return VerifiedCrl(crl, partition, number, this_update, next_update, hashlib.sha256(data).hexdigest(),
                       source.location)


def _issuer_key(crl: x509.CertificateRevocationList, extensions: x509.Extensions, anchors: Any) -> bytes:
    try:
        aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        aki = None
    candidates = [a for a in anchors.anchors
                  if (a.key_identifier == aki if aki is not None else a.certificate.subject == crl.issuer)]
    if not candidates:
        raise RevocationDataRejected("revocation-crl-untrusted", "CRL の発行者の鍵が信頼するルート証明書にありません")
    if not strong_signature_hash(crl):
        raise RevocationDataRejected("revocation-crl-signature", "CRL の署名アルゴリズムが弱すぎます（SHA-256 以上が必要）")
    for anchor in candidates:
        if crl.issuer == anchor.certificate.subject and crl.is_signature_valid(anchor.certificate.public_key()):
            return anchor.key_identifier
    raise RevocationDataRejected("revocation-crl-signature", "CRL の署名がルート証明書の鍵で検証できません")


def _scope(crl: x509.CertificateRevocationList, extensions: x509.Extensions) -> x509.Name | None:
    """The DP the CRL covers (its IssuingDistributionPoint), None for a complete CRL."""
    try:
        idp = extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return None
    if idp.indirect_crl or idp.only_contains_ca_certs or idp.only_contains_attribute_certs or idp.only_some_reasons:
        raise RevocationDataRejected("revocation-crl-scope", "利用者証明書の全失効理由を含む CRL ではありません")
    if idp.relative_name is not None:
        return x509.Name([*crl.issuer.rdns, idp.relative_name])
    names = [n.value for n in idp.full_name or () if isinstance(n, x509.DirectoryName)]
    if len(names) != 1:
        raise RevocationDataRejected("revocation-crl-scope", "IssuingDistributionPoint に directoryName が一つではありません")
    return names[0]


def _entries(crl: x509.CertificateRevocationList) -> Iterator[tuple[int, int, int | None]]:
    try:
        for revoked in crl:
            reason = None
            for ext in revoked.extensions:
                if ext.oid == CRLEntryExtensionOID.CRL_REASON:
                    if ext.value.reason == x509.ReasonFlags.remove_from_crl:
                        raise RevocationDataRejected("revocation-crl-malformed", "完全 CRL に removeFromCRL があります")
                    reason = REASON_CODES[ext.value.reason]
                elif ext.critical:
                    raise RevocationDataRejected("revocation-crl-critical-extension",
                                                 f"失効エントリに未知の重要拡張: {ext.oid.dotted_string}")
            yield revoked.serial_number, int(revoked.revocation_date_utc.timestamp()), reason
    except ValueError as exc:
        raise RevocationDataRejected("revocation-crl-malformed", f"失効エントリを解析できません: {exc}") from exc
