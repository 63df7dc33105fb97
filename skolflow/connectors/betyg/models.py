"""The Betyg API's wire data (PING PONG grades v1.1, contract Betyg API 1.1.1) as frozen values.

Field names are the XML element names, folded to ASCII (``prövning`` → ``provning``), so that a reader
can hold the XSD beside this file. Ids are kept exactly as the document writes them (platform GUIDs in
braces, ``"{d7b3374b-…}"``): resolving or repairing them is the pipeline's business, and the document
rules (:mod:`.rules`) need to see them unchanged to report a malformed one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import NamedTuple
from zoneinfo import ZoneInfo

# The platform's from/tom and change times carry no zone: they are Swedish wall-clock time.
PLATFORM_TIMEZONE = ZoneInfo("Europe/Stockholm")


def platform_now() -> dt.datetime:
    """The platform's wall clock to the minute, the resolution of the API's from/tom."""
    return dt.datetime.now(PLATFORM_TIMEZONE).replace(tzinfo=None, second=0, microsecond=0)


KURSBETYG = "kursbetyg"
AMNESBETYG = "ämnesbetyg"
GRADE_KINDS = (AMNESBETYG, KURSBETYG)  # the order the XSD requires within an <elev>

DECIDED_BY_ROLES = ("LÄRARE", "REKTOR", "EXTERN")
# schoolType query values of the API (README 1.1.1); wider than the XSD's Skolform enumeration.
SCHOOL_TYPES = ("PO", "FSK", "FH", "FSKK", "GR", "GRSAR", "SPEC", "SAMESKOLA", "GY", "GYSAR", "GYSAR2002",
                "VUX", "SARVUX", "SFI", "YH")


class Termin(NamedTuple):
    """The term an ämnesbetyg was set in grundskoleutbildning, e.g. ``Termin("HT", 2015)``."""

    typ: str  # "VT" | "HT"
    ar: int


@dataclass(frozen=True)
class GradeRecord:
    """One betygsuppgift: an ``<ämnesbetyg>`` or a ``<kursbetyg>``.

    ``code`` is the kurskod or the ämnesförkortning; ``omdome`` is only ever true for a kursbetyg
    (betygsliknande omdöme), ``sprak``/``termin``/``slutbetyg`` only exist for an ämnesbetyg
    (``slutbetyg`` is None for a kursbetyg).
    """

    kind: str  # "kursbetyg" | "ämnesbetyg"
    value: str
    datum: dt.date
    provning: bool
    betygsgrupp: str | None
    skola: str
    beslutsfattare_roll: str  # "LÄRARE" | "REKTOR" | "EXTERN"
    beslutsfattare: tuple[str, ...]  # person ids, none for EXTERN
    skolform: str
    code: str
    omdome: bool = False
    sprak: str | None = None
    termin: Termin | None = None
    slutbetyg: bool | None = None


@dataclass(frozen=True)
class StudentGrades:
    """One ``<elev>``: the student's complete list of grades (empty when all were removed)."""

    student_id: str
    grades: tuple[GradeRecord, ...]
