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


# amneskoder.md: moderna språk as elevens val (M1) and as språkval (M2), and modersmål (ML), each read in a language.
LANGUAGE_SUBJECTS = ("M1", "M2", "ML")


def subject_code(amnesforkortning: str, sprak: str | None) -> str:
    """The subject's one code, language included: ``M2`` with ``<språk>DEU</språk>`` is ``M2DEU``.

    The XSD gives the language an element of its own beside ``ämnesförkortning``, and platforms write
    both ``M2`` + ``DEU`` and ``M2DEU`` (+ ``DEU``, as the contract's example does) for the same
    subject. Folding the first into the second where a grade is read means the diff, the document rules
    and Beda all see one code, so a change of form alone never looks like a changed grade. A code that
    already names its language is kept as written, so a ``språk`` contradicting it stays visible.
    """
    if sprak and amnesforkortning in LANGUAGE_SUBJECTS:
        return amnesforkortning + sprak
    return amnesforkortning


class Termin(NamedTuple):
    """The term an ämnesbetyg was set in grundskoleutbildning, e.g. ``Termin("HT", 2015)``."""

    typ: str  # "VT" | "HT"
    ar: int


@dataclass(frozen=True)
class GradeRecord:
    """One betygsuppgift: an ``<ämnesbetyg>`` or a ``<kursbetyg>``.

    ``code`` is the kurskod or the ämnesförkortning, the latter with its language folded in as
    :func:`subject_code` does (``sprak`` keeps the ``<språk>`` as written); ``omdome`` is only ever
    true for a kursbetyg (betygsliknande omdöme), ``sprak``/``termin``/``slutbetyg`` only exist for an
    ämnesbetyg (``slutbetyg`` is None for a kursbetyg).
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
