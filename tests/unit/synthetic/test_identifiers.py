"""GB 11643 citizen IDs and GB 32100 credit codes, checked against published vectors."""

from __future__ import annotations

import datetime as dt

import pytest
from stdnum.cn import ric, uscc

from synthetic import identifiers as ids


def test_citizen_id_matches_published_example():
    # The example number in GB 11643-1999: 11010519491231002X (female, born 1949-12-31).
    assert ids.citizen_id("110105", dt.date(1949, 12, 31), 2) == "11010519491231002X"
    assert ids.gender_of_citizen_id("11010519491231002X") == "2"


def test_generated_citizen_ids_validate_with_stdnum():
    number = ids.citizen_id("420102", dt.date(1990, 5, 17), 13)
    assert ric.is_valid(number)
    assert ric.get_birth_date(number) == dt.date(1990, 5, 17)
    assert ids.gender_of_citizen_id(number) == "1"


def test_legacy_15_digit_upgrade_round_trip():
    # stdnum's own vector: 360426199101010071 <-> its 15-digit form.
    assert ids.to_legacy_15("360426199101010071") == "360426910101007"
    assert ids.upgrade_legacy_15("360426910101007") == "360426199101010071"
    with pytest.raises(ValueError):
        ids.upgrade_legacy_15("36042691010100X")


def test_wrong_check_character_is_detected():
    good = ids.citizen_id("420106", dt.date(1985, 7, 15), 332)
    bad = ids.wrong_check_character(good)
    assert bad[:-1] == good[:-1] and bad != good
    assert not ric.is_valid(bad)


def test_organisation_code_check_character():
    # Baidu's published code 91110000802100433B embeds organisation code 80210043-3.
    assert ids.organisation_code(80210043) == "802100433"
    assert ids.is_valid_organisation_code("802100433")
    assert not ids.is_valid_organisation_code("802100434")


def test_credit_code_matches_published_example():
    assert uscc.is_valid("91110000802100433B")
    assert ids.credit_code("9", "1", "110000", 80210043) == "91110000802100433B"
    assert ids.is_valid_credit_code("91110000802100433B")


def test_generated_credit_codes_validate_and_corruptions_do_not():
    code = ids.credit_code("5", "2", "420100", 1234567)
    assert code[0] == "5" and code[1] == "2" and code[2:8] == "420100"
    assert uscc.is_valid(code) and ids.is_valid_credit_code(code)
    assert not uscc.is_valid(ids.wrong_check_character(code))
