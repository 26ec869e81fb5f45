"""National identifiers for synthetic subjects, built and checked with python-stdnum.

- Citizen ID number (居民身份证号码, GB 11643): address code + birth date + sequence
  (odd male, even female) + ISO 7064 MOD 11-2 check character.
- Unified social credit code (统一社会信用代码, GB 32100): authority + type + division +
  organisation code (GB 11714, own check character) + mod-31 check character.
"""

from __future__ import annotations

import datetime as dt

from stdnum.cn import ric, uscc

# GB 11714 organisation-code alphabet and weights for its check character.
_ORG_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
# GB 32100 excludes I, O, Z, S, V from the code alphabet.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def citizen_id(division_code: str, birth_date: dt.date, sequence: int) -> str:
    """An 18-digit citizen ID: ``sequence`` 1–999, odd for men and even for women."""
    if not 0 < sequence < 1000:
        raise ValueError(f"sequence must be 1..999, got {sequence}")
    body = f"{division_code}{birth_date:%Y%m%d}{sequence:03d}"
    return body + ric.calc_check_digit(body + "0")


def is_valid_citizen_id(number: str) -> bool:
    return ric.is_valid(number)


def gender_of_citizen_id(number: str) -> str:
    """GB/T 2261.1 gender code from the sequence digit: 1 male (odd), 2 female (even)."""
    return "1" if int(number[16]) % 2 else "2"


def to_legacy_15(number: str) -> str:
    """The 15-digit form issued before 1999: two-digit year, no check character."""
    return number[:6] + number[8:17]


def upgrade_legacy_15(number: str) -> str:
    """Upgrade a 15-digit ID to 18 digits (GB 11643: century 19, new check character)."""
    if len(number) != 15 or not number.isdigit():
        raise ValueError(f"not a 15-digit citizen ID: {number!r}")
    body = number[:6] + "19" + number[6:]
    return body + ric.calc_check_digit(body + "0")


def wrong_check_character(number: str) -> str:
    """The same number with a check character that does not match (an injected error)."""
    right = number[-1]
    # Digits and X are valid check characters of both standards; letters only of GB 32100.
    alphabet = "0123456789X" if right in "0123456789X" else USCC_ALPHABET
    wrong = alphabet[(alphabet.index(right) + 1) % len(alphabet)]
    return number[:-1] + wrong


def organisation_code(serial: int) -> str:
    """A 9-character GB 11714 organisation code: 8 digits + its own check character."""
    body = f"{serial % 100_000_000:08d}"
    total = sum(_ORG_ALPHABET.index(c) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return body + ("X" if check == 10 else "0" if check == 11 else str(check))


def is_valid_organisation_code(code: str) -> bool:
    body, check = code[:8], code[8]
    return organisation_code(int(body)) == body + check if body.isdigit() else False


def credit_code(authority: str, kind: str, division_code: str, serial: int) -> str:
    """An 18-character unified social credit code (GB 32100).

    ``authority``: 1 institution staffing (编办), 5 civil affairs (民政), 9 market regulation
    (市场监管), Y other; ``kind``: the organisation type within that authority.
    """
    body = f"{authority}{kind}{division_code}{organisation_code(serial)}"
    return body + uscc.calc_check_digit(body + "0")


def is_valid_credit_code(code: str) -> bool:
    """GB 32100 check character and the embedded GB 11714 organisation-code check."""
    return uscc.is_valid(code) and is_valid_organisation_code(code[8:17])
