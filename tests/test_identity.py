import pytest

from skolflow.identity import (
    IdentityKind,
    InvalidIdentity,
    mask,
    mask_text,
    parse_swedish_identity,
    validate_norwegian_fodselsnummer,
    validate_swedish_orgnr,
)


@pytest.mark.parametrize("value", ["19121212-1212", "191212121212", "121212-1212", " 19121212 1212 "])
def test_personnummer_forms_normalise_to_twelve_digits(value: str) -> None:
    identity = parse_swedish_identity(value)
    assert identity.number == "191212121212" or identity.number == "201212121212"
    assert identity.kind is IdentityKind.PERSONNUMMER


def test_ten_digits_with_plus_means_a_hundred_years_older() -> None:
    assert parse_swedish_identity("121212+1212").number == "191212121212"


def test_samordningsnummer_day_plus_sixty_is_valid() -> None:
    # 1970-10-03 + 60 days in the day field: 701063-2391 is the Tax Agency's example.
    identity = parse_swedish_identity("701063-2391")
    assert identity.kind is IdentityKind.SAMORDNINGSNUMMER
    assert identity.number == "197010632391"


@pytest.mark.parametrize("value, reason", [
    ("19121212-1213", "check digit"),
    ("701063-2392", "check digit"),
    ("19121312-1212", "date of birth"),
    ("701093-2391", "date of birth"),  # day 93 - 60 = 33
    ("1912121212", "check digit"),
    ("abc", "10 or 12 digits"),
])
def test_invalid_numbers_are_refused_with_the_rule_and_masked(value: str, reason: str) -> None:
    with pytest.raises(InvalidIdentity) as info:
        parse_swedish_identity(value)
    assert reason in str(info.value)
    digits = value.replace("-", "")
    if digits.isdigit():
        assert digits[-4:] not in str(info.value).replace(digits[:-4], "")


def test_mask_keeps_the_date_and_hides_the_rest() -> None:
    assert mask("20150916-1234") == "20150916-****"
    assert mask("201509161234") == "20150916-****"
    assert mask("150916-1234") == "150916-****"
    assert mask("01018036736") == "010180*****"
    assert mask("not-a-number") == "********"


def test_mask_text_masks_every_number_in_a_message() -> None:
    text = mask_text("Fel: 201509161234 saknas; se även 20150916-1242 och fnr 01018036736.")
    assert "1234" not in text and "1242" not in text and "36736" not in text
    assert "20150916-****" in text and "010180*****" in text


def test_organisation_numbers_use_stdnum() -> None:
    assert validate_swedish_orgnr("2120000142") == "212000-0142"
    with pytest.raises(InvalidIdentity):
        validate_swedish_orgnr("212000-0143")


def test_norwegian_d_number_is_accepted() -> None:
    assert validate_norwegian_fodselsnummer("41018036736") == "41018036736"
    with pytest.raises(InvalidIdentity):
        validate_norwegian_fodselsnummer("41018036737")
