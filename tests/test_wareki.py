"""和暦 and Western dates: forms, era boundaries, partial and register dates, conversions."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.wareki import (
    JapaneseDate,
    Precision,
    era_of,
    legal_age_on,
    parse_date,
    reaches_age_on,
    to_cert_form,
    to_era_code_yymmdd,
    to_wareki,
    to_western_yyyymmdd,
)

D = dt.date


# --------------------------------------------------------------------------- era boundaries


@pytest.mark.parametrize("text,expected", [
    ("平成31年4月30日", D(2019, 4, 30)),
    ("令和元年5月1日", D(2019, 5, 1)),
    ("令和1年5月1日", D(2019, 5, 1)),
    ("昭和64年1月7日", D(1989, 1, 7)),
    ("平成元年1月8日", D(1989, 1, 8)),
    ("昭和元年12月25日", D(1926, 12, 25)),
    ("大正15年12月25日", D(1926, 12, 25)),   # the day both eras share
    ("大正元年7月30日", D(1912, 7, 30)),
    ("明治45年7月30日", D(1912, 7, 30)),    # likewise
    ("明治6年1月1日", D(1873, 1, 1)),       # first Gregorian day
])
def test_exact_at_era_boundaries(text: str, expected: dt.date) -> None:
    parsed = parse_date(text)
    assert parsed.precision is Precision.DAY
    assert parsed.value == expected


@pytest.mark.parametrize("text", ["平成31年5月1日", "令和元年4月30日", "昭和64年1月8日", "平成元年1月7日",
                                  "大正15年12月26日", "明治45年7月31日", "昭和65年1月1日", "令和0年1月1日",
                                  "平成31年5月"])
def test_dates_outside_their_era_are_flagged_not_converted(text: str) -> None:
    parsed = parse_date(text)
    assert parsed.precision is Precision.OUT_OF_ERA
    assert parsed.value is None and parsed.original == text


def test_meiji_before_year_6_is_lunisolar() -> None:
    parsed = parse_date("明治5年12月2日")  # the last lunisolar day; the next was 明治6年1月1日
    assert parsed.precision is Precision.LUNAR
    assert parsed.value is None and parsed.year == 1872
    with pytest.raises(ValueError):
        era_of(D(1872, 12, 31))


# --------------------------------------------------------------------------- forms


@pytest.mark.parametrize("text", ["令和8年11月28日", "R8.11.28", "r08/11/28", "令和8.11.28", "5081128", "520261128",
                                  "2026-11-28", "2026/11/28", "2026年11月28日", "20261128", "2026-11-28+09:00",
                                  "令和８年１１月２８日", "２０２６－１１－２８", " 令和 8年 11月 28日 "])
def test_every_form_of_the_same_day(text: str) -> None:
    parsed = parse_date(text)
    assert parsed.value == D(2026, 11, 28), parsed
    assert parsed.western() == "20261128" and parsed.era_code_yymmdd() == "5081128"
    assert parsed.iso() == "2026-11-28" and parsed.original == text


def test_era_is_what_was_written() -> None:
    assert parse_date("令和8年11月28日").era == "令和"
    assert parse_date("2026-11-28").era is None
    assert parse_date("319800115").era == "昭和"


def test_certificate_form_checks_its_era_code() -> None:
    assert parse_date("319800115").value == D(1980, 1, 15)
    assert parse_date("419890107").precision is Precision.OUT_OF_ERA  # 平成 code on a 昭和 day
    assert parse_date("019800115").precision is Precision.UNKNOWN     # era 0 = unknown
    assert parse_date("319800000").precision is Precision.YEAR
    assert parse_date("319800100").precision is Precision.MONTH


# --------------------------------------------------------------------------- register dates


@pytest.mark.parametrize("text,precision,year,month", [
    ("年月日不詳", Precision.UNKNOWN, None, None),
    ("", Precision.UNKNOWN, None, None),
    ("令和○年頃", Precision.ERA, None, None),
    ("令和2年", Precision.YEAR, 2020, None),
    ("令和2年月日不詳", Precision.YEAR, 2020, None),
    ("令和2年3月", Precision.MONTH, 2020, 3),
    ("令和2年3月日不詳", Precision.MONTH, 2020, 3),
    ("令和2年3月○日", Precision.MONTH, 2020, 3),
    ("令和2年3月1日頃", Precision.MONTH, 2020, 3),   # approximate: never exact
    ("19800000", Precision.YEAR, 1980, None),
    ("昭和20年2月30日", Precision.NOT_A_DATE, 1945, 2),
    ("2023-02-29", Precision.NOT_A_DATE, 2023, 2),
    ("令和2年13月", Precision.NOT_A_DATE, 2020, 13),
])
def test_unknown_partial_and_non_calendar_dates_keep_the_original(text: str, precision: Precision,
                                                                  year: int | None, month: int | None) -> None:
    parsed = parse_date(text)
    assert (parsed.precision, parsed.year, parsed.month) == (precision, year, month)
    assert parsed.value is None and not parsed.exact and parsed.original == text
    assert parsed.western() is None and parsed.era_code_yymmdd() is None


@pytest.mark.parametrize("text", ["abc", "令和", "2026-11", "R8.11", "9081128", "2026-11-28T10:00:00", "12345"])
def test_unreadable_text_is_flagged_not_raised(text: str) -> None:
    assert parse_date(text).precision is Precision.UNRECOGNISED


def test_result_is_frozen() -> None:
    parsed = parse_date("令和元年5月1日")
    assert isinstance(parsed, JapaneseDate)
    with pytest.raises(AttributeError):
        parsed.value = None  # type: ignore[misc]


# --------------------------------------------------------------------------- conversions


@pytest.mark.parametrize("day,wareki,code", [
    (D(2019, 4, 30), "平成31年4月30日", "4310430"),
    (D(2019, 5, 1), "令和元年5月1日", "5010501"),
    (D(1989, 1, 7), "昭和64年1月7日", "3640107"),
    (D(1989, 1, 8), "平成元年1月8日", "4010108"),
    (D(1926, 12, 25), "昭和元年12月25日", "3011225"),  # shared day: the new era
    (D(1912, 7, 30), "大正元年7月30日", "2010730"),
    (D(1873, 1, 1), "明治6年1月1日", "1060101"),
    (D(2026, 11, 28), "令和8年11月28日", "5081128"),
])
def test_western_to_era(day: dt.date, wareki: str, code: str) -> None:
    assert to_wareki(day) == wareki
    assert to_era_code_yymmdd(day) == code
    assert parse_date(code).value == day and parse_date(wareki).value == day


def test_western_and_certificate_forms() -> None:
    assert to_western_yyyymmdd(D(2019, 5, 1)) == "20190501"
    assert to_cert_form(D(1989, 1, 7)) == "319890107"
    assert to_cert_form(D(1989, 1, 8)) == "419890108"


# --------------------------------------------------------------------------- legal age


def test_age_is_reached_the_day_before_the_birthday() -> None:
    born = D(2008, 4, 2)
    assert reaches_age_on(born, 18) == D(2026, 4, 1)
    assert legal_age_on(born, D(2026, 3, 31)) == 17
    assert legal_age_on(born, D(2026, 4, 1)) == 18


def test_leap_day_birthdays_reach_their_age_on_28_february() -> None:
    born = D(2008, 2, 29)
    assert reaches_age_on(born, 18) == D(2026, 2, 28)
    assert legal_age_on(born, D(2026, 2, 27)) == 17
    assert legal_age_on(born, D(2026, 2, 28)) == 18
    assert reaches_age_on(born, 20) == D(2028, 2, 28)  # a leap year: the day before 29 February
