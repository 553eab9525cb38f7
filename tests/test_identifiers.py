"""Check digits and shapes of identifiers (spec/identifiers.md), with the spec's own examples."""

from __future__ import annotations

import random

import pytest

from gateway.identifiers import (
    check_arrival_number,
    check_atena_number,
    check_chassis_number,
    check_corporate_number,
    check_insured_number,
    check_insurer_number,
    check_municipality_code,
    check_my_number,
    check_office_number,
    check_postal_code,
    make_my_number,
    mask_my_number,
    municipality_check_digit,
    my_number_check_digit,
)


# --------------------------------------------------------------------------- 地方公共団体コード


@pytest.mark.parametrize("code", ["131016", "011002", "271004", "130001", "131041", "182079", "472018"])
def test_municipality_codes_from_the_spec_are_valid(code: str) -> None:
    assert check_municipality_code(code)


@pytest.mark.parametrize("code", ["131017", "13101", "1310160", "13101６", "１３１０１６", "", "abcdef"])
def test_municipality_code_wrong_digit_length_or_non_ascii_is_refused(code: str) -> None:
    assert not check_municipality_code(code)


def test_municipality_check_digit_maps_remainders_0_and_1() -> None:
    # Σ mod 11 = 0 → (11 - 0) mod 10 = 1; Σ mod 11 = 1 → 10 mod 10 = 0
    assert municipality_check_digit("00000") == 1
    assert municipality_check_digit("00006") == 0  # 6*2 = 12 ≡ 1 (mod 11)
    assert municipality_check_digit("00001") == 9  # Σ = 2 → 11 - 2
    with pytest.raises(ValueError):
        municipality_check_digit("1310")


# --------------------------------------------------------------------------- 個人番号


def test_my_number_known_vector() -> None:
    assert check_my_number("621498320257")


@pytest.mark.parametrize("wrong", ["621498320250", "621498320251", "621498320259"])
def test_my_number_wrong_check_digit(wrong: str) -> None:
    assert not check_my_number(wrong)


@pytest.mark.parametrize("bad", ["62149832025", "6214983202570", "62149832025a", "６２１４９８３２０２５７", None])
def test_my_number_shape(bad: object) -> None:
    assert not check_my_number(bad)  # type: ignore[arg-type]


def test_make_my_number_round_trips_and_every_other_check_digit_fails() -> None:
    number = make_my_number("12345678901")
    assert number == "123456789018" and check_my_number(number)
    for digit in "0123456789":
        if digit != number[-1]:
            assert not check_my_number(number[:11] + digit)


def test_my_number_check_digit_agrees_with_the_definition() -> None:
    """The arithmetic on ASCII codes gives the spec's Σ(digit × weight) mod 11 rule, digit for digit."""
    def by_definition(first11: str) -> int:
        remainder = sum(int(d) * w for d, w in zip(first11, (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2))) % 11
        return 0 if remainder <= 1 else 11 - remainder

    rng = random.Random(2026)
    samples = ["00000000000", "99999999999", *(f"{rng.randrange(10**11):011d}" for _ in range(20000))]
    samples += [f"{d}" * 11 for d in range(10)] + [f"{10 ** i:011d}" for i in range(11)]
    for first11 in samples:
        expected = by_definition(first11)
        assert my_number_check_digit(first11) == expected, first11
        assert check_my_number(first11 + str(expected)) and not check_my_number(first11 + str((expected + 1) % 10))


def test_my_number_remainder_0_and_1_give_check_digit_0() -> None:
    assert my_number_check_digit("00000000000") == 0  # Σ = 0
    assert my_number_check_digit("00000000006") == 0  # 6*2 = 12 ≡ 1 (mod 11)
    assert my_number_check_digit("00000000001") == 9  # Σ=2 → 11-2


def test_mask_keeps_only_the_last_four() -> None:
    assert mask_my_number("621498320257") == "********0257"
    assert mask_my_number("123") == "***"
    assert "6214" not in mask_my_number("621498320257")


# --------------------------------------------------------------------------- 法人番号


def test_corporate_number_vector_and_mutation() -> None:
    assert check_corporate_number("5835678256246")
    assert not check_corporate_number("4835678256246")
    assert not check_corporate_number("583567825624")


# --------------------------------------------------------------------------- 宛名番号


def test_atena_number_without_check_digit_accepts_legacy_numbers() -> None:
    assert check_atena_number("123456", check_digit=False)
    assert not check_atena_number("12345X", check_digit=False)
    assert not check_atena_number("", check_digit=False)


def test_atena_number_modulus_11_weights_2_to_7_from_the_right() -> None:
    # body 12345: 5*2+4*3+3*4+2*5+1*6 = 50 ≡ 6 → 11-6 = 5
    assert check_atena_number("123455", check_digit=True)
    assert not check_atena_number("123456", check_digit=True)
    # body 1234567 wraps the weights: 7*2+6*3+5*4+4*5+3*6+2*7+1*2 = 106 ≡ 7 → 4
    assert check_atena_number("12345674", check_digit=True)
    # remainder 0 → 0 (body 0000000 → Σ=0)
    assert check_atena_number("00000000", check_digit=True)


# --------------------------------------------------------------------------- 介護保険


def test_insurer_number_length_only_by_default() -> None:
    assert check_insurer_number("131012")
    assert not check_insurer_number("13101")
    assert not check_insurer_number("1310111")


def test_insurer_number_check_digit_when_configured() -> None:
    assert check_insurer_number("131011", check_digit_rule="mod10-21")
    assert check_insurer_number("131045", check_digit_rule="mod10-21")
    assert not check_insurer_number("131012", check_digit_rule="mod10-21")
    assert check_insurer_number("131012", check_digit_rule=lambda first5: 2)
    with pytest.raises(KeyError):
        check_insurer_number("131011", check_digit_rule="no-such-rule")


def test_insured_and_office_numbers_are_ten_digits() -> None:
    assert check_insured_number("0000012345") and check_office_number("1370000001")
    assert not check_insured_number("000012345") and not check_office_number("13700000012")
    assert not check_insured_number("00000１2345")


# --------------------------------------------------------------------------- others


def test_postal_code_is_seven_ascii_digits() -> None:
    assert check_postal_code("1000001")
    for bad in ("100-0001", "100001", "１０００００１", "10000010"):
        assert not check_postal_code(bad)


@pytest.mark.parametrize("number,ok", [("1" * 15, False), ("1" * 16, True), ("202611280000012345", True),
                                       ("1" * 19, False), ("20261128000001234a", False)])
def test_arrival_number_is_16_to_18_digits(number: str, ok: bool) -> None:
    assert check_arrival_number(number) is ok


@pytest.mark.parametrize("number", ["ZVW30-1234567", "JTDKN3DU0A0123456", "NHP10-1", "AB12"])
def test_chassis_number_accepts_upper_case_letters_digits_and_single_hyphens(number: str) -> None:
    assert check_chassis_number(number)


@pytest.mark.parametrize("number", ["zvw30-1234567", "ZVW30--1234567", "-ZVW30", "ZVW30-", "ZVW30 1234567",
                                    "ＺＶＷ３０-1234567", "ZVW30‐1234567", "", "A" * 31])
def test_chassis_number_is_strict(number: str) -> None:
    assert not check_chassis_number(number)
