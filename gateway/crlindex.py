"""The on-disk revocation index: one packed, memory-mapped file per CRL partition.

A JPKI CRL is partitioned per (issuing root key, municipality distribution point) and may hold
a million entries. Walking it per check costs milliseconds (cryptography scans its entries
linearly), so ``gateway crl refresh`` turns each verified CRL into a file of parallel arrays
sorted by a 64-bit hash of the serial:

    magic | header length | JSON header | keys u64[n] | dates i64[n] | serials n×width | reasons u8[n]

A check is one ``bisect`` over the memory-mapped key array (C code, ~20 probes at 10⁶) and a
byte compare of the full serial, so a hash collision cannot revoke or clear a certificate.
Files are written once under a content-derived name and never changed; ``index.json`` names
the current set and is replaced atomically, so a reader sees the old set or the new one.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import sys
import tempfile
from array import array
from bisect import bisect_left
from operator import itemgetter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

MAGIC = b"GWCRLIX1"
MANIFEST = "index.json"
ALL_CERTIFICATES = "*"
"""Distribution-point key of a complete CRL (no IssuingDistributionPoint): it covers every
certificate of its issuer key."""
NO_REASON = 255


# --------------------------------------------------------------------------- partitions


def name_key(name: x509.Name) -> str:
    """A comparison key for a distinguished name (RFC 5280 §7.1, simplified).

    Attribute by attribute, ignoring the ASN.1 string type, case and runs of white space: the
    DP in a certificate and the IssuingDistributionPoint of its CRL may be encoded differently.
    """
    rdns = ("+".join(sorted(f"{a.oid.dotted_string}={' '.join(str(a.value).split()).casefold()}" for a in rdn))
            for rdn in name.rdns)
    return "/".join(rdns)


def parse_dp(text: str) -> x509.Name:
    """A distribution point written in configuration as an RFC 4514 string (most specific first)."""
    try:
        return x509.Name.from_rfc4514_string(text)
    except ValueError as exc:
        raise ValueError(f"配布点の名前（RFC 4514）を解析できません: {text!r}") from exc


@dataclass(frozen=True)
class Partition:
    """Which certificates a CRL covers: those of one issuer key under one distribution point."""

    issuer_key_id: bytes
    dp_key: str
    """:func:`name_key` of the distribution point, or :data:`ALL_CERTIFICATES`."""
    dp_display: str = field(default="", compare=False)
    """The DP as RFC 4514 text, for people."""

    @property
    def id(self) -> str:
        """Stable identifier in evidence and change notifications: ``crl:<key id>:<dp hash>``."""
        digest = "all" if self.dp_key == ALL_CERTIFICATES else hashlib.sha256(self.dp_key.encode()).hexdigest()[:16]
        return f"crl:{self.issuer_key_id.hex()}:{digest}"

    @classmethod
    def of(cls, issuer_key_id: bytes, dp: x509.Name | None) -> Partition:
        if dp is None:
            return cls(issuer_key_id, ALL_CERTIFICATES, "(all)")
        return cls(issuer_key_id, name_key(dp), dp.rfc4514_string())


# --------------------------------------------------------------------------- one partition file


def serial_bytes(serial: int) -> bytes:
    """Minimal two's-complement big-endian bytes, as in the DER INTEGER."""
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big", signed=True)


def serial_key(raw: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")


@dataclass(frozen=True)
class Revoked:
    revocation_date: int
    """Seconds since the epoch (UTC)."""
    reason: int | None
    """RFC 5280 CRLReason code, None when the entry has none."""


def write_partition(path: Path, entries: Iterable[tuple[int, int, int | None]], header: Mapping[str, Any]) -> int:
    """Write ``(serial, revocation epoch seconds, reason)`` entries; returns how many were kept.

    Entries go into packed arrays as they come and are put in key order by C-level gathers
    (~4 µs of CPU and ~170 bytes of peak memory per entry). A serial listed twice (malformed,
    but seen) keeps its earliest revocation date.
    """
    raws, keys, dates, reasons = [], array("Q"), array("q"), array("B")
    for serial, when, reason in entries:
        raw = serial_bytes(serial)
        raws.append(raw)
        keys.append(serial_key(raw))
        dates.append(when)
        reasons.append(NO_REASON if reason is None else reason)
    order = sorted(range(len(raws)), key=keys.__getitem__)
    if any(keys[i] == keys[j] for i, j in zip(order, order[1:])):  # equal keys: maybe the same serial twice
        raws, keys, dates, reasons = _earliest_only(raws, keys, dates, reasons)
        order = sorted(range(len(raws)), key=keys.__getitem__)
    n, width = len(raws), max(map(len, raws), default=1)
    gather = (lambda seq: [seq[i] for i in order]) if n < 2 else itemgetter(*order)
    serials = bytearray(n * width)
    for at, raw in enumerate(gather(raws)):
        end = (at + 1) * width
        if raw[0] & 0x80:  # a negative serial (non-conformant, but seen): sign-extend
            serials[end - width:end - len(raw)] = b"\xff" * (width - len(raw))
        serials[end - len(raw):end] = raw
    del raws
    meta = json.dumps({**header, "entries": n, "width": width, "byteorder": sys.byteorder},
                      ensure_ascii=False).encode()
    meta += b" " * (-(len(MAGIC) + 4 + len(meta)) % 8)  # the arrays start 8-byte aligned
    _atomic_write(path, [MAGIC, len(meta).to_bytes(4, "little"), meta, array("Q", gather(keys)).tobytes(),
                         array("q", gather(dates)).tobytes(), serials, array("B", gather(reasons)).tobytes()])
    return n


def _earliest_only(raws: list[bytes], keys: array, dates: array,
                   reasons: array) -> tuple[list[bytes], array, array, array]:
    first: dict[bytes, int] = {}
    for i, raw in enumerate(raws):
        if raw not in first or dates[i] < dates[first[raw]]:
            first[raw] = i
    kept = sorted(first.values())
    return ([raws[i] for i in kept], array("Q", (keys[i] for i in kept)), array("q", (dates[i] for i in kept)),
            array("B", (reasons[i] for i in kept)))


class PartitionIndex:
    """One partition file, memory-mapped read-only. Lookups touch only the pages they probe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as fh:
            self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        view = memoryview(self._map)
        if bytes(view[:8]) != MAGIC:
            raise ValueError(f"失効インデックスの形式が不正です: {path}")
        size = int.from_bytes(view[8:12], "little")
        self.header: dict[str, Any] = json.loads(bytes(view[12:12 + size]))
        n, width = int(self.header["entries"]), int(self.header["width"])
        start = 12 + size
        ends = (start + 8 * n, start + 16 * n, start + 16 * n + width * n, start + 16 * n + width * n + n)
        if ends[-1] != len(view):
            raise ValueError(f"失効インデックスの長さが不正です: {path}")
        if self.header["byteorder"] != sys.byteorder:  # built elsewhere: `gateway crl refresh` rebuilds it here
            raise ValueError(f"別のバイト順で作られた失効インデックスです: {path}")
        self.keys: Any = view[start:ends[0]].cast("Q")
        self.dates: Any = view[ends[0]:ends[1]].cast("q")
        self.serials = view[ends[1]:ends[2]]
        self.reasons = view[ends[2]:ends[3]]
        self.size, self.width = n, width

    def lookup(self, serial: int) -> Revoked | None:
        raw = serial_bytes(serial)
        if len(raw) > self.width:
            return None
        key, width, keys = serial_key(raw), self.width, self.keys
        wanted = serial.to_bytes(width, "big", signed=True)
        i = bisect_left(keys, key)
        while i < self.size and keys[i] == key:  # equal hashes: compare the full serials
            if self.serials[i * width:(i + 1) * width] == wanted:
                reason = self.reasons[i]
                return Revoked(self.dates[i], None if reason == NO_REASON else reason)
            i += 1
        return None


# --------------------------------------------------------------------------- the manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"format": 1, "partitions": []}


def write_manifest(directory: Path, manifest: Mapping[str, Any]) -> None:
    _atomic_write(directory / MANIFEST, [json.dumps(manifest, ensure_ascii=False, indent=1).encode()])


def remove_unreferenced(directory: Path, keep: set[str]) -> None:
    """Delete partition files no manifest in ``keep`` names (readers keep their mapping)."""
    for path in directory.glob("*.idx"):
        if path.name not in keep:
            path.unlink(missing_ok=True)


def _atomic_write(path: Path, chunks: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
