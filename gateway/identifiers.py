"""Check digits and shapes of the identifiers forms carry (``spec/identifiers.md``).

Every check returns a plain bool so callers decide how to report it; none raises on bad input.
Digits are ASCII only: ``str.isdigit`` also accepts full-width and other Unicode digits, which
core systems do not, so every pattern here is ``[0-9]``.

Rules the public record does not fix (宛名番号 check digit, 保険者番号 check digit) are off by
default and switched on by the caller's configuration.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable

_DIGITS = re.compile(r"[0-9]+")
_CHASSIS = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)*")

MY_NUMBER_WEIGHTS = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
MUNICIPALITY_WEIGHTS = (6, 5, 4, 3, 2)


def _digits(value: object, length: int | None = None) -> bool:
    if not isinstance(value, str) or not _DIGITS.fullmatch(value):
        return False
    return length is None or len(value) == length


# --------------------------------------------------------------------------- 地方公共団体コード


def municipality_check_digit(first5: str) -> int:
    """Check digit of a 地方公共団体コード from its first five digits."""
    if not _digits(first5, 5):
        raise ValueError("団体コードの先頭5桁は数字5桁です")
    total = sum(int(d) * w for d, w in zip(first5, MUNICIPALITY_WEIGHTS))
    return (11 - total % 11) % 10


def check_municipality_code(code: str) -> bool:
    """6-digit 地方公共団体コード with its check digit (e.g. ``131016`` 千代田区, ``130001`` 東京都)."""
    return _digits(code, 6) and municipality_check_digit(code[:5]) == int(code[5])


# --------------------------------------------------------------------------- 個人番号


def my_number_check_digit(first11: str) -> int:
    """Check digit of a 個人番号 from its first eleven digits (weights 6,5,4,3,2,7,6,5,4,3,2)."""
    if not _digits(first11, 11):
        raise ValueError("個人番号の先頭11桁は数字11桁です")
    return _my_number_check_digit(first11)


_WEIGHED_ZEROS = ord("0") * sum(MY_NUMBER_WEIGHTS)


def _my_number_check_digit(digits: str) -> int:
    # Every package checks several numbers: the ASCII codes of the (checked) digits are weighed
    # in C, less what eleven weighed "0"s add, instead of int() per digit (a third of the cost).
    # As with zip, the weights cover the first eleven digits; a twelfth is not weighed.
    weighed = sum(map(operator.mul, digits.encode("ascii"), MY_NUMBER_WEIGHTS)) - _WEIGHED_ZEROS
    remainder = weighed % 11
    return 0 if remainder <= 1 else 11 - remainder


def check_my_number(number: str) -> bool:
    """12-digit 個人番号 whose last digit is its check digit."""
    return _digits(number, 12) and _my_number_check_digit(number) == int(number[11])


def make_my_number(first11: str) -> str:
    """A check-digit-valid 個人番号 from eleven digits: for fictitious samples and tests only."""
    return first11 + str(my_number_check_digit(first11))


def mask_my_number(number: str) -> str:
    """Mask all but the last four characters (``********1234``) for consoles and logs."""
    if not isinstance(number, str):
        return "****"
    if len(number) <= 4:
        return "*" * len(number)
    return "*" * (len(number) - 4) + number[-4:]


# --------------------------------------------------------------------------- 法人番号


def check_corporate_number(number: str) -> bool:
    """13-digit 法人番号: the **first** digit is the check digit over the other twelve."""
    if not _digits(number, 13):
        return False
    body = number[1:]
    # weights 1,2,1,2,... counted from the rightmost digit of the body
    total = sum(int(d) * (2 if i % 2 else 1) for i, d in enumerate(reversed(body)))
    return 9 - total % 9 == int(number[0])


# --------------------------------------------------------------------------- 宛名番号


def check_atena_number(number: str, *, check_digit: bool) -> bool:
    """Municipal 宛名番号 (length varies by municipality).

    With ``check_digit`` the last digit must be the modulus-11 check digit with weights
    2,3,4,5,6,7,2,... from the right. The standard fixes remainder 0 → 0; remainder 1 (which
    would give 10) is not stated and is taken as 0, the usual convention. Legacy numbers may
    carry no check digit, which is why the caller turns it on only where configured.
    """
    if not _digits(number) or (check_digit and len(number) < 2):
        return False
    if not check_digit:
        return True
    body = number[:-1]
    total = sum(int(d) * (2 + i % 6) for i, d in enumerate(reversed(body)))
    remainder = total % 11
    expected = 0 if remainder <= 1 else 11 - remainder
    return expected == int(number[-1])


# --------------------------------------------------------------------------- 介護保険


def insurer_check_digit_mod10_21(first5: str) -> int:
    """The medical 保険者番号 method (weights 2,1 from the right, digit sums, mod 10).

    Not published for 介護 保険者番号; it checks out on known numbers (131011, 131045), which is
    why it is offered as an opt-in rule rather than the default.
    """
    total = 0
    for i, d in enumerate(reversed(first5)):
        product = int(d) * (2 if i % 2 == 0 else 1)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


INSURER_CHECK_DIGIT_RULES: dict[str, Callable[[str], int]] = {
    "mod10-21": insurer_check_digit_mod10_21,
}


def check_insurer_number(number: str, *, check_digit_rule: str | Callable[[str], int] | None = None) -> bool:
    """6-digit 介護保険 保険者番号; the check digit only when a rule is configured.

    :param check_digit_rule: ``None`` (length only, the default), a name from
        :data:`INSURER_CHECK_DIGIT_RULES` (``"mod10-21"``) or a function of the first five
        digits returning the check digit.
    """
    if not _digits(number, 6):
        return False
    if check_digit_rule is None:
        return True
    rule = INSURER_CHECK_DIGIT_RULES[check_digit_rule] if isinstance(check_digit_rule, str) else check_digit_rule
    return rule(number[:5]) == int(number[5])


def check_insured_number(number: str) -> bool:
    """10-digit 介護保険 被保険者番号 (no public check-digit rule)."""
    return _digits(number, 10)


def check_office_number(number: str) -> bool:
    """10-digit 介護 事業所番号."""
    return _digits(number, 10)


# --------------------------------------------------------------------------- others


def check_postal_code(code: str) -> bool:
    """郵便番号: 7 half-width digits, no hyphen."""
    return _digits(code, 7)


def check_arrival_number(number: str) -> bool:
    """到達番号: 16 to 18 digits (uniqueness is the store's job)."""
    return _digits(number) and 16 <= len(number) <= 18


def check_chassis_number(number: str) -> bool:
    """車台番号, strictly: upper-case ASCII letters and digits in groups joined by single hyphens.

    Strict because an error cannot be corrected after filing: lower case, full-width
    characters, spaces and leading, trailing or doubled hyphens are all refused.
    """
    return isinstance(number, str) and 1 <= len(number) <= 30 and bool(_CHASSIS.fullmatch(number))
