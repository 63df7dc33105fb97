"""Identity numbers: validation through python-stdnum, and the one masking function.

Every log line, artifact and exception that names a person goes through :func:`mask`, so that
Prefect (which the municipality does not necessarily own) only ever sees references.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum

from stdnum import luhn
from stdnum.exceptions import ValidationError
from stdnum.no import fodselsnummer
from stdnum.no import orgnr as no_orgnr
from stdnum.se import orgnr as se_orgnr
from stdnum.se import personnummer

SAMORDNING_DAY_OFFSET = 60


class IdentityKind(StrEnum):
    PERSONNUMMER = "personnummer"
    SAMORDNINGSNUMMER = "samordningsnummer"


class InvalidIdentity(ValueError):
    """An identity number broke a rule; the message never contains the number in full."""


@dataclass(frozen=True)
class SwedishIdentity:
    """A validated Swedish personnummer or samordningsnummer in 12-digit form (YYYYMMDDNNNN)."""

    number: str
    kind: IdentityKind

    @property
    def masked(self) -> str:
        return mask(self.number)


def _twelve_digits(value: str) -> str:
    raw = value.strip()
    digits = re.sub(r"[\s\-+]", "", raw)
    if not digits.isdigit() or len(digits) not in (10, 12):
        raise InvalidIdentity(f"{mask(value)}: expected 10 or 12 digits (YYYYMMDD-NNNN)")
    if len(digits) == 10:
        # stdnum knows the century rule ('+' marks 100 years or older); the day is set to 01 so
        # that a samordningsnummer (day + 60) gets its century the same way.
        separator = "+" if "+" in raw else "-"
        year = personnummer.get_birth_date(digits[:4] + "01" + separator + digits[6:]).year
        digits = str(year)[:2] + digits
    return digits


def parse_swedish_identity(value: str) -> SwedishIdentity:
    """Validate a personnummer or samordningsnummer and return it in 12-digit form.

    stdnum's personnummer module has no samordningsnummer support, so a coordination number
    (birth day + 60) is checked with stdnum's Luhn implementation and a date check on day - 60.
    """
    try:
        digits = _twelve_digits(value)
    except ValidationError as exc:
        raise InvalidIdentity(f"{mask(value)}: not a valid date of birth") from exc
    day = int(digits[6:8])
    kind = IdentityKind.SAMORDNINGSNUMMER if day > SAMORDNING_DAY_OFFSET else IdentityKind.PERSONNUMMER
    birth_day = day - SAMORDNING_DAY_OFFSET if kind is IdentityKind.SAMORDNINGSNUMMER else day
    try:
        dt.date(int(digits[:4]), int(digits[4:6]), birth_day)
    except ValueError as exc:
        raise InvalidIdentity(f"{mask(digits)}: not a valid date of birth for a {kind}") from exc
    try:
        if kind is IdentityKind.PERSONNUMMER:
            personnummer.validate(digits[:8] + "-" + digits[8:])
        else:
            luhn.validate(digits[2:])
    except ValidationError as exc:
        raise InvalidIdentity(f"{mask(digits)}: {kind} has a wrong check digit") from exc
    return SwedishIdentity(number=digits, kind=kind)


def is_valid_swedish_identity(value: str) -> bool:
    try:
        parse_swedish_identity(value)
    except InvalidIdentity:
        return False
    return True


def validate_swedish_orgnr(value: str) -> str:
    """Return the organisationsnummer as NNNNNN-NNNN, or raise InvalidIdentity."""
    try:
        return se_orgnr.format(se_orgnr.validate(value))
    except ValidationError as exc:
        raise InvalidIdentity(f"{value!r} is not a valid organisationsnummer") from exc


def validate_norwegian_fodselsnummer(value: str) -> str:
    """Fødselsnummer or D-number (stdnum accepts both); returns the 11 digits."""
    try:
        return fodselsnummer.compact(fodselsnummer.validate(value))
    except ValidationError as exc:
        raise InvalidIdentity(f"{mask(value)}: not a valid fødselsnummer or D-nummer") from exc


def validate_norwegian_orgnr(value: str) -> str:
    try:
        return no_orgnr.compact(no_orgnr.validate(value))
    except ValidationError as exc:
        raise InvalidIdentity(f"{value!r} is not a valid Norwegian organisasjonsnummer") from exc


def mask_email(value: str | None) -> str:
    """`anna.berg@skola.se` → `a***@skola.se`: enough for an admin to find the person, not to name them."""
    if not value or "@" not in value:
        return mask(value)
    local, _, domain = value.strip().partition("@")
    return f"{local[:1]}***@{domain}"


_IDENTITY_IN_TEXT = re.compile(r"(?<!\d)(\d{6}|\d{8})[-+]?(\d{4}|\d{5})(?!\d)")


def mask(value: str | None) -> str:
    """Mask an identity number: keep the date part, hide the serial and check digits.

    `20150916-1234` → `20150916-****`; Norwegian `01018036736` → `010180*****`. Anything that is
    not shaped like an identity number is masked as a whole rather than leaked.
    """
    if value is None:
        return "****"
    raw = value.strip()
    digits = re.sub(r"[\s\-+]", "", raw)
    if digits.isdigit() and len(digits) == 12:
        return f"{digits[:8]}-****"
    if digits.isdigit() and len(digits) == 10:
        return f"{digits[:6]}-****"
    if digits.isdigit() and len(digits) == 11:
        return f"{digits[:6]}*****"
    return "*" * min(len(raw), 8) if raw else "****"


def mask_text(text: str) -> str:
    """Mask every identity number found in free text (error messages from remote systems)."""

    def _replace(match: re.Match[str]) -> str:
        return mask(match.group(0))

    return _IDENTITY_IN_TEXT.sub(_replace, text)
