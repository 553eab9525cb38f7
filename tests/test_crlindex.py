"""The packed, memory-mapped revocation index: exact lookups, duplicates, collisions, atomic files."""

from __future__ import annotations

import random

import pytest
from cryptography import x509
from cryptography.x509.name import _ASN1Type

from gateway import crlindex
from gateway.crlindex import (
    ALL_CERTIFICATES,
    NO_REASON,
    Partition,
    PartitionIndex,
    name_key,
    parse_dp,
    read_manifest,
    remove_unreferenced,
    write_manifest,
    write_partition,
)
from gateway.testpki import Municipality, crl_distribution_name

CHIYODA = Municipality("131016", "東京都", "千代田区")


def test_lookup_finds_every_entry_and_nothing_else(tmp_path):
    rng = random.Random(7)
    entries = [(rng.getrandbits(159), 1_700_000_000 + i, i % 5) for i in range(5000)]
    entries.append((1, 1_600_000_000, None))  # a one-byte serial among 20-byte ones
    count = write_partition(tmp_path / "p.idx", iter(entries), {"crl_number": 3})
    index = PartitionIndex(tmp_path / "p.idx")
    assert count == index.size == 5001 and index.header["crl_number"] == 3
    for serial, when, reason in entries:
        hit = index.lookup(serial)
        assert hit is not None and hit.revocation_date == when and hit.reason == reason
    assert all(index.lookup(rng.getrandbits(159)) is None for _ in range(2000))
    assert index.lookup(2) is None and index.lookup(0) is None
    assert index.lookup(1 << 400) is None  # wider than any listed serial


def test_negative_and_boundary_serials(tmp_path):
    serials = [-1, -128, 127, 128, 255, 256, (1 << 159) - 1]
    write_partition(tmp_path / "p.idx", ((s, 10, None) for s in serials), {})
    index = PartitionIndex(tmp_path / "p.idx")
    assert all(index.lookup(s) is not None for s in serials)
    assert index.lookup(-2) is None and index.lookup(129) is None and index.lookup(1 << 158) is None


def test_a_serial_listed_twice_keeps_its_earliest_date(tmp_path):
    write_partition(tmp_path / "p.idx", iter([(42, 300, 1), (7, 5, None), (42, 100, 4), (42, 200, None)]), {})
    index = PartitionIndex(tmp_path / "p.idx")
    assert index.size == 2
    assert index.lookup(42).revocation_date == 100


def test_hash_collisions_never_confuse_serials(tmp_path, monkeypatch):
    # Every serial gets the same 64-bit key: the full serial compare must still decide.
    monkeypatch.setattr(crlindex, "serial_key", lambda raw: 12345)
    write_partition(tmp_path / "p.idx", iter([(5, 50, None), (9, 90, None), (5, 40, None), (700, 7, 1)]), {})
    index = PartitionIndex(tmp_path / "p.idx")
    assert index.size == 3
    assert index.lookup(5).revocation_date == 40 and index.lookup(9).revocation_date == 90
    assert index.lookup(700).reason == 1 and index.lookup(6) is None


def test_empty_partition(tmp_path):
    write_partition(tmp_path / "p.idx", iter(()), {})
    index = PartitionIndex(tmp_path / "p.idx")
    assert index.size == 0 and index.lookup(1) is None


def test_reason_none_is_stored_as_its_own_code(tmp_path):
    write_partition(tmp_path / "p.idx", iter([(3, 1, None)]), {})
    assert PartitionIndex(tmp_path / "p.idx").reasons[0] == NO_REASON


def test_damaged_files_are_refused(tmp_path):
    write_partition(tmp_path / "p.idx", iter([(3, 1, None)]), {})
    data = (tmp_path / "p.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(data[:-1])
    (tmp_path / "magic.idx").write_bytes(b"X" + data[1:])
    for name in ("short.idx", "magic.idx"):
        with pytest.raises(ValueError):
            PartitionIndex(tmp_path / name)


def test_name_key_ignores_string_type_case_and_spaces():
    dp = crl_distribution_name(CHIYODA)
    # The same name written by another encoder: UTF8String everywhere, other case and spacing.
    other = x509.Name([x509.NameAttribute(a.oid, a.value.upper().replace(" ", "  "), _ASN1Type.UTF8String)
                       for a in dp])
    assert dp.public_bytes() != other.public_bytes()
    assert name_key(dp) == name_key(other)
    assert name_key(dp) != name_key(crl_distribution_name(Municipality("271004", "大阪府", "大阪市")))


def test_configured_dp_text_matches_the_certificate_dp():
    text = "CN=千代田区,OU=東京都,OU=CRL Distribution Points,OU=JPKI for digital signature,O=JPKI,C=JP"
    assert name_key(parse_dp(text)) == name_key(crl_distribution_name(CHIYODA))
    with pytest.raises(ValueError):
        parse_dp("this is not a DN")


def test_partition_ids_are_stable_and_distinct():
    dp = crl_distribution_name(CHIYODA)
    a, b = Partition.of(b"\x01" * 20, dp), Partition.of(b"\x02" * 20, dp)
    assert a.id.startswith("crl:" + "01" * 20 + ":") and a.id != b.id
    assert a == Partition(b"\x01" * 20, name_key(dp)) and a.id == Partition.of(b"\x01" * 20, dp).id
    assert Partition.of(b"\x01" * 20, None).dp_key == ALL_CERTIFICATES


def test_manifest_is_replaced_atomically_and_unreferenced_files_go(tmp_path):
    assert read_manifest(tmp_path) == {"format": 1, "partitions": []}
    write_manifest(tmp_path, {"format": 1, "partitions": [{"file": "a.idx"}]})
    assert read_manifest(tmp_path)["partitions"] == [{"file": "a.idx"}]
    assert not list(tmp_path.glob(".*.tmp"))
    for name in ("a.idx", "b.idx", "c.idx"):
        (tmp_path / name).write_bytes(b"")
    remove_unreferenced(tmp_path, {"a.idx", "b.idx"})
    assert sorted(p.name for p in tmp_path.glob("*.idx")) == ["a.idx", "b.idx"]
