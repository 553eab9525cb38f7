"""How names, addresses, sexes and birth dates are compared with the certificate's basic facts.

The certificate (``jpki-profile.md``) writes 氏名 and 住所 from the resident register, with
characters outside JIS levels 1-2 and 補助漢字 replaced by a substitute (代替文字) and flagged;
residents type what they see on their card or think is right. These rules say exactly what is
taken as "the same" (``docs/configuration.md`` repeats them for staff). Both sides always go
through the same folding, so identical text always matches; the folding only decides which
differences are ignored. It is for comparison only: nothing folded is stored or delivered.

氏名 (:func:`fold_name`)
    1. variation selectors (IVS/SVS) are removed;
    2. Unicode NFKC: full-width letters and digits become ASCII, half-width katakana becomes
       full-width (``ﾔﾏﾀﾞ`` → ``ヤマダ``), CJK compatibility ideographs become their unified
       form, the full-width space becomes a space;
    3. every space (also U+3000) and the middle dot ``・`` are removed: ``山田　太郎`` =
       ``山田 太郎`` = ``山田太郎``;
    4. old and variant kanji forms (旧字体・異体字) fold to the common form through
       :data:`KANJI_VARIANTS` plus the configured extra pairs (``澤`` → ``沢``, ``髙`` → ``高``,
       ``﨑`` → ``崎``); ``ヶ``/``ヵ`` → ``ケ``/``カ``; Latin letters are upper-cased.

    Not folded: hiragana vs katakana (different registered names), ``々`` vs a repeated kanji,
    kanji that are not in the table.

住所 (:func:`fold_address`)
    Steps 1, 2, 4 of the name, all spaces removed, and further:

    5. every dash-like character (``－ ‐ ‑ ‒ – — ― − ｰ``, and ``ー`` after a digit) → ``-``;
       ``ノ`` → ``の`` (丸ノ内 = 丸の内);
    6. kanji numerals become digits before ``丁目`` and ``番地`` always, and before ``番``
       and ``号`` only inside a 丁目-番-号 chain (so ``一番町`` stays a place name);
    7. ``N丁目``, ``N番地``, ``N番``, ``Nの`` (before a digit) become ``N-``; ``N号`` becomes
       ``N`` (not ``N号室``): ``千代田一丁目1番1号`` = ``千代田１－１－１`` = ``千代田1丁目1-1``;
       repeated and trailing dashes are dropped;
    8. a leading prefecture is ignored only when one side omits it (``千代田区…`` matches
       ``東京都千代田区…``; ``東京都府中市`` never matches ``広島県府中市``).

    Not folded: 大字/字, ``ヶ`` vs ``が`` (霞ヶ関 / 霞が関), building names and room numbers
    present on one side only.

性別 (:func:`sex_code`): ``男``/``男性``/``1``/``M``/``male`` → 1, ``女``/``女性``/``2``/``F``/
``female`` → 2; 3 (unknown) on the card is never compared.

生年月日: the card's ``EYYYYMMDD`` and the typed 和暦 or Western date are both parsed by
:func:`gateway.wareki.parse_date` and compared as dates (``平成2年4月15日`` = ``1990-04-15`` =
``419900415``); when the card's date is partial (``319450200``) or not a calendar date
(``319450230``, as the register allows) the year, month and day it holds are compared with
those written; an unknown date (era code 0) is not compared.

代替文字: in a position the card flags as a substitute, the applicant may have typed the real
character, which the card could not hold: any one character outside JIS X 0208/0212 (or the
card's own substitute, or its folded form) is accepted there. Such a match is reported as
"matched through substitutes" (代替文字で一致); a remaining difference in a field with
substitutes as 不一致（代替文字あり）, so staff know the card used 代替文字 there.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Mapping
from enum import Enum
from types import MappingProxyType

from gateway.wareki import JapaneseDate, parse_date

# Old or variant form → common form. Comparison only; not exhaustive (a municipality adds its
# own pairs with IDENTITY.KANJI_VARIANTS). Pairs are written old-new, one pair per two characters.
_VARIANT_PAIRS = (
    "澤沢邊辺邉辺齋斎齊斉濱浜濵浜廣広國国櫻桜德徳惠恵榮栄來来瀧滝淺浅實実壽寿藏蔵眞真學学"
    "圓円髙高﨑崎嵜崎嶋島嶌島峯峰冨富萬万鐵鉄綠緑靜静條条傳伝彌弥禮礼豐豊團団辨弁驛駅體体"
    "與与兒児縣県會会發発舊旧總総聲声龜亀黑黒兩両將将寶宝圖図嶽岳廳庁戶戸敎教曉暁檢検歷歴"
    "氣気淸清滿満瀨瀬爲為獨独硏研穗穂緖緒繩縄藝芸螢蛍衞衛覺覚讀読變変賴頼醫医鎭鎮關関靑青"
    "驗験鷄鶏麥麦黃黄齒歯龍竜栁柳邨村𠮷吉"
)
KANJI_VARIANTS: Mapping[str, str] = MappingProxyType(dict(zip(_VARIANT_PAIRS[::2], _VARIANT_PAIRS[1::2], strict=True)))
NO_VARIANTS: Mapping[str, str] = MappingProxyType({})

SUBSTITUTE = "\ufffc"
"""Stands for a character the card flagged as a 代替文字 while comparing (see :func:`_matches`)."""

PREFECTURES = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県",
    "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県",
    "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県",
    "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県",
    "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
)
# Every step is one C-level pass (a compiled pattern or a str.translate table) run once per
# string: folding is on the intake's hot path (see :class:`Folding`).
_PREFECTURE = re.compile("|".join(PREFECTURES))  # tried in order, like a scan of the tuple
_VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_KANA = {"ヶ": "ケ", "ヵ": "カ"}
_ADDRESS_MARKS = {**dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2500\u2501\uff0d", "-"), "ノ": "の"}
_KANJI_DIGITS = "〇一二三四五六七八九"
_KANJI_NUMBER = "[〇一二三四五六七八九十百千]+"
_CHAIN_BEFORE = r"(?:(?<=丁目)|(?<=番地)|(?<=[番の\-0-9]))"
_LONG_MARK_AFTER_DIGIT = re.compile(r"(?<=[0-9])ー")
_ANY_KANJI_NUMERAL = re.compile("[〇一二三四五六七八九十百千]")
_KANJI_BEFORE_UNIT = re.compile(f"({_KANJI_NUMBER})(?=丁目|番地)")
_KANJI_IN_CHAIN = re.compile(f"{_CHAIN_BEFORE}({_KANJI_NUMBER})(?=番|号|$)")
# The number stays where it is, only what follows it changes: a lookbehind and a fixed
# replacement keep re.sub in C (a template like ``\1-`` is expanded in Python per match).
_NUMBER_UNIT = re.compile(r"(?<=[0-9])(?:丁目|番地の?|番|の(?=[0-9]))")
_NUMBER_GOU = re.compile(r"(?<=[0-9])号(?!室)")
_DASH_RUN = re.compile(r"-{2,}")


class Outcome(str, Enum):
    """The result of comparing one fact; the values are what staff see (no personal data)."""

    MATCH = "一致"
    MATCH_SUBSTITUTE = "代替文字で一致"
    MISMATCH = "不一致"
    MISMATCH_SUBSTITUTE = "不一致（代替文字あり）"
    NOT_COMPARED = "照合対象外"

    @property
    def is_mismatch(self) -> bool:
        return self is _MISMATCH or self is _MISMATCH_SUBSTITUTE


# Looking a member up on an Enum class costs ~0.2 µs; the comparisons below run per fact and package.
_MATCH, _MATCH_SUBSTITUTE, _MISMATCH, _MISMATCH_SUBSTITUTE, _NOT_COMPARED = (
    Outcome.MATCH, Outcome.MATCH_SUBSTITUTE, Outcome.MISMATCH, Outcome.MISMATCH_SUBSTITUTE, Outcome.NOT_COMPARED)


class _Translation:
    """The kanji pairs (configured ones first), then ``then`` on what they give, exactly as one
    replacement after the other would: one ``str.translate``, skipped when nothing is to change."""

    __slots__ = ("_present", "_table")

    def __init__(self, variants: Mapping[str, str], then: Mapping[str, str]) -> None:
        extra = {ch: new for ch, new in variants.items() if len(ch) == 1}  # a lookup is per character
        self._table: dict[int, str] = {}
        for ch in {*KANJI_VARIANTS, *extra, *then}:
            folded = "".join(then.get(c, c) for c in extra.get(ch, KANJI_VARIANTS.get(ch, ch)))
            if folded != ch:
                self._table[ord(ch)] = folded
        self._present = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(self._table)) + "]")

    def __call__(self, text: str) -> str:
        return text.translate(self._table) if self._present.search(text) else text


class Folding:
    """The folding rules (module docstring) with one set of extra kanji pairs, made ready once.

    The one-character replacements (kanji pairs, ``ヶ``/``ヵ``, for addresses the dashes and
    ``ノ``) are one ``str.translate`` right after NFKC. That gives the key that the steps one
    after the other give: no character comes to or from them through upper-casing or space
    removal, and ``ー`` (turned into a dash only after a digit) is not among them.
    """

    __slots__ = ("_address_marks", "_name_marks")

    def __init__(self, variants: Mapping[str, str] = NO_VARIANTS) -> None:
        self._name_marks = _Translation(variants, _KANA)
        self._address_marks = _Translation(variants, {**_KANA, **_ADDRESS_MARKS})

    def name(self, text: str) -> str:
        """The comparison key of a name."""
        key = "".join(_common(text, self._name_marks).split())  # split(): exactly str.isspace
        return key.replace("・", "").replace("·", "")

    def address(self, text: str) -> str:
        """The comparison key of an address."""
        s = "".join(_common(text, self._address_marks).split())
        if "ー" in s:
            s = _LONG_MARK_AFTER_DIGIT.sub("-", s)
        if _ANY_KANJI_NUMERAL.search(s):
            s = _KANJI_BEFORE_UNIT.sub(_arabic, s)
            s = _KANJI_IN_CHAIN.sub(_arabic, s)
        s = _NUMBER_UNIT.sub("-", s)
        if "号" in s:
            s = _NUMBER_GOU.sub("", s)
        if "--" in s:
            s = _DASH_RUN.sub("-", s)
        return s.rstrip("-")

    def card_name(self, text: str, substitutes: str = "") -> CardFact:
        return CardFact(text, substitutes, self, address=False)

    def card_address(self, text: str, substitutes: str = "") -> CardFact:
        return CardFact(text, substitutes, self, address=True)


def _common(text: str, marks: _Translation) -> str:
    return marks(unicodedata.normalize("NFKC", _VARIATION_SELECTORS.sub("", text))).upper()


def _arabic(match: re.Match[str]) -> str:
    return str(kanji_number(match[1]))


_PLAIN = Folding()


def folding(variants: Mapping[str, str] = NO_VARIANTS) -> Folding:
    """The :class:`Folding` for these extra pairs (made once per distinct table)."""
    return _folding_for(frozenset(variants.items())) if variants else _PLAIN


@functools.lru_cache(maxsize=16)
def _folding_for(pairs: frozenset[tuple[str, str]]) -> Folding:
    return Folding(dict(pairs))


def fold_name(text: str, variants: Mapping[str, str] = NO_VARIANTS) -> str:
    """The comparison key of a name (rules in the module docstring)."""
    return folding(variants).name(text)


def fold_address(text: str, variants: Mapping[str, str] = NO_VARIANTS) -> str:
    """The comparison key of an address (rules in the module docstring)."""
    return folding(variants).address(text)


def kanji_number(text: str) -> int:
    """``二十三`` → 23, ``一〇`` → 10, ``百五`` → 105 (for 丁目・番地 numbers)."""
    if not any(unit in text for unit in "十百千"):
        return int("".join(str(_KANJI_DIGITS.index(ch)) for ch in text))
    total, digit = 0, None
    for ch in text:
        if ch in _KANJI_DIGITS:
            digit = _KANJI_DIGITS.index(ch)
        else:
            total += (1 if digit is None else digit) * {"十": 10, "百": 100, "千": 1000}[ch]
            digit = None
    return total + (digit or 0)


def _with_substitutes(text: str, substitutes: str) -> tuple[str, frozenset[str]]:
    """The card's text with flagged characters replaced by :data:`SUBSTITUTE`, and the flagged ones."""
    if "1" not in substitutes[:len(text)]:
        return text, frozenset()
    flagged = {i for i, flag in enumerate(substitutes[:len(text)]) if flag == "1"}
    marked = "".join(SUBSTITUTE if i in flagged else ch for i, ch in enumerate(text))
    return marked, frozenset(text[i] for i in flagged)


@functools.lru_cache(maxsize=4096)
def card_can_hold(ch: str) -> bool:
    """Whether the card could have written ``ch`` itself: JIS X 0208 (levels 1-2) or 0212 (補助漢字).

    Python's ``euc_jp`` codec covers exactly JIS X 0201, 0208 and 0212.
    """
    try:
        ch.encode("euc_jp")
    except UnicodeEncodeError:
        return False
    return True


def _matches(key: str, typed: str, allowed: frozenset[str]) -> bool:
    """``key`` with substitutes against ``typed``: a substitute position takes a character the card
    could not hold (the real one it stands for), or the card's own substitute character."""
    return len(key) == len(typed) and all(
        k == t or (k == SUBSTITUTE and (t in allowed or not card_can_hold(t))) for k, t in zip(key, typed))


def _outcome(card_key: str, card_plain: str, typed_key: str, allowed: frozenset[str]) -> Outcome:
    if card_plain == typed_key:
        return _MATCH
    if allowed:
        return _MATCH_SUBSTITUTE if _matches(card_key, typed_key, allowed) else _MISMATCH_SUBSTITUTE
    return _MISMATCH


class CardFact:
    """氏名 or 住所 as the card writes it, with its 代替文字 flags, ready to be compared with what the
    applicant typed in any number of places: the card's side is folded once, on first need."""

    __slots__ = ("_address", "_folding", "_keys", "_substitutes", "text")

    def __init__(self, text: str, substitutes: str, folding: Folding, *, address: bool) -> None:
        self.text, self._substitutes, self._folding, self._address = text, substitutes, folding, address
        self._keys: tuple[str, str, frozenset[str], str] | None = None

    def compare(self, typed: str | None) -> Outcome:
        if not typed or not typed.strip():
            return _NOT_COMPARED
        if typed == self.text:  # the same text folds to the same key (and the same prefecture)
            return _MATCH
        card_key, card_plain, allowed, card_pref = self._keys or self._fold()
        fold: Callable[[str], str] = self._folding.address if self._address else self._folding.name
        typed_key = fold(typed)
        if self._address:
            typed_pref = _prefecture(typed_key)
            if card_pref and not typed_pref:  # the applicant left the prefecture out
                card_key, card_plain = card_key[len(card_pref):], card_plain[len(card_pref):]
            elif typed_pref and not card_pref:
                typed_key = typed_key[len(typed_pref):]
        return _outcome(card_key, card_plain, typed_key, allowed)

    def _fold(self) -> tuple[str, str, frozenset[str], str]:
        fold = self._folding.address if self._address else self._folding.name
        marked, flagged = _with_substitutes(self.text, self._substitutes)
        plain = fold(self.text)
        key = fold(marked) if flagged else plain  # nothing flagged: the marked text is the text
        allowed = frozenset(self._folding.name(ch) for ch in flagged)
        self._keys = (key, plain, allowed, _prefecture(plain) if self._address else "")
        return self._keys


def compare_name(card: str, substitutes: str, typed: str | None,
                 variants: Mapping[str, str] = NO_VARIANTS) -> Outcome:
    return folding(variants).card_name(card, substitutes).compare(typed)


def compare_address(card: str, substitutes: str, typed: str | None,
                    variants: Mapping[str, str] = NO_VARIANTS) -> Outcome:
    return folding(variants).card_address(card, substitutes).compare(typed)


def _prefecture(key: str) -> str:
    found = _PREFECTURE.match(key)
    return found[0] if found else ""


_SEX_WORDS = {"男": "1", "男性": "1", "1": "1", "M": "1", "MALE": "1",
              "女": "2", "女性": "2", "2": "2", "F": "2", "FEMALE": "2"}


def sex_code(typed: str) -> str | None:
    """``1``/``2`` for what a form writes for 性別, None when it is not recognised."""
    return _SEX_WORDS.get(unicodedata.normalize("NFKC", typed).strip().upper())


def compare_sex(card: str, typed: str | None) -> Outcome:
    if not typed or not typed.strip() or card not in ("1", "2"):
        return _NOT_COMPARED
    return _MATCH if sex_code(typed) == card else _MISMATCH


def compare_birth(card: JapaneseDate, typed: str | None) -> Outcome:
    if not typed or not typed.strip() or card.year is None:  # unknown on the card: nothing to compare
        return _NOT_COMPARED
    written = parse_date(typed)
    if card.value is not None:
        return _MATCH if written.value == card.value else _MISMATCH
    # Partial, or not a calendar date (the register allows 2月30日): compare what the card knows.
    known = tuple(part for part in (card.year, card.month, card.day) if part is not None)
    return _MATCH if (written.year, written.month, written.day)[:len(known)] == known else _MISMATCH


__all__ = ["KANJI_VARIANTS", "PREFECTURES", "CardFact", "Folding", "Outcome", "compare_address", "compare_birth",
           "compare_name", "compare_sex", "fold_address", "fold_name", "folding", "kanji_number", "sex_code"]
