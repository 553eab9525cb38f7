"""parse_date reads every form exactly as it did before its fast paths (``golden/wareki.json``).

The pinned file was written by the parser before it was made faster (a fast path for
``YYYY-MM-DD``, module-level enum members, a cheaper ``JapaneseDate`` constructor): a fingerprint
of everything read from each form (precision, day, era, year, month, day, both conversions).
The corpus covers each accepted form, every era boundary, partial, unknown and malformed dates,
full-width digits and spaces. Regenerate only for an intended change:
``python -m tests.test_wareki_golden``.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.wareki import (
    ERAS,
    JapaneseDate,
    era_of,
    parse_date,
    to_era_code_yymmdd,
    to_western_yyyymmdd,
)

GOLDEN = Path(__file__).resolve().parent / "golden" / "wareki.json"


def corpus() -> Iterator[str]:
    eras = ("明治", "大正", "昭和", "平成", "令和")
    years = ("元", "0", "1", "5", "6", "15", "31", "45", "64", "65", "○", "○○", "100")
    months_days = (("1", "1"), ("01", "07"), ("1", "8"), ("2", "29"), ("2", "30"), ("4", "30"), ("5", "1"),
                   ("7", "29"), ("7", "30"), ("7", "31"), ("12", "24"), ("12", "25"), ("12", "26"), ("13", "1"),
                   ("0", "1"), ("00", "00"), ("1", "32"), ("○", "○"), ("3", "○"))
    for era in eras:
        for y in years:
            yield f"{era}{y}年"
            yield f"{era}{y}年月日不詳"
            for m, d in months_days:
                yield f"{era}{y}年{m}月"
                yield f"{era}{y}年{m}月{d}日"
            for suffix in ("頃", "ごろ", "月日不詳", "日不詳", "不詳"):
                yield f"{era}{y}年{suffix}"
                yield f"{era}{y}年3月{suffix}"
                yield f"{era}{y}年3月4日{suffix}"
    for letter in ("M", "T", "S", "H", "R", "m", "r", "明治", "令和", "X"):
        for body in ("8.11.28", "元.5.1", "31/4/30", "1-5-1", "45.7.30", "64.1.7", "6.1.1", "5.12.2", "8.13.1"):
            yield f"{letter}{body}"
    boundaries = ("1868-01-25", "1872-12-31", "1873-01-01", "1912-07-29", "1912-07-30", "1912-07-31",
                  "1926-12-24", "1926-12-25", "1926-12-26", "1989-01-07", "1989-01-08", "2019-04-30",
                  "2019-05-01", "2024-02-29", "2023-02-29", "2026-11-28", "0001-01-01", "9999-12-31",
                  "1980-00-00", "1980-01-00", "1980-13-01", "1980-1-5", "2026-11-28Z", "2026-11-28+09:00",
                  "2026-11-28-05:00", "2026-11-28T10:00:00", "12026-11-28")
    for day in boundaries:
        yield day
        yield day.replace("-", "/")
        yield day.replace("-", ".")
        yield day.replace("-", "")
        yield f" {day} "
        yield f"\t{day}\n"
        yield day.translate(str.maketrans("0123456789-", "０１２３４５６７８９－"))
        y, _, rest = day.partition("-")
        m, _, d = rest.partition("-")
        yield f"{y}年{m}月{d}日"
    for code in range(10):
        for body in ("081128", "010501", "310430", "640107", "010108", "451231", "000000", "080000", "081300"):
            yield f"{code}{body}"
        for body in ("20261128", "19890107", "19890108", "19800000", "19800100", "19450230", "18720101"):
            yield f"{code}{body}"
    yield from ("", " ", "　", "不詳", "年月日不詳", "生年月日不詳", "abc", "令和", "2026-11", "R8.11", "12345",
                "令和８年１１月２８日", " 令和 8年 11月 28日 ", "令和8年11月28日 ", "ｒ８．１１．２８", "2026ー11ー28",
                "令和元年五月一日", "平成三十一年", "2026-1１-28", "2026-11-28\u3000", "２０２６年１１月２８日",
                "9999-99-99", "0000-00-00", "-026-11-28", "+026-11-28", "2026-+1-28", "2026- 1-28", "2026-1-028")


def outcome(text: str) -> list[object]:
    parsed = parse_date(text)
    return [text, parsed.precision.value, parsed.iso(), parsed.era, parsed.year, parsed.month, parsed.day,
            parsed.western(), _era_code(parsed)]


def _era_code(parsed: JapaneseDate) -> str | None:
    try:
        return parsed.era_code_yymmdd()
    except ValueError as exc:  # before 明治6年: not convertible, and said so
        return f"ValueError: {exc}"


def digest(row: list[object]) -> str:
    """A short fingerprint of one outcome: the golden file stays small (a 32-bit collision for a
    changed outcome is a chance in four billion per form)."""
    return hashlib.sha256(json.dumps(row, ensure_ascii=False).encode("utf-8")).hexdigest()[:8]


def write_golden() -> None:
    GOLDEN.parent.mkdir(exist_ok=True)
    digests = [digest(outcome(text)) for text in dict.fromkeys(corpus())]
    GOLDEN.write_text(json.dumps({"forms": len(digests), "sha256_8": digests}, indent=0) + "\n", encoding="utf-8")


def test_every_form_is_read_as_before() -> None:
    pinned = json.loads(GOLDEN.read_text(encoding="utf-8"))
    texts = list(dict.fromkeys(corpus()))
    assert pinned["forms"] == len(texts)
    changed = [outcome(text) for text, expected in zip(texts, pinned["sha256_8"], strict=True)
               if digest(outcome(text)) != expected]
    assert changed == []


def test_conversions_match_their_reference_definitions() -> None:
    day = dt.date(1, 1, 1)
    while day < dt.date(9997, 1, 1):
        assert to_western_yyyymmdd(day) == day.strftime("%Y%m%d")
        if day >= dt.date(1873, 1, 1):
            era = next(era for era in reversed(ERAS) if era.start <= day)
            assert era_of(day) is era
            assert to_era_code_yymmdd(day) == f"{era.code}{day.year - era.start.year + 1:02d}{day:%m%d}"
        day += dt.timedelta(days=997 if day.year < 1860 or day.year > 2100 else 13)
    for boundary in [dt.date(1873, 1, 1), *(era.start for era in ERAS[1:]), *(era.end for era in ERAS if era.end)]:
        for delta in (-1, 0, 1):
            day = boundary + dt.timedelta(days=delta)
            if day < dt.date(1873, 1, 1):
                with pytest.raises(ValueError):
                    era_of(day)
            else:
                assert era_of(day) is next(era for era in reversed(ERAS) if era.start <= day)


def test_japanese_date_is_still_a_frozen_dataclass() -> None:
    parsed = parse_date("令和元年5月1日")
    assert [f.name for f in dataclasses.fields(JapaneseDate)] == [
        "original", "value", "era", "precision", "year", "month", "day"]
    same = JapaneseDate("令和元年5月1日", dt.date(2019, 5, 1), "令和", parsed.precision, 2019, 5, 1)
    assert parsed == same and hash(parsed) == hash(same) and repr(parsed) == repr(same)
    assert JapaneseDate("x", None, None, parsed.precision) == JapaneseDate("x", None, None, parsed.precision,
                                                                           None, None, None)
    assert dataclasses.replace(parsed, day=2).day == 2 and dataclasses.asdict(parsed)["era"] == "令和"
    assert pickle.loads(pickle.dumps(parsed)) == parsed and copy.deepcopy(parsed) == parsed
    for name in ("value", "original"):
        try:
            setattr(parsed, name, None)
        except dataclasses.FrozenInstanceError:
            continue
        raise AssertionError(f"{name} could be changed")


if __name__ == "__main__":
    write_golden()
