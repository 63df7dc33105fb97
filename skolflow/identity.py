"""Identity numbers exactly as their issuers define them (validated with python-stdnum), and the masking of every
form they are written in.

Every log line, artifact and exception that names a person goes through :func:`mask` (one value) or
:func:`mask_text` (free text, such as remote systems' error messages), so that Prefect (which the municipality
does not necessarily own) only ever sees references.

Swedish numbers: the one separator policy
-----------------------------------------
:func:`parse_swedish_identity` is the only reader of Swedish numbers: the CLI, Skola24 matching and (with
``wire=True``) the Beda and DNP rules all call it, so a number one accepts the others accept too.

* 12 digits ``ÅÅÅÅMMDDNNNK`` or 10 digits ``ÅÅMMDDNNNK``, ASCII digits only; whitespace around the number is ignored.
* At most one separator, and only in its standard place before the last four digits: ``-``, one space, or ``+``
  in the 10-digit form, which Skatteverket writes from the year the person turns 100 and which therefore puts the
  birth a century further back.
* ``+`` in a 12-digit number is refused: the century is written out, so the plus can only repeat or contradict it.
  Any other shape (two separators, a separator elsewhere, an en dash, other scripts' digits) is refused, not guessed.
* ``wire=True``: only the 12 bare digits. Beda, DNP and SS 12000 all say "12 siffror utan separatorer", so for their
  rules any other written form is a rule break, never silently normalised: the rules report what the source holds.
  The one exception is deliberate and at the edge: the SS 12000 reader turns a civicNo written ``ÅÅMMDD-NNNN`` (or
  another form above) into the contract's 12 digits (issue: real servers write it so), using this parser.

A number is valid when its date is a birth date — a personnummer's a real date; a samordningsnummer's day is the
birth day + 60, and Skatteverket issues month ``00`` and/or day ``60`` when it does not know the birth month or day
— its serial is not ``000`` (never issued) and its check digit is right (stdnum's Luhn). An *interimistiskt nummer*
(a letter in the serial, ``000101-T220``) is a local stand-in no Skatteverket register knows: recognised and refused
under its own rule. DNP's temporary ``ÅÅÅÅMMDDTFxx``, which DNP's contract accepts, is DNP's rule
(:mod:`skolflow.connectors.dnp.rules`), not a number this module accepts.

Norwegian numbers
-----------------
:func:`parse_norwegian_identity` reads any well-formed number: fødselsnummer, D-nummer (day + 40), H-nummer (a
health service's hjelpenummer, month + 40) and Skatteetaten's synthetic test numbers (month + 80). Only a
fødselsnummer or D-nummer names a person in the population register, so :func:`validate_norwegian_fodselsnummer`
(what Udir takes) refuses the other two saying what they are. python-stdnum checks ordinary numbers; it knows neither
synthetic numbers nor the first control digit Skatteetaten allows from 2032, and it takes an H-nummer for a
fødselsnummer, hence the few lines here.

Masking
-------
Masked: Swedish 12- and 10-digit numbers with no separator, ``-`` or another dash (en dash, minus sign…), ``+``,
spaces (also around the dash) or URL-encoded separators (``%2B``, ``%2D``, ``%20``) → ``ÅÅÅÅMMDD-****`` /
``ÅÅMMDD-****``; interimistiska nummer → ``ÅÅMMDD-****``; DNP's ``ÅÅÅÅMMDDTFxx`` → ``ÅÅÅÅMMDD****``; Norwegian
11-digit numbers, plain or with a space or dash after the date, fødselsnummer, D-, H- and synthetic numbers →
``DDMMÅÅ*****``; any of these in any script's decimal digits (fullwidth, Arabic-Indic…), after ``_`` and right
after an escape (``%2F``, ``\\n``, ``\\u00a0``). A letter or digit next to the digits otherwise makes them part of
something else.
Never masked: GUIDs/UUIDs, whole, cut off at their end after the second hyphen, or at their start with two hyphens
left before the last group (or with the cut shown by "…"); ISO 8601 timestamps; kandidatnummer; Swedish
organisationsnummer (their month field is 20 or more) and Norwegian ones (9 digits). A date field no person number
can have (Swedish month 00–12, day 00–31 or 60–91; Norwegian day 01–31 or 41–71, month 01–12, 41–52 or 81–92) is
what keeps the masking off those. Ambiguous, and therefore masked: a GUID cut right after its second group
(``20121212-1212``) and digit runs that happen to be shaped like a person number (``0701234567``).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from stdnum import luhn
from stdnum.exceptions import InvalidChecksum, ValidationError
from stdnum.no import fodselsnummer
from stdnum.no import orgnr as no_orgnr
from stdnum.se import orgnr as se_orgnr
from stdnum.se import personnummer

SAMORDNING_DAY_OFFSET = 60
NEVER_ISSUED_SERIAL = "000"
D_NUMMER_DAY_OFFSET = 40
H_NUMMER_MONTH_OFFSET = 40
SYNTHETIC_MONTH_OFFSET = 80


class IdentityKind(StrEnum):
    PERSONNUMMER = "personnummer"
    SAMORDNINGSNUMMER = "samordningsnummer"


class NorwegianKind(StrEnum):
    FODSELSNUMMER = "fødselsnummer"
    D_NUMMER = "D-nummer"
    H_NUMMER = "H-nummer"
    SYNTETISK = "syntetisk fødselsnummer"


# The kinds that name a person in the population register: what Udir takes.
FODSELSNUMMER_KINDS = frozenset({NorwegianKind.FODSELSNUMMER, NorwegianKind.D_NUMMER})


class Rule(StrEnum):
    """The rule an identity number broke, so that each system can word its answer in its own language."""

    FORMAT = "format"
    INTERIM = "interimistiskt nummer"
    DATE = "date of birth"
    SERIAL = "serial"
    CHECK_DIGIT = "check digit"
    KIND = "kind"  # a valid number, but not of a kind the caller takes (an H-nummer where a fødselsnummer belongs)


class InvalidIdentity(ValueError):
    """An identity number broke a rule; the message never contains the number in full."""

    def __init__(self, message: str, rule: Rule) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class SwedishIdentity:
    """A validated Swedish personnummer or samordningsnummer in 12-digit form (YYYYMMDDNNNN)."""

    number: str
    kind: IdentityKind

    @property
    def masked(self) -> str:
        return mask(self.number)


@dataclass(frozen=True)
class NorwegianIdentity:
    """A well-formed Norwegian person number (11 digits) and the kind its date fields mark."""

    number: str
    kind: NorwegianKind


_WRITTEN = re.compile(r"(?P<date>[0-9]{8}|[0-9]{6})(?P<separator>[-+ ]?)(?P<rest>[0-9]{4})")
_WIRE = re.compile(r"[0-9]{12}")
_INTERIM = re.compile(r"(?:[0-9]{8}|[0-9]{6})[-+ ]?(?=[0-9]{0,2}[A-Za-z])[0-9A-Za-z]{3}[0-9]")
_ELEVEN_DIGITS = re.compile(r"[0-9]{11}")


def parse_swedish_identity(value: str, *, wire: bool = False) -> SwedishIdentity:
    """Validate a personnummer or samordningsnummer written as the module's policy allows; return its 12 digits.

    ``wire=True`` takes only the 12 digits without separators that Beda's and DNP's contracts prescribe.
    """
    raw = value.strip()
    if _INTERIM.fullmatch(raw):
        raise InvalidIdentity(f"{mask(raw)}: an interimistiskt nummer (a letter in the serial) is not accepted, only "
                              "a personnummer or samordningsnummer", Rule.INTERIM)
    return _validated(_twelve_digits(raw, wire=wire))


def _twelve_digits(raw: str, *, wire: bool) -> str:
    if wire:
        if not _WIRE.fullmatch(raw):
            raise InvalidIdentity(f"{mask(raw)}: expected 12 digits without separators (ÅÅÅÅMMDDNNNN)", Rule.FORMAT)
        return raw
    written = _WRITTEN.fullmatch(raw)
    if written is None:
        raise InvalidIdentity(f"{mask(raw)}: expected 10 or 12 digits (ÅÅÅÅMMDD-NNNN, ÅÅMMDD-NNNN or ÅÅMMDD+NNNN)",
                              Rule.FORMAT)
    date, separator, rest = written.groups()
    if len(date) == 8:
        if separator == "+":
            raise InvalidIdentity(f"{mask(raw)}: '+' belongs to the 10-digit form only", Rule.FORMAT)
        return date + rest
    return _century(date, separator) + date + rest


def _century(date: str, separator: str) -> str:
    """The century of a 10-digit number, by stdnum's rule ('+' marks 100 years or older).

    Only the year counts, so month and day are set to 0101: a samordningsnummer's day + 60 and month 00 get their
    century the same way.
    """
    year = personnummer.get_birth_date(f"{date[:2]}0101{'+' if separator == '+' else '-'}0000").year
    return str(year // 100)


def _validated(digits: str) -> SwedishIdentity:
    """stdnum's personnummer module has no samordningsnummer support, so a coordination number (birth day + 60)
    is checked with stdnum's Luhn implementation and a date check of its own."""
    day = int(digits[6:8])
    kind = IdentityKind.SAMORDNINGSNUMMER if day >= SAMORDNING_DAY_OFFSET else IdentityKind.PERSONNUMMER
    if not _is_birth_date(int(digits[:4]), int(digits[4:6]), day, kind):
        raise InvalidIdentity(f"{mask(digits)}: not a valid date of birth for a {kind}", Rule.DATE)
    if digits[8:11] == NEVER_ISSUED_SERIAL:
        raise InvalidIdentity(f"{mask(digits)}: serial {NEVER_ISSUED_SERIAL} is never issued", Rule.SERIAL)
    try:
        if kind is IdentityKind.PERSONNUMMER:
            personnummer.validate(digits[:8] + "-" + digits[8:])
        else:
            luhn.validate(digits[2:])
    except ValidationError as exc:
        raise InvalidIdentity(f"{mask(digits)}: {kind} has a wrong check digit", Rule.CHECK_DIGIT) from exc
    return SwedishIdentity(number=digits, kind=kind)


def _is_birth_date(year: int, month: int, day: int, kind: IdentityKind) -> bool:
    """A personnummer's date is a real date. A samordningsnummer's day is the birth day + 60, and Skatteverket
    writes 00 for a birth month or day it does not know (day 60), so only a known month bounds the day."""
    if kind is IdentityKind.SAMORDNINGSNUMMER:
        day -= SAMORDNING_DAY_OFFSET
        if month == 0:
            return day <= 31
        if day == 0:
            return 1 <= month <= 12
    try:
        dt.date(year, month, day)
    except ValueError:
        return False
    return True


def is_valid_swedish_identity(value: str) -> bool:
    try:
        parse_swedish_identity(value)
    except InvalidIdentity:
        return False
    return True


def _stdnum_rule(exc: ValidationError) -> Rule:
    return Rule.CHECK_DIGIT if isinstance(exc, InvalidChecksum) else Rule.FORMAT


def validate_swedish_orgnr(value: str) -> str:
    """Return the organisationsnummer as NNNNNN-NNNN, or raise InvalidIdentity."""
    try:
        return se_orgnr.format(se_orgnr.validate(value))
    except ValidationError as exc:
        raise InvalidIdentity(f"{value!r} is not a valid organisationsnummer", _stdnum_rule(exc)) from exc


def parse_norwegian_identity(value: str) -> NorwegianIdentity:
    """Any well-formed Norwegian person number, and its kind (see the module's docstring).

    Control digits by Skatteetaten's rule (which includes the one before 2032); the date fields, less the kind's
    offsets, must be a calendar date; a fødselsnummer or D-nummer with the pre-2032 control digit also passes
    stdnum's own checks (the century its individual number implies, a birth not in the future).
    """
    number = fodselsnummer.compact(value)
    if not _ELEVEN_DIGITS.fullmatch(number):
        raise InvalidIdentity(f"{mask(value)}: expected 11 digits (DDMMÅÅNNNKK)", Rule.FORMAT)
    if not _control_digits_fit(number):
        raise InvalidIdentity(f"{mask(number)}: wrong control digits", Rule.CHECK_DIGIT)
    kind, day, month = _norwegian_birth(number)
    if not _is_calendar_date(day, month, int(number[4:6])) or (
            kind in FODSELSNUMMER_KINDS and _issued_before_2032(number) and not fodselsnummer.is_valid(number)):
        raise InvalidIdentity(f"{mask(number)}: not a valid date of birth for a {kind}", Rule.DATE)
    return NorwegianIdentity(number, kind)


def validate_norwegian_fodselsnummer(value: str) -> str:
    """A fødselsnummer or D-nummer; returns the 11 digits. An H-nummer or a synthetic number is refused by name."""
    identity = parse_norwegian_identity(value)
    if identity.kind not in FODSELSNUMMER_KINDS:
        raise InvalidIdentity(f"{mask(identity.number)}: a {identity.kind} is not a fødselsnummer or D-nummer",
                              Rule.KIND)
    return identity.number


def _control_digits_fit(number: str) -> bool:
    """K2 exactly as stdnum computes it; K1 stdnum's value plus 0, 1, 2 or 3 (mod 11).

    Skatteetaten, "Nytt fødselsnummer fra 2032" (skatteetaten.github.io/folkeregisteret-api-dokumentasjon/
    nytt-fodselsnummer-fra-2032/): "I dagens kontrollberegning må rest etter moduluskontrollen være lik 0. I ny
    kontrollberegning vil rest etter moduluskontrollen tillate 0, 1, 2 og 3 som gyldige verdier", i.e.
    k1 = {11,12,13,14} - (weighted sum mod 11), reduced by 11 when above 10, discarded when 10. Numbers issued
    before 2032 are the offset-0 case, so one check serves both.
    """
    offset = (int(number[9]) - int(fodselsnummer.calc_check_digit1(number))) % 11
    return offset in range(4) and number[10] == fodselsnummer.calc_check_digit2(number)


def _issued_before_2032(number: str) -> bool:
    return number[9] == fodselsnummer.calc_check_digit1(number)


def _norwegian_birth(number: str) -> tuple[NorwegianKind, int, int]:
    """The kind the date fields mark, and the birth day and month they stand for."""
    day, month = int(number[:2]), int(number[2:4])
    kind = NorwegianKind.FODSELSNUMMER
    if day > D_NUMMER_DAY_OFFSET:
        kind, day = NorwegianKind.D_NUMMER, day - D_NUMMER_DAY_OFFSET
    if month > SYNTHETIC_MONTH_OFFSET:
        kind, month = NorwegianKind.SYNTETISK, month - SYNTHETIC_MONTH_OFFSET
    elif month > H_NUMMER_MONTH_OFFSET:
        kind, month = NorwegianKind.H_NUMMER, month - H_NUMMER_MONTH_OFFSET
    return kind, day, month


def _is_calendar_date(day: int, month: int, year: int) -> bool:
    """From 2032 the individual number no longer tells the century, so, as Skatteetaten's reference validator
    does, the date is checked in the 2000s (which differ from the 1900s only by 29 February 2000)."""
    try:
        dt.date(2000 + year, month, day)
    except ValueError:
        return False
    return True


def validate_norwegian_orgnr(value: str) -> str:
    try:
        return no_orgnr.compact(no_orgnr.validate(value))
    except ValidationError as exc:
        raise InvalidIdentity(f"{value!r} is not a valid Norwegian organisasjonsnummer", _stdnum_rule(exc)) from exc


def mask_email(value: str | None) -> str:
    """`anna.berg@skola.se` → `a***@skola.se`: enough for an admin to find the person, not to name them."""
    if not value or "@" not in value:
        return mask(value)
    local, _, domain = value.strip().partition("@")
    return f"{local[:1]}***@{domain}"


# The written forms of person numbers, matched on text whose digits are ASCII (see _ascii_digits). The date fields
# must be ones a person number can have: that is what leaves organisationsnummer and most other numbers alone.
_SE_MONTH_DAY = r"(?:0[0-9]|1[0-2])(?:[0-2][0-9]|3[01]|[6-8][0-9]|9[01])"
_SE_DATE = rf"(?:[0-9]{{2}})?[0-9]{{2}}{_SE_MONTH_DAY}"
_NO_DATE = r"(?:0[1-9]|[12][0-9]|3[01]|4[1-9]|[56][0-9]|7[01])(?:0[1-9]|1[0-2]|4[1-9]|5[0-2]|8[1-9]|9[0-2])[0-9]{2}"
_DASHES = "\\-\u2010-\u2015\u2212\ufe63\uff0d"  # hyphen-minus, hyphens and dashes, minus sign, small/fullwidth hyphen
_SE_SEPARATOR = rf"(?:\s*[{_DASHES}+\uff0b]\s*|\s+|%2[BbDd]|%20)?"
_NO_SEPARATOR = rf"(?:\s*[{_DASHES}]\s*|\s+|%2[Dd]|%20)?"
_PERSON_NUMBER = rf"""
    (?P<temporary>[0-9]{{4}}{_SE_MONTH_DAY})[Tt][Ff][0-9]{{2}}                     # DNP's ÅÅÅÅMMDDTFxx
  | (?P<interim>{_SE_DATE}){_SE_SEPARATOR}(?=[0-9]{{0,2}}[A-Za-z])[0-9A-Za-z]{{3}}[0-9]   # a letter in the serial
  | (?P<swedish>{_SE_DATE}){_SE_SEPARATOR}[0-9]{{4}}                              # personnummer, samordningsnummer
  | (?P<norwegian>{_NO_DATE}){_NO_SEPARATOR}[0-9]{{5}}                            # fødsels-, D-, H-, synthetic number
"""
_HEX = "[0-9A-Fa-f]"
# Tried first at each position, so that their digits are never read as a person number. A GUID cut off at its end
# keeps its first two groups; one cut off at its start keeps two hyphens before its last group, or shows the cut (…):
# a bare "NNNN-NNNNNNNNNNNN" stays ambiguous, and so does a GUID cut right after its second group.
_KEEP = rf"""
    {_HEX}{{8}}-{_HEX}{{4}}-(?:{_HEX}{{4}}(?:-{_HEX}{{0,4}}(?:-{_HEX}{{0,12}})?)?
                              |{_HEX}{{0,3}}(?=\u2026|\.\.\.|\s*$))                       # a GUID, whole or its end cut
  | (?:{_HEX}{{1,8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}|{_HEX}{{1,4}}-{_HEX}{{4}}-{_HEX}{{4}}
      |{_HEX}{{1,4}}-{_HEX}{{4}})-{_HEX}{{12}}                                               # its start cut
  | (?:(?<=\u2026)|(?<=\u2026-)|(?<=\.\.\.)|(?<=\.\.\.-)){_HEX}{{1,4}}-{_HEX}{{12}}             # … its last groups
  | [0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}(?:[T\x20][0-9]{{2}}:[0-9]{{2}}(?::[0-9]{{2}}(?:[.,][0-9]+)?)?)?
        (?:Z|[+-][0-9]{{2}}(?::?[0-9]{{2}})?)?                                             # ISO 8601, extended
  | [0-9]{{8}}T[0-9]{{2}}(?:[0-9]{{2}}(?:[0-9]{{2}}(?:[.,][0-9]+)?)?)?(?:Z|[+-][0-9]{{2}}(?:[0-9]{{2}})?)?  # basic
"""
_ALONE = re.compile(_PERSON_NUMBER, re.VERBOSE)
# A letter or digit next to the number makes it part of something else ('_' does not: pnr_191212121212), unless it
# ends an escape a remote system's text may carry: URL-encoding (%2F), JSON or Python escapes (\n, \u00a0, \xa0).
_BEFORE = r"(?:(?<![^\W_])|(?<=%[0-9A-Fa-f]{2})|(?<=\\[nrtfbv])|(?<=\\u[0-9A-Fa-f]{4})|(?<=\\x[0-9A-Fa-f]{2}))"
_IN_TEXT = re.compile(rf"{_BEFORE}(?:(?P<keep>{_KEEP})|{_PERSON_NUMBER})(?![^\W_])", re.VERBOSE)
_DIGIT = re.compile(r"\d")


def _ascii_digits(text: str) -> str:
    """Every decimal digit of any script as its ASCII twin, one character for one, so positions stay put."""
    return text if text.isascii() else _DIGIT.sub(lambda digit: str(unicodedata.decimal(digit[0])), text)


def _masked(match: re.Match[str]) -> str:
    """Keep the date part, which is a reference; hide serial and check digits, which make it a person."""
    if match["temporary"]:
        return f"{match['temporary']}****"
    if match["norwegian"]:
        return f"{match['norwegian']}*****"
    return f"{match['interim'] or match['swedish']}-****"


def mask(value: str | None) -> str:
    """Mask one identity number as :func:`mask_text` masks it in text: `20150916-1234` → `20150916-****`,
    Norwegian `01018036736` → `010180*****`. Anything not written like a person number is masked whole rather
    than leaked."""
    if value is None:
        return "****"
    raw = value.strip()
    alone = _ALONE.fullmatch(_ascii_digits(raw))
    if alone:
        return _masked(alone)
    return "*" * min(len(raw), 8) if raw else "****"


def mask_text(text: str) -> str:
    """Mask every person number in free text (remote systems' messages); leave every other character as it was."""
    parts: list[str] = []
    end = 0
    for match in _IN_TEXT.finditer(_ascii_digits(text)):
        if match["keep"] is None:
            parts += [text[end:match.start()], _masked(match)]
            end = match.end()
    return "".join(parts) + text[end:]
