"""Preparing one batch of students for Beda: resolve, select, build, check, diff. Pure, no Prefect, no HTTP.

Every student ends in exactly one bucket — to send, unchanged, or rejected with the rule it broke —
so one bad student never stops the others and none is lost silently.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from skolflow.connectors.beda.models import Examen, Fel, Merits
from skolflow.connectors.beda.validation import validate_merits
from skolflow.connectors.betyg.models import StudentGrades
from skolflow.connectors.betygsdokument.models import GradeDocument
from skolflow.identity import mask
from skolflow.ledger import SentState
from skolflow.tasks.diff import content_hash
from skolflow.tasks.grades import merge_examen, platform_id, to_examen, to_kursbetyg
from skolflow.tasks.identities import ResolvedPerson, ResolvedUnit


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
    """What the platform said about one student in this window."""

    student_id: str  # platform GUID as the document wrote it
    grades: StudentGrades | None = None
    documents: list[GradeDocument] = field(default_factory=list)
    schema_errors: list[str] = field(default_factory=list)


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

    @property
    def shown(self) -> str:
        return mask(self.personnummer) if self.personnummer else self.source_id


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


def _held_units(content: Mapping[str, Any]) -> list[str]:
    """The school units of what Beda holds for a student (ledger content, wire form)."""
    return [item.get("skolenhetskod", "") for key in ("kursbetyg", "examen") for item in content.get(key) or ()]


def prepare_batch(
    students: list[StudentInput],
    persons: Mapping[str, ResolvedPerson],
    units: Mapping[str, ResolvedUnit],
    authorised_units: frozenset[str],
    previous: Mapping[str, SentState],
    selection: Selection,
    what: What,
) -> PreparedBatch:
    """``previous`` is keyed by personnummer; ``persons`` and ``units`` by SS 12000 id."""
    batch = PreparedBatch()
    for student in students:
        person = persons.get(platform_id(student.student_id))
        civic = person.civic_no if person else None
        unit_errors: list[Fel] = []
        grade_units: list[str] = []
        kursbetyg = []
        for index, grade in enumerate(student.grades.grades if student.grades else ()):
            unit = units.get(platform_id(grade.skola))
            if unit is None or not unit.code:
                unit_errors.append(_fel("SKOLENHET_OKAND", f"kursbetyg[{index}].skola",
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
        errors = [_fel("XSD", "", message) for message in student.schema_errors] + unit_errors
        if person is None:
            errors.append(_fel("ELEV_OKAND", "elev", f"eleven {student.student_id} finns inte i SS 12000-källan"))
        elif not civic:
            errors.append(_fel("PERSONNUMMER_SAKNAS", "personnummer",
                               f"eleven {student.student_id} saknar personnummer i SS 12000-källan"))
        if errors:
            batch.rejected.append(Rejection(student.student_id, civic, "skolflow", tuple(errors)))
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
            batch.rejected.append(Rejection(student.student_id, civic, "skolflow", tuple(problems)))
            continue
        wire = merits.to_wire()
        changed = {key for key in ("kursbetyg", "examen")
                   if key in wire and content_hash(wire[key]) != content_hash(held.get(key))}
        content = {**held, **wire}
        prepared = Prepared(student.student_id, civic, merits, content, content_hash(content),
                            tuple(sorted(set(all_units))), person.protected)
        (batch.to_send if changed else batch.unchanged).append(prepared)
    return batch
