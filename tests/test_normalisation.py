"""What counts as "the same" name, address, sex and birth date (gateway/normalisation.py)."""

from __future__ import annotations

import pytest

from gateway.normalisation import (
    KANJI_VARIANTS,
    NO_VARIANTS,
    Folding,
    Outcome,
    card_can_hold,
    compare_address,
    compare_birth,
    compare_name,
    compare_sex,
    fold_address,
    fold_name,
    folding,
    kanji_number,
)
from gateway.wareki import parse_date


@pytest.mark.parametrize("typed", ["山田　太郎", "山田 太郎", "山田太郎", " 山田　太郎　", "山田\u3000\u3000太郎"])
def test_name_spaces_are_ignored(typed):
    assert compare_name("山田　太郎", "00000", typed) is Outcome.MATCH


def test_name_widths_kana_and_case():
    assert fold_name("ﾔﾏﾀﾞ ﾀﾛｳ") == fold_name("ヤマダ　タロウ") == "ヤマダタロウ"
    assert fold_name("Ｓｍｉｔｈ　Ｊｏｈｎ") == fold_name("SMITH JOHN") == "SMITHJOHN"
    assert fold_name("スミス・ジョン") == fold_name("スミス　ジョン")
    assert compare_name("やまだ　たろう", "", "ヤマダ　タロウ") is Outcome.MISMATCH  # hiragana ≠ katakana


@pytest.mark.parametrize(("card", "typed"), [("渡邊　一", "渡辺　一"), ("渡邉　一", "渡辺　一"), ("齋藤　二郎", "斎藤　二郎"),
                                             ("髙橋　三郎", "高橋　三郎"), ("澤田　四郎", "沢田　四郎"),
                                             ("吉田\U000e0100　五郎", "吉田　五郎")])  # an IVS selector
def test_old_and_variant_kanji_fold(card, typed):
    assert compare_name(card, "", typed) is Outcome.MATCH


def test_configured_variants_extend_the_table():
    assert compare_name("欅田　一", "", "﨔田　一") is Outcome.MISMATCH
    assert compare_name("欅田　一", "", "﨔田　一", {"﨔": "欅"}) is Outcome.MATCH
    assert all(len(old) == len(new) == 1 and old != new for old, new in KANJI_VARIANTS.items())


def test_different_names_differ():
    assert compare_name("山田　太郎", "00000", "山田　次郎") is Outcome.MISMATCH
    assert compare_name("山田　太郎", "00000", "") is Outcome.NOT_COMPARED
    assert compare_name("山田　太郎", "00000", None) is Outcome.NOT_COMPARED


def test_substitute_position_takes_a_character_the_card_cannot_hold():
    # The card holds 山崎 with position 1 flagged; the register's character was not in JIS X 0208/0212.
    assert not card_can_hold("\U0002123d") and card_can_hold("崎") and card_can_hold("鷗")  # 鷗: 補助漢字
    assert compare_name("山崎　次郎", "01000", "山\U0002123d次郎") is Outcome.MATCH_SUBSTITUTE
    assert compare_name("山崎　次郎", "01000", "山\ue001次郎") is Outcome.MATCH_SUBSTITUTE  # a private-use 外字
    assert compare_name("山崎　次郎", "01000", "山崎 次郎") is Outcome.MATCH
    assert compare_name("山崎　次郎", "01000", "山﨑次郎") is Outcome.MATCH  # 﨑 is in the variant table
    # A JIS character in the flagged place cannot be what the card stood in for.
    assert compare_name("山崎　次郎", "01000", "山下　次郎") is Outcome.MISMATCH_SUBSTITUTE
    # Elsewhere the flag does not help.
    assert compare_name("山崎　次郎", "01000", "山崎　次\U0002123d") is Outcome.MISMATCH_SUBSTITUTE
    assert compare_name("山崎　次郎", "01000", "山\U0002123d次郎郎") is Outcome.MISMATCH_SUBSTITUTE


@pytest.mark.parametrize("typed", [
    "東京都千代田区千代田１丁目１番１号",
    "東京都千代田区千代田1-1-1",
    "東京都千代田区千代田一丁目一番一号",
    "東京都千代田区千代田１－１－１",
    "東京都千代田区千代田1‐1‐1",
    "東京都千代田区千代田１ー１ー１",
    "東京都千代田区千代田1丁目1-1",
    "東京都千代田区千代田1丁目1番地1",
    "東京都千代田区千代田1の1の1",
    "千代田区千代田1-1-1",             # the prefecture left out
    "東京都　千代田区　千代田　１－１－１",
])
def test_address_notations(typed):
    assert compare_address("東京都千代田区千代田１丁目１番１号", "", typed) is Outcome.MATCH


def test_address_differences_that_remain():
    card = "東京都千代田区千代田１丁目１番１号"
    assert compare_address(card, "", "東京都千代田区千代田1-1-2") is Outcome.MISMATCH
    assert compare_address(card, "", "東京都千代田区千代田1-1-1 見本マンション101号室") is Outcome.MISMATCH
    assert compare_address("東京都府中市宮西町１丁目", "", "広島県府中市宮西町1") is Outcome.MISMATCH
    assert compare_address(card, "", "") is Outcome.NOT_COMPARED


def test_place_names_with_numerals_are_kept():
    assert fold_address("東京都千代田区一番町１０番地") == "東京都千代田区一番町10"
    assert fold_address("東京都千代田区四番町一丁目十番五号") == "東京都千代田区四番町1-10-5"
    assert fold_address("長野県長野市大字長野千二百三十四番地") == "長野県長野市大字長野1234"
    assert fold_address("東京都千代田区丸ノ内２丁目") == fold_address("東京都千代田区丸の内2")


def test_address_substitutes(pki):
    misaki = pki.resident("tanaka-misaki")  # the card holds 高麗橋 for 髙麗橋, position flagged
    assert compare_address(misaki.address, misaki.address_flags, "大阪市中央区髙麗橋2-1-22") is Outcome.MATCH
    assert compare_address(misaki.address, misaki.address_flags,
                           "大阪府大阪市中央区\U0002123d麗橋2-1-22") is Outcome.MATCH_SUBSTITUTE
    assert compare_address(misaki.address, misaki.address_flags,
                           "大阪府大阪市中央区高麗橋2-1-23") is Outcome.MISMATCH_SUBSTITUTE


@pytest.mark.parametrize(("text", "number"), [("一", 1), ("十", 10), ("二十三", 23), ("一〇", 10), ("百五", 105),
                                             ("千二百三十四", 1234), ("三百", 300)])
def test_kanji_numbers(text, number):
    assert kanji_number(text) == number


@pytest.mark.parametrize(("card", "typed", "outcome"), [
    ("1", "男", Outcome.MATCH), ("1", "男性", Outcome.MATCH), ("2", "女", Outcome.MATCH), ("2", "２", Outcome.MATCH),
    ("2", "F", Outcome.MATCH), ("1", "女", Outcome.MISMATCH), ("1", "その他", Outcome.MISMATCH),
    ("3", "男", Outcome.NOT_COMPARED), ("1", "", Outcome.NOT_COMPARED),
])
def test_sex(card, typed, outcome):
    assert compare_sex(card, typed) is outcome


@pytest.mark.parametrize(("card", "typed", "outcome"), [
    ("419900415", "平成2年4月15日", Outcome.MATCH),
    ("419900415", "1990-04-15", Outcome.MATCH),
    ("419900415", "１９９０年４月１５日", Outcome.MATCH),
    ("419900415", "H2.4.15", Outcome.MATCH),
    ("419900415", "1990-04-16", Outcome.MISMATCH),
    ("419900415", "平成2年4月", Outcome.MISMATCH),
    ("419900415", "不明", Outcome.MISMATCH),
    ("000000000", "1990-04-15", Outcome.NOT_COMPARED),    # unknown on the card
    ("319450200", "昭和20年2月10日", Outcome.MATCH),       # the card knows year and month only
    ("319450200", "1945-03-10", Outcome.MISMATCH),
    ("319450230", "昭和20年2月30日", Outcome.MATCH),       # not a calendar date, as the register allows
    ("319450230", "1945-02-28", Outcome.MISMATCH),
    ("419900415", "", Outcome.NOT_COMPARED),
])
def test_birth(card, typed, outcome):
    assert compare_birth(parse_date(card), typed) is outcome


@pytest.mark.parametrize(("typed", "key"), [
    ("1番地の2", "1-2"), ("12号室", "12号室"), ("3号", "3"), ("2丁目--3", "2-3"), ("1ー2ー3", "1-2-3"),
    ("一丁目五番地の三", "1-5-3"), ("霞ヶ関１－１", "霞ケ関1-1"),
])
def test_address_keys(typed, key):
    assert fold_address(typed) == key


def test_configured_pairs_go_through_the_later_steps():
    # A configured pair is applied first; what it gives is folded on like the typed text.
    assert fold_name("太朗", {"朗": "ヶ"}) == "太ケ"
    assert fold_address("丸丿内", {"丿": "ノ"}) == fold_address("丸の内") == "丸の内"
    assert fold_address("1〜2", {"〜": "－"}) == "1-2"
    assert fold_name("ヶ崎", {"ヶ": "が"}) == "が崎"
    assert compare_name("髙橋　一", "", "高橋　一", {"髙": "髙"}) is Outcome.MISMATCH  # the configuration wins


def test_one_folding_per_table_of_pairs():
    assert folding() is folding(NO_VARIANTS) is folding({})
    assert folding({"朗": "郎"}) is folding({"朗": "郎"}) is not folding({"朗": "良"})


def test_the_card_is_folded_once_however_often_it_is_compared(monkeypatch):
    folded: list[str] = []
    address = Folding.address
    monkeypatch.setattr(Folding, "address", lambda self, text: folded.append(text) or address(self, text))
    card = folding().card_address("東京都千代田区千代田１丁目１番１号")
    assert card.compare("東京都千代田区千代田１丁目１番１号") is Outcome.MATCH and folded == []  # the same text
    for typed in ("千代田区千代田1-1-1", "東京都千代田区千代田一丁目１－１", "東京都千代田区千代田1-1-2"):
        card.compare(typed)
    assert folded == ["東京都千代田区千代田１丁目１番１号", "千代田区千代田1-1-1", "東京都千代田区千代田一丁目１－１",
                      "東京都千代田区千代田1-1-2"]
