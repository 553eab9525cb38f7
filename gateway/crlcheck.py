"""Revocation from the installed CRL index (:mod:`gateway.crlrefresh` installs it).

Matching follows ``application-package.md``: by issuer key (the key of the pinned root that
verified the certificate; the roots share one DN) and by the certificate's directoryName
distribution point, against the CRL's IssuingDistributionPoint. A complete CRL (no IDP)
covers every certificate of its key. A stale or missing partition is no data: ``unknown``,
with the partition ids whose fresh data would decide it (``awaiting``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from gateway.crlindex import ALL_CERTIFICATES, MANIFEST, Partition, PartitionIndex, name_key, read_manifest
from gateway.crlrefresh import REASON_CODES
from gateway.models import CertificateInfo
from gateway.revocation import Clock, RevocationState, RevocationStatus, utcnow

log = logging.getLogger(__name__)
REASON_NAMES = {code: flag.value for flag, code in REASON_CODES.items()}


@dataclass(frozen=True)
class _Loaded:
    partition: Partition
    index: PartitionIndex
    file: str
    evidence: dict[str, Any]
    next_update: float


class CrlChecker:
    """Answers from the installed CRL index; ``check`` never touches the disk or the network."""

    def __init__(self, index_dir: Path, *, grace_seconds: float = 0, clock: Clock = utcnow) -> None:
        """No trust anchors here: the issuer key comes with the signer, from the root that path
        validation chose by signature."""
        self.index_dir = Path(index_dir)
        self.grace = float(grace_seconds)
        self.clock = clock
        self._loaded: dict[tuple[bytes, str], _Loaded] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self.reload()

    def check(self, cert: x509.Certificate, signer: CertificateInfo, at: dt.datetime) -> RevocationStatus:
        # The key of the pinned root that verified the certificate (trust records it): never the
        # certificate's own authorityKeyIdentifier, which names a key but proves nothing.
        key_id = signer.issuer_key_id
        if not key_id:  # a CertificateInfo trust did not make
            return _unknown("revocation-crl-missing", "発行者の鍵識別子がわかりません", [], {})
        dps = certificate_dps(cert, signer.crl_distribution_points)
        now = self.clock()
        horizon = max(now, at).timestamp()
        loaded_now, stale = self._loaded, []
        for dp_key in (*dps, ALL_CERTIFICATES):
            loaded = loaded_now.get((key_id, dp_key))
            if loaded is None:
                continue
            if horizon > loaded.next_update + self.grace:
                stale.append(loaded.evidence)
                continue
            return _decide(loaded, signer.serial_number, at)
        awaiting = [Partition(key_id, k).id for k in dps] or [Partition(key_id, ALL_CERTIFICATES).id]
        if stale:
            return _unknown("revocation-crl-stale", "CRL の期限が切れています（新しい CRL を待っています）",
                            awaiting, {"stale": stale})
        return _unknown("revocation-crl-missing", "この証明書の配布点の CRL がありません",
                        awaiting, {"issuer_key_id": key_id.hex()})

    def reload_if_changed(self) -> frozenset[str]:
        """Pick up an index another process (``gateway crl refresh``) installed; returns changed ids."""
        return frozenset() if self._manifest_stamp() == self._stamp else self.reload()

    def reload(self) -> frozenset[str]:
        with self._lock:
            stamp = self._manifest_stamp()
            by_file = {loaded.file: loaded for loaded in self._loaded.values()}
            new: dict[tuple[bytes, str], _Loaded] = {}
            for entry in read_manifest(self.index_dir)["partitions"]:
                try:
                    loaded = by_file.get(entry["file"]) or _open(self.index_dir, entry)
                except (OSError, ValueError, KeyError) as exc:  # no data for it: unknown, not a crash
                    log.error("失効インデックスを読み込めません: %s (%s)", entry.get("file"), exc)
                    stamp = None  # retry on the next poll
                    continue
                new[(loaded.partition.issuer_key_id, loaded.partition.dp_key)] = loaded
            old = self._loaded
            changed = frozenset(v.partition.id for k, v in new.items() if k not in old or old[k].file != v.file)
            self._loaded, self._stamp = new, stamp  # one reference swap: checks see old or new
            return changed

    def describe(self) -> list[dict[str, Any]]:
        """Every installed partition with its CRL and whether it is fresh now (``gateway crl status``)."""
        now = self.clock().timestamp()
        return [{**v.evidence, "dp_key": v.partition.dp_key, "entries": v.index.size,
                 "fresh": now <= v.next_update + self.grace}
                for v in self._loaded.values()]

    def _manifest_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = (self.index_dir / MANIFEST).stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size


def _open(directory: Path, entry: Mapping[str, Any]) -> _Loaded:
    partition = Partition(bytes.fromhex(entry["issuer_key_id"]), entry["dp_key"], entry["distribution_point"])
    evidence = {k: entry[k] for k in ("crl_number", "this_update", "next_update", "issuer_key_id",
                                      "distribution_point", "crl_sha256")}
    evidence.update(partition=partition.id, location=entry["source"])
    return _Loaded(partition, PartitionIndex(directory / entry["file"]), entry["file"], evidence,
                   dt.datetime.fromisoformat(entry["next_update"]).timestamp())


def _decide(loaded: _Loaded, serial: int, at: dt.datetime) -> RevocationStatus:
    detail: dict[str, Any] = {**loaded.evidence, "serial": format(serial, "x"), "as_of": at.isoformat()}
    state: RevocationState = "good"
    hit = loaded.index.lookup(serial)
    if hit is not None:
        detail["revocation_date"] = dt.datetime.fromtimestamp(hit.revocation_date, dt.timezone.utc).isoformat()
        detail["revocation_reason"] = REASON_NAMES.get(hit.reason) if hit.reason is not None else None
        if hit.revocation_date <= at.timestamp():
            state = "revoked"
        else:  # revoked after arrival: it was good when the package arrived
            detail["revoked_after_arrival"] = True
    return RevocationStatus(state, f"crl:{loaded.evidence['issuer_key_id']}/{loaded.evidence['crl_number']}", detail)


def _unknown(code: str, message: str, awaiting: list[str], extra: Mapping[str, Any]) -> RevocationStatus:
    return RevocationStatus("unknown", "crl", {"reason": code, "message": message, "awaiting": awaiting, **extra})


_DP_KEYS: dict[tuple[object, ...], str] = {}
_DP_KEYS_MAX = 4096


def _dp_key(name: x509.Name) -> str:
    """:func:`name_key` of a distribution point, remembered by the name's attributes.

    The same DPs (one per municipality, some 1,700) come back in every certificate. Hashing and
    comparing the ``Name`` objects themselves (an lru_cache on the Name) walks them in Python
    twice over; their attributes in order, with their RDN, decide the key exactly (a pure
    function of them, bounded).
    """
    parts = tuple((i, a.oid, a.value) for i, rdn in enumerate(name.rdns) for a in rdn)
    key = _DP_KEYS.get(parts)
    if key is None:
        if len(_DP_KEYS) >= _DP_KEYS_MAX:
            _DP_KEYS.clear()
        key = _DP_KEYS[parts] = name_key(name)
    return key


def certificate_dps(cert: x509.Certificate, points: x509.CRLDistributionPoints | None = None) -> tuple[str, ...]:
    """The certificate's directoryName CRL distribution points, as :func:`name_key` keys.

    ``points``: the extension as path validation already read it, empty when the certificate has
    none (parsing the certificate's extensions again costs ~100 µs per package); None when not
    recorded, and then the certificate is read."""
    if points is None:
        try:
            points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        except x509.ExtensionNotFound:
            return ()
    keys = []
    for point in points:
        if point.reasons is not None or point.crl_issuer is not None:
            continue  # partial or indirect CRLs: not how JPKI publishes
        if point.relative_name is not None:
            keys.append(_dp_key(x509.Name([*cert.issuer.rdns, point.relative_name])))
        keys += [_dp_key(n.value) for n in point.full_name or () if isinstance(n, x509.DirectoryName)]
    return tuple(keys)
