"""From the school platform's records to Beda's merits: pure functions, tested without Prefect or HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterable

from skolflow.connectors.beda.models import Examen, Kursbetyg
from skolflow.connectors.betyg.models import KURSBETYG, GradeRecord
from skolflow.connectors.betygsdokument.models import GradeDocument

_LANGUAGE_SUBJECT = re.compile(r"^(M1|M2|ML)$")


def platform_id(guid: str) -> str:
    """A platform GUID (``{D7B3374B-…}``) as the SS 12000 id it names (``d7b3374b-…``)."""
    return guid.strip().strip("{}").lower()


def subject_code(grade: GradeRecord) -> str:
    """Beda's code for a grade: language subjects carry their language (``M2`` + ``DEU`` → ``M2DEU``)."""
    if grade.sprak and _LANGUAGE_SUBJECT.match(grade.code):
        return grade.code + grade.sprak
    return grade.code


def to_kursbetyg(grade: GradeRecord, school_unit_code: str) -> Kursbetyg:
    return Kursbetyg(
        skolenhetskod=school_unit_code,
        skolform=grade.skolform,
        typ="kurs" if grade.kind == KURSBETYG else "amne",
        kod=subject_code(grade),
        betyg=grade.value,
        beslutsdatum=grade.datum,
        provning=grade.provning,
        betygsliknande_omdome=grade.omdome,
    )


def merge_examen(previous: Iterable[Examen], latest: Iterable[Examen]) -> list[Examen]:
    """The platform sends only the latest document of each type, so Beda's list is kept per type."""
    by_type = {e.dokumenttyp: e for e in previous}
    by_type.update({e.dokumenttyp: e for e in latest})
    return [by_type[k] for k in sorted(by_type)]


def to_examen(document: GradeDocument) -> Examen:
    subjects = [a.forkortning + (a.sprak or "") if _LANGUAGE_SUBJECT.match(a.forkortning) else a.forkortning
                for a in document.amnen]
    return Examen(
        skolenhetskod=document.skolenhetskod,
        dokumenttyp=document.typ,
        utfardat=document.utfardat,
        studievagskod=document.studievagskod,
        grundlaggande_behorighet=document.grundlaggandebehorighet,
        kurser=[*document.kurser, *subjects],
    )
