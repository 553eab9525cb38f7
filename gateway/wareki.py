"""Japanese-era (和暦) and Western dates as forms and certificates write them.

:func:`parse_date` never raises on a string: a birth date from the resident register may be
unknown (``年月日不詳``), partial (``令和○年頃``) or not a calendar date (``昭和20年2月30日``), and
such a date must travel on unchanged. It returns a :class:`JapaneseDate` holding the original
text, a :class:`Precision`, and a ``datetime.date`` only when the day is exactly known.

Choices (``spec/identifiers.md``):

* A date outside its era (``平成31年5月1日``: that day is 令和元年5月1日; ``令和元年4月30日``;
  ``昭和65年``) is **flagged**, not converted: ``precision=OUT_OF_ERA``, ``value=None``. The
  caller decides whether to refuse it; guessing the writer's intent is not this module's job.
* 明治1-5年 dates are lunisolar (the Gregorian calendar began on 明治6年1月1日 = 1873-01-01) and
  cannot be converted without a lunar table: ``precision=LUNAR``, ``value=None``.
* The days on which two eras meet are valid in both: 1912-07-30 is 明治45年7月30日 and
  大正元年7月30日; 1926-12-25 is 大正15年12月25日 and 昭和元年12月25日 (the register allows both).
  Converting a Western date picks the **new** era. 昭和64年1月7日 / 平成元年1月8日 and
  平成31年4月30日 / 令和元年5月1日 do not overlap.
* An approximate date (``…頃``) never counts as exact.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Era:
    name: str
    code: int
    """Era code as in the signing certificate and core systems: 1 明治 … 5 令和 (0 = unknown)."""
    letter: str
    start: dt.date
    end: dt.date | None
    """Last day, inclusive; None for the current era."""

    def contains(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


GREGORIAN_START = dt.date(1873, 1, 1)
"""明治6年1月1日: before it, 明治 dates are lunisolar."""

ERAS = (
    Era("明治", 1, "M", dt.date(1868, 1, 25), dt.date(1912, 7, 30)),
    Era("大正", 2, "T", dt.date(1912, 7, 30), dt.date(1926, 12, 25)),
    Era("昭和", 3, "S", dt.date(1926, 12, 25), dt.date(1989, 1, 7)),
    Era("平成", 4, "H", dt.date(1989, 1, 8), dt.date(2019, 4, 30)),
    Era("令和", 5, "R", dt.date(2019, 5, 1), None),
)
_BY_KEY = {key: era for era in ERAS for key in (era.name, era.letter, str(era.code))}


class Precision(str, Enum):
    DAY = "day"                    # value holds the exact date
    MONTH = "month"                # year and month known
    YEAR = "year"                  # only the year known
    ERA = "era"                    # only the era known (令和○年頃)
    UNKNOWN = "unknown"            # 年月日不詳, era code 0, empty
    NOT_A_DATE = "not-a-date"      # well formed but no such day (2月30日, 13月)
    OUT_OF_ERA = "out-of-era"      # the era had ended or not begun (平成31年5月1日)
    LUNAR = "lunar"                # 明治1-5年: lunisolar calendar
    UNRECOGNISED = "unrecognised"  # not a date form this module knows


@dataclass(frozen=True, init=False)
class JapaneseDate:
    """A parsed date that always keeps what was written."""

    original: str
    value: dt.date | None
    era: str | None
    """Era the original was written in; None for Western or unknown-era input."""
    precision: Precision
    year: int | None = None
    """Western year, when the year is known (also for flagged dates, for messages)."""
    month: int | None = None
    day: int | None = None

    def __init__(self, original: str, value: dt.date | None, era: str | None, precision: Precision,
                 year: int | None = None, month: int | None = None, day: int | None = None) -> None:
        # The dataclass's own __init__ of a frozen class sets each field through
        # object.__setattr__ (~2.4 µs for seven); a package parses about ten dates. One write
        # of the instance dict gives the same object, still frozen to the outside.
        self.__dict__.update(original=original, value=value, era=era, precision=precision,
                             year=year, month=month, day=day)

    @property
    def exact(self) -> bool:
        return self.value is not None

    def western(self) -> str | None:
        """``YYYYMMDD``, or None when the day is not exactly known."""
        return to_western_yyyymmdd(self.value) if self.value else None

    def era_code_yymmdd(self) -> str | None:
        """Era code + ``YYMMDD`` (``5081128``), or None when not exact."""
        return to_era_code_yymmdd(self.value) if self.value else None

    def iso(self) -> str | None:
        return self.value.isoformat() if self.value else None


# Looking a member up on an Enum class costs ~0.25 µs; parse_date returns one per date.
_DAY, _MONTH, _YEAR, _ERA, _UNKNOWN = Precision.DAY, Precision.MONTH, Precision.YEAR, Precision.ERA, Precision.UNKNOWN
_NOT_A_DATE, _OUT_OF_ERA, _LUNAR, _UNRECOGNISED = (
    Precision.NOT_A_DATE, Precision.OUT_OF_ERA, Precision.LUNAR, Precision.UNRECOGNISED)

_UNKNOWN_PART = r"[○〇◯?？]{1,2}"
_KANJI = re.compile(
    rf"(?P<era>明治|大正|昭和|平成|令和)(?P<y>元|\d{{1,2}}|{_UNKNOWN_PART})年"
    rf"(?:(?P<m>\d{{1,2}}|{_UNKNOWN_PART})月)?(?:(?P<d>\d{{1,2}}|{_UNKNOWN_PART})日)?"
    r"(?P<suffix>頃|ごろ|月日不詳|日不詳|不詳)?", re.ASCII)
_ABBREV = re.compile(r"(?P<era>明治|大正|昭和|平成|令和|[MTSHR])(?P<y>元|\d{1,2})[./-](?P<m>\d{1,2})[./-](?P<d>\d{1,2})",
                     re.ASCII)
_WESTERN = re.compile(r"(?P<y>\d{4})(?:[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})|年(?P<m2>\d{1,2})月(?P<d2>\d{1,2})日)"
                      r"(?:Z|[+-]\d{2}:\d{2})?", re.ASCII)
_UNKNOWN_WORDS = {"", "不詳", "年月日不詳", "生年月日不詳"}


def parse_date(text: str) -> JapaneseDate:
    """Parse a 和暦 or Western date in any form the gateway meets; never raises on a ``str``.

    Accepted: ``令和8年11月28日``, ``令和元年5月1日``, ``R8.11.28`` / ``令和8/11/28``, era code +
    ``YYMMDD`` (``5081128``), the certificate's ``EYYYYMMDD`` (``520261128``, era 0 unknown,
    ``00`` for an unknown month or day), ``2026-11-28`` / ``2026/11/28`` / ``2026年11月28日`` /
    ``20261128``, and the partial forms ``令和2年3月``, ``令和2年月日不詳``, ``令和○年頃``,
    ``年月日不詳``. Full-width digits and spaces are tolerated.
    """
    original = text
    if len(text) == 10 and text[4] == "-" == text[7] and text.isascii():
        # xs:date as most forms write it: what the steps below make of it, without them.
        y, m, d = text[:4], text[5:7], text[8:]
        if y.isdigit() and m.isdigit() and d.isdigit():
            return _from_western(original, int(y), int(m), int(d))
    s = unicodedata.normalize("NFKC", text).replace(" ", "").upper()
    if s in _UNKNOWN_WORDS:
        return JapaneseDate(original, None, None, _UNKNOWN)
    if s.isascii() and s.isdigit():
        return _parse_digits(original, s)
    if m := _WESTERN.fullmatch(s):
        return _from_western(original, int(m["y"]), int(m["m"] or m["m2"]), int(m["d"] or m["d2"]))
    if m := _KANJI.fullmatch(s):
        return _from_era_parts(original, _BY_KEY[m["era"]], m["y"], m["m"], m["d"], m["suffix"])
    if m := _ABBREV.fullmatch(s):
        return _from_era_parts(original, _BY_KEY[m["era"]], m["y"], m["m"], m["d"], None)
    return JapaneseDate(original, None, None, _UNRECOGNISED)


def _parse_digits(original: str, s: str) -> JapaneseDate:
    if len(s) == 8:  # YYYYMMDD
        return _from_western(original, int(s[:4]), int(s[4:6]), int(s[6:]))
    if len(s) not in (7, 9):
        return JapaneseDate(original, None, None, _UNRECOGNISED)
    if s[0] == "0":  # era code 0: unknown
        return JapaneseDate(original, None, None, _UNKNOWN)
    era = _BY_KEY.get(s[0])
    if era is None:
        return JapaneseDate(original, None, None, _UNRECOGNISED)
    if len(s) == 7:  # era code + YYMMDD; 00 marks an unknown part
        return _from_era_parts(original, era, s[1:3], s[3:5], s[5:7], None, zero_unknown=True)
    year, month, day = int(s[1:5]), int(s[5:7]), int(s[7:])  # EYYYYMMDD: era code + Western date
    if month == 0 or day == 0:
        return _partial(original, era, year, month or None, None)
    parsed = _from_western(original, year, month, day)
    if parsed.value and not era.contains(parsed.value):
        return JapaneseDate(original, None, era.name, _OUT_OF_ERA, year, month, day)
    return JapaneseDate(original, parsed.value, era.name, parsed.precision, year, month, day)


def _number(part: str | None, *, zero_unknown: bool = False) -> int | None:
    """An ASCII number, or None for a missing or unknown (○, or 00 where zero means unknown) part."""
    if part is None or not (part.isascii() and part.isdigit()):
        return None
    n = int(part)
    return None if zero_unknown and n == 0 else n


def _from_era_parts(original: str, era: Era, y: str, m: str | None, d: str | None,
                    suffix: str | None, *, zero_unknown: bool = False) -> JapaneseDate:
    era_year = 1 if y == "元" else _number(y, zero_unknown=zero_unknown)
    if era_year is None:
        return JapaneseDate(original, None, era.name, _ERA)
    year = era.start.year + era_year - 1
    month = _number(m, zero_unknown=zero_unknown)
    day = _number(d, zero_unknown=zero_unknown)
    if suffix == "月日不詳":
        month = day = None
    approximate = suffix in ("頃", "ごろ")
    if era_year == 0:
        return JapaneseDate(original, None, era.name, _OUT_OF_ERA, year, month, day)
    if era.code == 1 and era_year < 6:
        return JapaneseDate(original, None, era.name, _LUNAR, year, month, day)
    if month is None or day is None or approximate:
        return _partial(original, era, year, month, None if approximate else day)
    try:
        value = dt.date(year, month, day)
    except ValueError:
        return JapaneseDate(original, None, era.name, _NOT_A_DATE, year, month, day)
    if not era.contains(value):
        return JapaneseDate(original, None, era.name, _OUT_OF_ERA, year, month, day)
    return JapaneseDate(original, value, era.name, _DAY, year, month, day)


def _partial(original: str, era: Era | None, year: int, month: int | None, day: int | None) -> JapaneseDate:
    """A date missing its day (or month): checked only as far as it is known."""
    era_name = era.name if era else None
    if month is not None and not 1 <= month <= 12:
        return JapaneseDate(original, None, era_name, _NOT_A_DATE, year, month, day)
    if not 1 <= year <= 9999:
        return JapaneseDate(original, None, era_name, _NOT_A_DATE, year, month, day)
    first = dt.date(year, month or 1, 1)
    last = dt.date(year, month, calendar.monthrange(year, month)[1]) if month else dt.date(year, 12, 31)
    if era and (last < era.start or (era.end is not None and first > era.end)):
        return JapaneseDate(original, None, era_name, _OUT_OF_ERA, year, month, day)
    return JapaneseDate(original, None, era_name, _MONTH if month else _YEAR, year, month)


def _from_western(original: str, year: int, month: int, day: int) -> JapaneseDate:
    if month == 0 or day == 0:  # 00 marks an unknown month or day (19800000, 19800100)
        return _partial(original, None, year, month or None, None)
    try:
        value = dt.date(year, month, day)
    except ValueError:
        return JapaneseDate(original, None, None, _NOT_A_DATE, year, month, day)
    return JapaneseDate(original, value, None, _DAY, year, month, day)


# --------------------------------------------------------------------------- conversions


_NEWEST_FIRST = ERAS[::-1]


def era_of(day: dt.date) -> Era:
    """The era of a Gregorian date (the new era on a day two eras share)."""
    if day < GREGORIAN_START:
        raise ValueError(f"{day.isoformat()} は太陽暦施行（明治6年1月1日）より前のため和暦に換算できません")
    for era in _NEWEST_FIRST:
        if era.start <= day:
            return era
    raise AssertionError("unreachable: 明治 began before GREGORIAN_START")


def to_wareki(day: dt.date) -> str:
    """``令和8年11月28日``; year 1 is written 元年."""
    era = era_of(day)
    n = day.year - era.start.year + 1
    return f"{era.name}{'元' if n == 1 else n}年{day.month}月{day.day}日"


def to_era_code_yymmdd(day: dt.date) -> str:
    """Era code + ``YYMMDD``: 2026-11-28 → ``5081128``."""
    era = era_of(day)
    return f"{era.code}{day.year - era.start.year + 1:02d}{day.month:02d}{day.day:02d}"


def to_western_yyyymmdd(day: dt.date) -> str:
    if day.year < 1000:  # strftime does not pad the year there: keep what it wrote
        return day.strftime("%Y%m%d")
    return f"{day.year}{day.month:02d}{day.day:02d}"  # strftime's result, at a third of its cost


def to_cert_form(day: dt.date) -> str:
    """The certificate's ``EYYYYMMDD``: era code + Western date (``520261128``)."""
    return f"{era_of(day).code}{to_western_yyyymmdd(day)}"


# --------------------------------------------------------------------------- legal age


def reaches_age_on(birth: dt.date, age: int) -> dt.date:
    """The day one legally reaches ``age``: the day before the birthday (年齢計算ニ関スル法律).

    Someone born on 29 February reaches an age on 28 February in a common year.
    """
    year = birth.year + age
    try:
        anniversary = birth.replace(year=year)
    except ValueError:  # 29 February in a common year: the anniversary is 1 March
        anniversary = dt.date(year, 3, 1)
    return anniversary - dt.timedelta(days=1)


def legal_age_on(birth: dt.date, on: dt.date) -> int:
    """Age on ``on`` counted as the law counts it (one day earlier than the birthday)."""
    age = on.year - birth.year
    if on < reaches_age_on(birth, age):
        age -= 1
    return age
