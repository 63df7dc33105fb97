"""Preparing one batch of students for Beda: resolve, select, build, check, diff. Pure, no Prefect, no HTTP.

Every student ends in exactly one bucket — to send, unchanged, or rejected with the rule it broke —
so one bad student never stops the others and none is lost silently. A rejection whose every cause lies
outside the grade (:attr:`Rejection.waits_for`: the identity join, the school unit, SS 12000 out of reach)
is one no fix at the platform would bring back in a later window, so the flow keeps the student waiting in
the ledger, its input stored in the platform's own formats (:func:`to_payload`), and tries it again every run.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from skolflow.connectors.beda.models import Examen, Fel, Merits
from skolflow.connectors.beda.validation import (
    PERSONNUMMER_OGILTIGT,
    SKOLENHET_EJ_BEHORIG,
    SKOLENHETSKOD_OGILTIG,
    validate_merits,
)
from skolflow.connectors.betyg import codec as betyg_codec
from skolflow.connectors.betyg.models import StudentGrades
from skolflow.connectors.betygsdokument import codec as dokument_codec
from skolflow.connectors.betygsdokument.models import GradeDocument
from skolflow.connectors.ss12000.client import Refused
from skolflow.connectors.xmlsafe import XmlDocumentError
from skolflow.identity import mask
from skolflow.ledger import SentState
from skolflow.tasks.diff import content_hash
from skolflow.tasks.grades import merge_examen, platform_id, to_examen, to_kursbetyg
from skolflow.tasks.identities import ResolvedPerson, ResolvedUnit

ELEV_OKAND = "ELEV_OKAND"
PERSONNUMMER_SAKNAS = "PERSONNUMMER_SAKNAS"
SKOLENHET_OKAND = "SKOLENHET_OKAND"
SS12000_UNREACHABLE = "SS12000"
# The student's or the grade's school unit's SS 12000 record (or one above the unit) could not be read.
ELEV_POST_AVVISAD = "ELEV_POST_AVVISAD"
SKOLENHET_POST_AVVISAD = "SKOLENHET_POST_AVVISAD"

IDENTITY_JOIN = "identity join"
SCHOOL_UNIT = "school unit"
UNREACHABLE = "SS 12000 unreachable"
# Codes whose cause lies outside the grade, by the cause shown, most telling first. The personnummer and the
# unit's skolenhetskod and huvudman are SS 12000's (Beda's authorisation is UHR's): fixing them never makes
# the platform send the student again, so a student refused only for these waits instead.
OUTSIDE_THE_GRADE: dict[str, str] = {
    SS12000_UNREACHABLE: UNREACHABLE,
    ELEV_OKAND: IDENTITY_JOIN,
    ELEV_POST_AVVISAD: IDENTITY_JOIN,
    PERSONNUMMER_SAKNAS: IDENTITY_JOIN,
    PERSONNUMMER_OGILTIGT: IDENTITY_JOIN,
    SKOLENHET_OKAND: SCHOOL_UNIT,
    SKOLENHET_POST_AVVISAD: SCHOOL_UNIT,
    SKOLENHET_EJ_BEHORIG: SCHOOL_UNIT,
    SKOLENHETSKOD_OGILTIG: SCHOOL_UNIT,
}
CAUSES = tuple(dict.fromkeys(OUTSIDE_THE_GRADE.values()))


def _outside_the_grade(fel: Fel) -> bool:
    # A grade's skolenhetskod is SS 12000's; a diploma's is written in the document itself.
    if fel.kod == SKOLENHETSKOD_OGILTIG:
        return fel.falt.startswith("kursbetyg")
    return fel.kod in OUTSIDE_THE_GRADE


class What(StrEnum):
    """What to report, as Edlevo's export offers it: course grades, diplomas, or both."""

    KURSBETYG = "kursbetyg"
    EXAMEN = "examen"
    BOTH = "both"

    @property
    def grades(self) -> bool:
        return self in (What.KURSBETYG, What.BOTH)

    @property
    def diplomas(self) -> bool:
        return self in (What.EXAMEN, What.BOTH)


@dataclass
class StudentInput:
    """What the platform said about one student: in this window, while the student waited, or both."""

    student_id: str  # platform GUID as the document wrote it
    grades: StudentGrades | None = None
    documents: list[GradeDocument] = field(default_factory=list)
    schema_errors: list[str] = field(default_factory=list)
    waiting: bool = False  # the ledger held the student waiting when the run started
    in_window: bool = True  # the platform sent the student in this run's window


def merged(queued: StudentInput, window: StudentInput) -> StudentInput:
    """A waiting student the window sends again: the newer version wins, part by part.

    An ``<elev>`` in the window is the student's complete list and replaces the stored one (a broken one too:
    that is the grade's own fault and rejects the student); the window's diplomas replace stored ones of the
    same type, as the platform sends only the latest document of each type.
    """
    sent_grades = window.grades is not None or bool(window.schema_errors)
    documents = {d.typ: d for d in queued.documents} | {d.typ: d for d in window.documents}
    return StudentInput(window.student_id, window.grades if sent_grades else queued.grades, list(documents.values()),
                        window.schema_errors, waiting=True, in_window=True)


def to_payload(student: StudentInput, start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """A waiting student's input as the platform's own documents (one student each), for the ledger.

    The platform's formats are versioned contracts, unlike skolflow's models: read back with the same codecs
    (:func:`from_payload`), a student stored before an upgrade of skolflow is still understood after it.
    """
    payload: dict[str, str] = {}
    if student.grades is not None:
        body = io.BytesIO()
        betyg_codec.encode(body, [student.grades], start, end)
        payload["betyg"] = body.getvalue().decode()
    if student.documents:
        body = io.BytesIO()
        dokument_codec.encode(body, student.documents, start, end)
        payload["betygsdokument"] = body.getvalue().decode()
    return payload


def from_payload(payload: Mapping[str, str]) -> StudentInput:
    """A waiting student's stored input, read as the platform's answers are read."""
    students = list(betyg_codec.iter_students(io.BytesIO(payload["betyg"].encode()))) if "betyg" in payload else []
    grades = students[0] if students else None
    documents = list(dokument_codec.iter_documents(io.BytesIO(payload["betygsdokument"].encode()))) \
        if "betygsdokument" in payload else []
    if grades is None and not documents:
        raise XmlDocumentError("the stored input holds neither an <elev> nor a <dokument>")
    student_id = grades.student_id if grades else documents[0].elev
    return StudentInput(student_id, grades, documents, waiting=True, in_window=False)


@dataclass(frozen=True)
class Selection:
    school_units: frozenset[str] = frozenset()
    student: str | None = None  # SS 12000 person id / platform GUID

    def includes(self, student_id: str, unit_codes: Collection[str]) -> bool:
        if self.student and platform_id(self.student) != platform_id(student_id):
            return False
        return not self.school_units or bool(self.school_units & set(unit_codes))


@dataclass(frozen=True)
class Rejection:
    """A student not sent, in terms an administrator can act on; ``shown`` is masked."""

    source_id: str
    personnummer: str | None
    source: str  # "skolflow" (checked before sending) or "Beda"
    errors: tuple[Fel, ...]
    units: tuple[str, ...] = ()  # the skolenhetskoder known for the student, for the tables

    @property
    def shown(self) -> str:
        return mask(self.personnummer) if self.personnummer else self.source_id

    @property
    def waits_for(self) -> str | None:
        """The cause outside the grade this student waits for (one of :data:`CAUSES`), or None.

        None when any error lies in the grade itself: the student is rejected, and the fix at the platform
        brings them into a later window.
        """
        if not self.errors or not all(_outside_the_grade(f) for f in self.errors):
            return None
        return next(cause for cause in CAUSES if any(OUTSIDE_THE_GRADE[f.kod] == cause for f in self.errors))


@dataclass
class Prepared:
    source_id: str
    personnummer: str
    merits: Merits
    content: dict[str, Any]  # what Beda will hold afterwards, as stored in the ledger
    content_hash: str
    units: tuple[str, ...]
    protected: bool


@dataclass
class PreparedBatch:
    to_send: list[Prepared] = field(default_factory=list)
    unchanged: list[Prepared] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    skipped: int = 0  # outside the selection


def _fel(kod: str, falt: str, meddelande: str) -> Fel:
    return Fel(kod=kod, falt=falt, meddelande=meddelande)


def _refused(kod: str, about: str, refused: Refused) -> list[Fel]:
    """One error per field of the refused record: its SS 12000 id, the field and the rule, in the ledger's terms."""
    return [_fel(kod, problem.field,
                 f"{about}: SS 12000-posten {refused.record_id} kan inte läsas: {problem.field}: {problem.rule}")
            for problem in refused.problems]


def _held_units(content: Mapping[str, Any]) -> list[str]:
    """The school units of what Beda holds for a student (ledger content, wire form)."""
    return [item.get("skolenhetskod", "") for key in ("kursbetyg", "examen") for item in content.get(key) or ()]


def prepare_batch(
    students: Sequence[StudentInput],
    persons: Mapping[str, ResolvedPerson],
    units: Mapping[str, ResolvedUnit],
    authorised_units: frozenset[str],
    previous: Mapping[str, SentState],
    selection: Selection,
    what: What,
    *,
    unreachable: str | None = None,
) -> PreparedBatch:
    """``previous`` is keyed by personnummer; ``persons`` and ``units`` by SS 12000 id.

    ``unreachable`` says why SS 12000 could not be asked about the batch's persons: each student is then
    rejected for that (a cause outside the grade: it waits) unless the grade itself is broken too.
    """
    batch = PreparedBatch()
    for student in students:
        person = persons.get(platform_id(student.student_id))
        civic = person.civic_no if person else None
        unit_errors: list[Fel] = []
        grade_units: list[str] = []
        kursbetyg = []
        for index, grade in enumerate(student.grades.grades if student.grades else ()):
            unit = units.get(platform_id(grade.skola))
            if unit is not None and unit.refused is not None:
                unit_errors += _refused(SKOLENHET_POST_AVVISAD, f"kursbetyg[{index}].skola {grade.skola}",
                                        unit.refused)
                continue
            if unit is None or not unit.code:
                unit_errors.append(_fel(SKOLENHET_OKAND, f"kursbetyg[{index}].skola",
                                        f"skolan {grade.skola} finns inte som skolenhet i SS 12000-källan"))
                continue
            grade_units.append(unit.code)
            kursbetyg.append(to_kursbetyg(grade, unit.code))
        before = previous.get(civic) if civic else None
        held: dict[str, Any] = dict(before.content) if before else {}
        documents = student.documents
        all_units = [*grade_units, *(d.skolenhetskod for d in documents)]
        # A grade removed at a unit is gone from the new list; what Beda holds still ties the student to that unit.
        if not selection.includes(student.student_id, [*all_units, *_held_units(held)]):
            batch.skipped += 1
            continue
        shown_units = tuple(sorted(set(all_units)))
        errors = [_fel("XSD", "", message) for message in student.schema_errors] + unit_errors
        if unreachable is not None:
            errors.append(_fel(SS12000_UNREACHABLE, "elev", unreachable))
        elif person is None:
            errors.append(_fel(ELEV_OKAND, "elev", f"eleven {student.student_id} finns inte i SS 12000-källan"))
        elif person.refused is not None:
            errors += _refused(ELEV_POST_AVVISAD, f"eleven {student.student_id}", person.refused)
        elif not civic:
            errors.append(_fel(PERSONNUMMER_SAKNAS, "personnummer",
                               f"eleven {student.student_id} saknar personnummer i SS 12000-källan"))
        if errors:
            batch.rejected.append(Rejection(student.student_id, civic, "skolflow", tuple(errors), shown_units))
            continue
        send_grades = what.grades and student.grades is not None
        send_diplomas = what.diplomas and bool(documents)
        merits = Merits(personnummer=civic)
        if send_grades:
            merits.kursbetyg = kursbetyg
        if send_diplomas:
            earlier = [Examen.model_validate(e) for e in held.get("examen", [])]
            merits.examen = merge_examen(earlier, [to_examen(d) for d in documents])
        if merits.kursbetyg is None and merits.examen is None:
            batch.skipped += 1
            continue
        problems = validate_merits(merits, authorised_units)
        if problems:
            batch.rejected.append(Rejection(student.student_id, civic, "skolflow", tuple(problems), shown_units))
            continue
        wire = merits.to_wire()
        changed = {key for key in ("kursbetyg", "examen")
                   if key in wire and content_hash(wire[key]) != content_hash(held.get(key))}
        content = {**held, **wire}
        prepared = Prepared(student.student_id, civic, merits, content, content_hash(content), shown_units,
                            person.protected)
        (batch.to_send if changed else batch.unchanged).append(prepared)
    return batch
