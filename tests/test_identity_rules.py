"""Identity numbers as Beda's, DNP's and Udir's rules apply them: skolflow.identity's one policy, in every system.

Swedish numbers are Skatteverket's open test personnummer and test samordningsnummer (dataportal.se, "Testpersonnummer"
and "Testsamordningsnummer", as mirrored in ActiveLogin.Identity's TestData); Norwegian ones are from Skatteetaten's
validator test file for the 2032 rule (folkeregisteret-api-dokumentasjon, foedselsnummer.csv) and NAV's month+40
examples (navikt/fnrvalidator#116).
"""

from __future__ import annotations

import pytest
from stdnum import luhn

from skolflow.connectors.beda.validation import PERSONNUMMER_OGILTIGT, personnummer_errors
from skolflow.connectors.dnp import rules as dnp
from skolflow.connectors.udir import rules as udir
from skolflow.identity import InvalidIdentity, mask, parse_swedish_identity

TEST_PERSONNUMMER = "201701012393"


def swedish(birth: str, serial: str) -> str:
    """A 12-digit number for YYYYMMDD and a serial, with stdnum's Luhn check digit."""
    return birth + serial + luhn.calc_check_digit(birth[2:] + serial)


@pytest.mark.parametrize("value", ["191500722390", "191711602399", "193100602394"])
def test_beda_and_dnp_accept_samordningsnummer_with_unknown_birth_month_or_day(value: str) -> None:
    assert personnummer_errors(value) == []
    assert dnp.civic_no_kind(value) == "samordningsnummer"


@pytest.mark.parametrize("value", [swedish("20170101", "000"), swedish("19150072", "000")])
def test_beda_and_dnp_refuse_the_never_issued_serial_000(value: str) -> None:
    problems = personnummer_errors(value)
    assert [p.kod for p in problems] == [PERSONNUMMER_OGILTIGT] and value not in problems[0].meddelande
    with pytest.raises(InvalidIdentity):
        dnp.civic_no_kind(value)


@pytest.mark.parametrize("value", ["20000101T220", "20000101-T220", "000101-T220", "20000101TX20"])
def test_interim_numbers_are_named_by_beda_and_refused_by_dnp(value: str) -> None:
    (fel,) = personnummer_errors(value)
    assert "interimistiskt nummer" in fel.meddelande and value not in fel.meddelande
    with pytest.raises(InvalidIdentity, match="interimistiskt nummer"):
        dnp.civic_no_kind(value)


def test_dnp_keeps_its_temporary_number_and_only_in_its_standard_form() -> None:
    assert dnp.civic_no_kind("20000101TF12") == "tillfälligt personnummer"
    fullwidth = "20000101".translate({ord(digit): 0xFF10 + int(digit) for digit in "0123456789"}) + "TF12"
    for refused in ("20000101-TF12", "20000101tf12", "20000231TF12", fullwidth):
        with pytest.raises(InvalidIdentity):
            dnp.civic_no_kind(refused)


@pytest.mark.parametrize("value", ["20170101-2393", "20170101 2393", "1701012393", "170101-2393", "170101+2393"])
def test_a_separated_or_ten_digit_number_the_parser_reads_breaks_beda_and_dnp_rules(value: str) -> None:
    assert parse_swedish_identity(value).number[2:] == TEST_PERSONNUMMER[2:]
    (fel,) = personnummer_errors(value)
    assert "tolv siffror" in fel.meddelande and value not in fel.meddelande
    with pytest.raises(InvalidIdentity, match="12 digits without separators"):
        dnp.civic_no_kind(value)


@pytest.mark.parametrize("value", ["20170101+2393", "2017-01-01-2393", "20170101 - 2393"])
def test_a_form_outside_the_policy_is_refused_by_the_parser_beda_and_dnp_alike(value: str) -> None:
    with pytest.raises(InvalidIdentity):
        parse_swedish_identity(value)
    assert [p.kod for p in personnummer_errors(value)] == [PERSONNUMMER_OGILTIGT]
    with pytest.raises(InvalidIdentity):
        dnp.civic_no_kind(value)


@pytest.mark.parametrize(("value", "named"), [
    ("15507600333", "H-nummer (hjelpenummer) kan ikke meldes opp hos Udir"),
    ("03851598730", "syntetisk fødselsnummer (testnummer) kan ikke meldes opp hos Udir"),
    ("41819077906", "syntetisk fødselsnummer (testnummer) kan ikke meldes opp hos Udir"),
])
def test_udir_refuses_h_nummer_and_synthetic_numbers_saying_what_they_are(value: str, named: str) -> None:
    problem = udir.fodselsnummer_problem(value, "NOR1211")
    assert problem is not None and problem.rule == udir.RULE_FODSELSNUMMER and problem.fodselsnr == value
    assert named in problem.message and value not in problem.message and mask(value) in problem.message


@pytest.mark.parametrize("value", ["30108299939", "55102499947"])
def test_udir_accepts_numbers_issued_from_2032(value: str) -> None:
    assert udir.fodselsnummer_problem(value) is None
