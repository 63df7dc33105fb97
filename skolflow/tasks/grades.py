"""From the school platform's records to Beda's merits: pure functions, tested without Prefect or HTTP."""

from __future__ import annotations

from collections.abc import Iterable

from skolflow.connectors.beda.models import Examen, Kursbetyg
from skolflow.connectors.betyg.models import KURSBETYG, GradeRecord, subject_code
from skolflow.connectors.betygsdokument.models import GradeDocument


def platform_id(guid: str) -> str:
    """A platform GUID (``{D7B3374B-…}``) as the SS 12000 id it names (``d7b3374b-…``)."""
    return guid.strip().strip("{}").lower()


def to_kursbetyg(grade: GradeRecord, school_unit_code: str) -> Kursbetyg:
    """Beda's form of a grade; the codec has already folded a language subject's ``<språk>`` into its code."""
    return Kursbetyg(
        skolenhetskod=school_unit_code,
        skolform=grade.skolform,
        typ="kurs" if grade.kind == KURSBETYG else "amne",
        kod=grade.code,
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
    subjects = [subject_code(a.forkortning, a.sprak) for a in document.amnen]
    return Examen(
        skolenhetskod=document.skolenhetskod,
        dokumenttyp=document.typ,
        utfardat=document.utfardat,
        studievagskod=document.studievagskod,
        grundlaggande_behorighet=document.grundlaggandebehorighet,
        kurser=[*document.kurser, *subjects],
    )
