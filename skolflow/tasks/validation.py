"""`skolflow validate betyg FILE`: the schema and every document rule, one problem per line.

Uses the same per-student reading as the pipeline (:mod:`skolflow.tasks.betyg_documents`), so a file
that validates here is read the same way when the platform sends it.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from skolflow.connectors import xmlsafe
from skolflow.connectors.betyg.rules import Problem, check_student
from skolflow.tasks.betyg_documents import checked_students


class ReportedProblem(Problem):
    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def validate_betyg_document(path: Path) -> list[ReportedProblem]:
    try:
        students = list(checked_students(path))
    except xmlsafe.XmlDocumentError as exc:
        return [ReportedProblem("", "", "xml", str(exc))]
    problems: list[ReportedProblem] = []
    for student in students:
        for message in student.schema_errors:
            problems.append(ReportedProblem(student.student_id, "", "xsd", message))
        if student.grades is not None:
            problems += [ReportedProblem(**asdict(p)) for p in check_student(student.grades)]
    return problems
