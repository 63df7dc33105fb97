import random
import unicodedata
import uuid

import pytest
from stdnum import luhn

from skolflow.identity import (
    IdentityKind,
    InvalidIdentity,
    NorwegianKind,
    Rule,
    mask,
    mask_text,
    parse_norwegian_identity,
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


# --- Issue 10: every written form masked, nothing else touched -------------------------------------------------------
#
# Swedish numbers are Skatteverket's open test personnummer and test samordningsnummer (dataportal.se,
# "Testpersonnummer" and "Testsamordningsnummer", as mirrored in ActiveLogin.Identity's TestData); Norwegian ones are
# python-stdnum's own test vectors (tests/test_no_fodselsnummer.doctest), Skatteetaten's validator test file for the
# 2032 rule (folkeregisteret-api-dokumentasjon, foedselsnummer.csv) and NAV's month+40 examples
# (navikt/fnrvalidator#116).
TEST_PERSONNUMMER = "201701012393"
FULLWIDTH, ARABIC_INDIC, DEVANAGARI, PERSIAN = 0xFF10, 0x0660, 0x0966, 0x06F0  # each script's digit zero


def in_script(text: str, zero: int) -> str:
    """``text`` with its ASCII digits written in another script's decimal digits."""
    return text.translate({ord(digit): zero + int(digit) for digit in "0123456789"})


# (written form, what mask/mask_text make of it, the digits that must be gone)
MASKED_FORMS = [
    ("20170101 2393", "20170101-****", "2393"),
    ("170101 2393", "170101-****", "2393"),
    ("20170101\u20132393", "20170101-****", "2393"),  # en dash
    ("20170101 - 2393", "20170101-****", "2393"),
    ("170101%2B2393", "170101-****", "2393"),  # URL-encoded '+'
    ("000101-T220", "000101-****", "220"),  # interimistiskt nummer
    ("19000101-T220", "19000101-****", "220"),
    ("20000101TF12", "20000101****", "TF12"),  # DNP's tillfälligt personnummer
    ("130972 48022", "130972*****", "48022"),
    (in_script("20170101-2393", FULLWIDTH), "20170101-****", in_script("2393", FULLWIDTH)),
    (in_script("201701012393", ARABIC_INDIC), "20170101-****", in_script("2393", ARABIC_INDIC)),
    (in_script("170101-2393", DEVANAGARI), "170101-****", in_script("2393", DEVANAGARI)),
    (in_script("13097248022", PERSIAN), "130972*****", in_script("48022", PERSIAN)),
    (in_script("1701", FULLWIDTH) + "012393", "170101-****", "2393"),  # scripts mixed
]
# Forms the old masking already handled: they must stay masked.
STILL_MASKED = [
    ("13097248022", "130972*****", "48022"),
    ("41018036736", "410180*****", "36736"),  # D-nummer
    ("15507600333", "155076*****", "00333"),  # month + 40: H-nummer
    ("03851598730", "038515*****", "98730"),  # month + 80: Skatteetaten's synthetic number
    ("170101+2393", "170101-****", "2393"),
]
KEPT = [
    "70293815-5351-42c1-\u2026",  # Udir's ApiError guid, cut off by a truncated message
    "70293815-5351-42c1-9d4e-2b1a5c7f0e93",
    "2026-12-02T18:15:00+01:00",
    "2026-12-02 18:15",
    "2026-12-02T18:15:00.123Z",
    "20261202T181500Z",
    "564HBS-V",  # Udir kandidatnummer
    "212000-0142",  # organisationsnummer: month field >= 20
    "2120000142",
    "5560360793",
    "165560360793",
    "875561162",  # Norwegian organisasjonsnummer
]


IN_CONTEXT = [
    ("pnr_201701012393", "pnr_20170101-****", "2393"),  # '_' is no boundary
    ("elever%2F201701012393%2Fmeriter", "elever%2F20170101-****%2Fmeriter", "2393"),  # nor is an escape
    ("Fel:\\n201701012393", "Fel:\\n20170101-****", "2393"),
    ("\\u00a0201701012393", "\\u00a020170101-****", "2393"),
]


@pytest.mark.parametrize(("form", "masked", "secret"), MASKED_FORMS + STILL_MASKED + IN_CONTEXT)
def test_mask_text_masks_every_written_form_and_leaves_no_serial(form: str, masked: str, secret: str) -> None:
    shown = mask_text(f"Fel för {form}: saknas i registret")
    assert shown == f"Fel för {masked}: saknas i registret"
    assert secret not in shown and "".join(str(unicodedata.decimal(c, c)) for c in secret) not in shown


@pytest.mark.parametrize(("form", "masked", "secret"), MASKED_FORMS + STILL_MASKED)
def test_mask_agrees_with_mask_text_on_every_form(form: str, masked: str, secret: str) -> None:
    assert mask(form) == mask_text(form) == masked


def test_mask_text_leaves_guids_timestamps_kandidatnummer_and_organisation_numbers_alone() -> None:
    for kept in KEPT:
        assert mask_text(f"ref {kept} (se loggen)") == f"ref {kept} (se loggen)"
        assert mask_text(f"Udir svarte: {kept}") == f"Udir svarte: {kept}"


def test_mask_text_never_touches_a_uuid_whole_or_cut_off() -> None:
    rng = random.Random(20261202)
    for _ in range(10_000):
        guid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        head = guid[:rng.randrange(14, len(guid))]  # its end cut after the second hyphen or later
        tail = guid[rng.randrange(0, 18):]  # its start cut, two hyphens or more before the last group
        short_tail = guid[rng.randrange(0, 23):]  # its start cut anywhere before the last group, the cut shown
        for text in (guid, f"ApiError {guid}.", guid.upper(), f"{head}\u2026", f"Udir svarte: {head}",
                     f"{tail} (forts.)", f"\u2026{short_tail}", f"...{short_tail}"):
            assert mask_text(text) == text


# --- Swedish numbers: one separator policy, samordningsnummer with unknown dates, serial 000, interim numbers ---------

def swedish(birth: str, serial: str) -> str:
    """A 12-digit number for YYYYMMDD and a serial, with stdnum's Luhn check digit."""
    return birth + serial + luhn.calc_check_digit(birth[2:] + serial)


@pytest.mark.parametrize(("value", "number"), [
    ("191500722390", "191500722390"),  # month 00: birth month unknown
    ("191500882392", "191500882392"),
    ("191711602399", "191711602399"),  # day 60: birth day unknown
    ("193100602394", "193100602394"),  # both
    ("19150072-2390", "191500722390"),
    ("150072+2390", "191500722390"),
])
def test_samordningsnummer_with_unknown_birth_month_or_day_is_valid(value: str, number: str) -> None:
    # Skatteverket's test samordningsnummer.
    identity = parse_swedish_identity(value)
    assert identity.kind is IdentityKind.SAMORDNINGSNUMMER and identity.number == number


@pytest.mark.parametrize("value", [swedish("19150291", "239"), swedish("19150092", "239"), swedish("19150231", "239"),
                                   swedish("20170100", "239"), swedish("20170001", "239")])
def test_a_birth_date_past_the_month_end_stays_invalid(value: str) -> None:
    # 0231 + 60 = 91 is no day in February; month 00 takes days up to 31 + 60 only; a personnummer needs a real date.
    with pytest.raises(InvalidIdentity, match="date of birth") as info:
        parse_swedish_identity(value)
    assert info.value.rule is Rule.DATE


@pytest.mark.parametrize("value", [swedish("20170101", "000"), swedish("19150072", "000")])
def test_serial_000_is_never_issued(value: str) -> None:
    with pytest.raises(InvalidIdentity, match="000") as info:
        parse_swedish_identity(value)
    assert info.value.rule is Rule.SERIAL and value not in str(info.value)


@pytest.mark.parametrize("value", ["000101-T220", "19000101-T220", "000101T220", "20000101TF12", "20000101-tf12"])
def test_interim_numbers_are_recognised_and_refused(value: str) -> None:
    with pytest.raises(InvalidIdentity, match="interimistiskt nummer") as info:
        parse_swedish_identity(value)
    assert info.value.rule is Rule.INTERIM and value not in str(info.value)


@pytest.mark.parametrize("value", ["201701012393", "20170101-2393", "20170101 2393", "1701012393", "170101-2393",
                                   "170101 2393", " 20170101-2393 "])
def test_the_written_forms_the_policy_accepts(value: str) -> None:
    assert parse_swedish_identity(value).number == TEST_PERSONNUMMER


def test_plus_in_ten_digits_means_a_hundred_years_or_older() -> None:
    assert parse_swedish_identity("901221+9805").number == "189012219805"  # Skatteverket's test number for 1890-12-21
    assert parse_swedish_identity("170101+2393").number == "191701012393"


@pytest.mark.parametrize("value", [
    "20170101+2393",  # '+' with the century written out: contradictory or redundant
    "2017-01-01-2393",  # a separator outside the standard place
    "20170101--2393",
    "20170101 - 2393",
    "20170101\u20132393",  # en dash
    "170101-23 93",
    in_script(TEST_PERSONNUMMER, FULLWIDTH),
    "2017010123931",
])
def test_the_written_forms_the_policy_refuses(value: str) -> None:
    with pytest.raises(InvalidIdentity) as info:
        parse_swedish_identity(value)
    assert info.value.rule is Rule.FORMAT


@pytest.mark.parametrize("value", ["20170101-2393", "1701012393", "170101-2393", "20170101 2393"])
def test_the_wire_form_is_twelve_digits_without_separators(value: str) -> None:
    assert parse_swedish_identity(TEST_PERSONNUMMER, wire=True).number == TEST_PERSONNUMMER
    with pytest.raises(InvalidIdentity, match="12 digits without separators") as info:
        parse_swedish_identity(value, wire=True)
    assert info.value.rule is Rule.FORMAT


# --- Norwegian numbers: H-nummer and synthetic numbers refused by name, the control digit rule from 2032 -------------

@pytest.mark.parametrize("value", ["10048745526", "151086 95088", "23114048690", "26111593816", "20036914700",
                                   "29020073150", "41018036736"])
def test_fodselsnummer_and_d_nummer_stay_valid(value: str) -> None:
    assert validate_norwegian_fodselsnummer(value) == value.replace(" ", "")


@pytest.mark.parametrize(("value", "kind"), [("30108299939", NorwegianKind.FODSELSNUMMER),
                                             ("55102499947", NorwegianKind.D_NUMMER)])
def test_numbers_issued_from_2032_have_a_first_control_digit_of_several_values(value: str, kind: NorwegianKind) -> None:
    # Skatteetaten's examples of a "reelt 2032-nummer" and a "2032-D-nummer".
    assert validate_norwegian_fodselsnummer(value) == value
    assert parse_norwegian_identity(value).kind is kind


@pytest.mark.parametrize(("value", "rule"), [("20036914712", Rule.CHECK_DIGIT), ("29020105729", Rule.DATE),
                                             ("30108299949", Rule.CHECK_DIGIT), ("301082999", Rule.FORMAT)])
def test_norwegian_numbers_that_stay_invalid(value: str, rule: Rule) -> None:
    with pytest.raises(InvalidIdentity) as info:
        validate_norwegian_fodselsnummer(value)
    assert info.value.rule is rule


@pytest.mark.parametrize(("value", "kind"), [
    ("15507600333", NorwegianKind.H_NUMMER),  # 15.10.1976, month + 40
    ("29422059278", NorwegianKind.H_NUMMER),
    ("03851598730", NorwegianKind.SYNTETISK),  # Skatteetaten: "syntetisk 1964-nummer"
    ("30908299902", NorwegianKind.SYNTETISK),  # "syntetisk 2032-nummer"
    ("41819077906", NorwegianKind.SYNTETISK),  # "syntetisk 2032-D-nummer"
    ("41819077302", NorwegianKind.SYNTETISK),  # "syntetisk 1964-D-nummer"
])
def test_h_nummer_and_synthetic_numbers_are_named_and_are_no_fodselsnummer(value: str, kind: NorwegianKind) -> None:
    assert parse_norwegian_identity(value).kind is kind
    with pytest.raises(InvalidIdentity, match=str(kind)) as info:
        validate_norwegian_fodselsnummer(value)
    assert info.value.rule is Rule.KIND and value not in str(info.value)
