"""Beda's per-student validation: one pure function that Beda's sandbox answers with and the pipeline
runs before sending, so a student the pipeline lets through is one Beda accepts.

Every problem is reported, not only the first, each as a :class:`Fel` with a stable ``kod``, the
field path (``kursbetyg[2].betyg``) and a Swedish message. A message that quotes a personnummer
masks it. The grade rule itself lives in :mod:`skolflow.connectors.beda.grade_scales`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from pydantic import ValidationError

from skolflow.connectors.beda.grade_scales import COURSE_CODE, check_grade
from skolflow.connectors.beda.models import DOKUMENTTYPER, Examen, Fel, Kursbetyg, Merits
from skolflow.identity import InvalidIdentity, Rule, mask, parse_swedish_identity

PERSONNUMMER_OGILTIGT = "PERSONNUMMER_OGILTIGT"
SKOLENHETSKOD_OGILTIG = "SKOLENHETSKOD_OGILTIG"
SKOLENHET_EJ_BEHORIG = "SKOLENHET_EJ_BEHORIG"
SKOLFORM_OGILTIG = "SKOLFORM_OGILTIG"
KURSKOD_OGILTIG = "KURSKOD_OGILTIG"
BETYG_OGILTIGT = "BETYG_OGILTIGT"
OMDOME_EJ_TILLATET = "OMDOME_EJ_TILLATET"
DOKUMENTTYP_OGILTIG = "DOKUMENTTYP_OGILTIG"
DATUM_OGILTIGT = "DATUM_OGILTIGT"
# A missing key, a wrong JSON type, an unknown key or an unknown ``typ``: the body is not Beda's shape.
FORMAT_OGILTIGT = "FORMAT_OGILTIGT"

# grade_scales.check_grade's rule ids and fields → Beda's kod and wire field.
RULE_KOD = {
    "school-form": SKOLFORM_OGILTIG,
    "course-code": KURSKOD_OGILTIG,
    "course-school-form": KURSKOD_OGILTIG,
    "grade-scale": BETYG_OGILTIGT,
    "assessment-school-form": OMDOME_EJ_TILLATET,
}
RULE_FIELD = {"skolform": "skolform", "kurskod": "kod", "betyg": "betyg", "omdome": "betygsliknandeOmdome"}

SKOLENHETSKOD = re.compile(r"[0-9]{8}")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def validate_merits(
    merits: Merits, authorised_units: set[str] | frozenset[str] | None, *, today: dt.date | None = None
) -> list[Fel]:
    """Every problem Beda finds in one student's merits; empty means Beda accepts them.

    ``authorised_units`` are the skolenhetskoder the reporting party may report for; ``None`` skips
    that check (when the pipeline does not know them). ``today`` bounds dates (none in the future).
    """
    today = today or dt.date.today()
    problems = personnummer_errors(merits.personnummer)
    for index, grade in enumerate(merits.kursbetyg or []):
        problems += _kursbetyg(grade, f"kursbetyg[{index}]", authorised_units, today)
    for index, diploma in enumerate(merits.examen or []):
        problems += _examen(diploma, f"examen[{index}]", authorised_units, today)
    return problems


def format_errors(error: ValidationError) -> list[Fel]:
    """A body that does not parse as :class:`Merits`, as Beda reports it: one Fel per broken field."""
    return [
        Fel(kod=FORMAT_OGILTIGT, falt=field_path(item["loc"]), meddelande=_format_message(item["type"]))
        for item in error.errors(include_url=False, include_input=False)
    ]


def field_path(loc: Sequence[int | str]) -> str:
    """``("kursbetyg", 2, "betyg")`` → ``kursbetyg[2].betyg``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _format_message(error_type: str) -> str:
    messages = {
        "missing": "fältet saknas",
        "extra_forbidden": "okänt fält",
        "literal_error": "otillåtet värde",
        "bool_type": "ska vara true eller false",
        "bool_parsing": "ska vara true eller false",
        "string_type": "ska vara en sträng",
        "list_type": "ska vara en lista",
        "model_type": "ska vara ett objekt",
        "dict_type": "ska vara ett objekt",
    }
    return messages.get(error_type, f"fältet har fel format ({error_type})")


# Beda's words for skolflow.identity's rules; every other broken rule is simply "not valid".
PERSONNUMMER_MESSAGES = {
    Rule.FORMAT: "personnumret {shown} ska anges med tolv siffror (ÅÅÅÅMMDDNNNN)",
    Rule.INTERIM: "{shown} är ett interimistiskt nummer; Beda tar bara emot personnummer och samordningsnummer",
}
PERSONNUMMER_INVALID = "{shown} är inte ett giltigt personnummer eller samordningsnummer"


def personnummer_errors(value: str) -> list[Fel]:
    """Beda's key for a student: a valid personnummer or samordningsnummer written as twelve digits.

    Beda takes only ``ÅÅÅÅMMDDNNNN`` (skolflow.identity's wire form): a separated or ten-digit number is a rule
    break, not normalised, since the key must be what the student's record holds.
    """
    try:
        parse_swedish_identity(value, wire=True)
    except InvalidIdentity as exc:
        message = PERSONNUMMER_MESSAGES.get(exc.rule, PERSONNUMMER_INVALID)
        return [Fel(kod=PERSONNUMMER_OGILTIGT, falt="personnummer", meddelande=message.format(shown=mask(value)))]
    return []


def _skolenhet(code: str, path: str, authorised_units: set[str] | frozenset[str] | None) -> list[Fel]:
    if not SKOLENHETSKOD.fullmatch(code):
        return [Fel(kod=SKOLENHETSKOD_OGILTIG, falt=f"{path}.skolenhetskod",
                    meddelande=f"skolenhetskoden {code!r} ska bestå av åtta siffror")]
    if authorised_units is not None and code not in authorised_units:
        return [Fel(kod=SKOLENHET_EJ_BEHORIG, falt=f"{path}.skolenhetskod",
                    meddelande=f"anslutningsparten är inte behörig att rapportera för skolenheten {code}")]
    return []


def _date(value: str, path: str, today: dt.date) -> list[Fel]:
    try:
        # fromisoformat alone would also take 20240101 and 2024-W01-1; the wire says YYYY-MM-DD.
        day = dt.date.fromisoformat(value) if ISO_DATE.fullmatch(value) else None
    except ValueError:
        day = None
    if day is None:
        return [Fel(kod=DATUM_OGILTIGT, falt=path, meddelande=f"{value!r} är inte ett datum på formen ÅÅÅÅ-MM-DD")]
    if day > today:
        return [Fel(kod=DATUM_OGILTIGT, falt=path, meddelande=f"datumet {value} ligger i framtiden")]
    return []


def _kursbetyg(
    grade: Kursbetyg, path: str, authorised_units: set[str] | frozenset[str] | None, today: dt.date
) -> list[Fel]:
    problems = _skolenhet(grade.skolenhetskod, path, authorised_units)
    for rule in check_grade(grade.skolform, grade.kod, grade.betyg, grade.betygsliknande_omdome):
        problems.append(Fel(kod=RULE_KOD[rule.rule], falt=f"{path}.{RULE_FIELD[rule.field]}", meddelande=rule.message))
    return problems + _date(grade.beslutsdatum, f"{path}.beslutsdatum", today)


def _examen(
    diploma: Examen, path: str, authorised_units: set[str] | frozenset[str] | None, today: dt.date
) -> list[Fel]:
    problems = _skolenhet(diploma.skolenhetskod, path, authorised_units)
    if diploma.dokumenttyp not in DOKUMENTTYPER:
        problems.append(Fel(kod=DOKUMENTTYP_OGILTIG, falt=f"{path}.dokumenttyp",
                            meddelande=f"okänd dokumenttyp {diploma.dokumenttyp!r}"))
    problems += _date(diploma.utfardat, f"{path}.utfardat", today)
    for index, code in enumerate(diploma.kurser):
        if not COURSE_CODE.match(code):
            problems.append(Fel(kod=KURSKOD_OGILTIG, falt=f"{path}.kurser[{index}]",
                                meddelande=f"kurs- eller ämneskoden {code!r} har fel format"))
    return problems
