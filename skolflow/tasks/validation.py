"""`skolflow validate betyg FILE`: the schema and every document rule, one problem per line.

Uses the same per-student reading as the pipeline (:mod:`skolflow.tasks.betyg_documents`), so a file
that validates here is read the same way when the platform sends it.

The document is streamed: each student is checked as it is read and then let go, and only problems are
kept, so memory does not grow with the document (a municipality's export runs to hundreds of megabytes).
What is kept is bounded as well. A field of a problem is cut at :data:`MAX_FIELD` characters (a value
the document repeats back can be any length), and past :data:`MAX_PER_RULE` problems under one rule the
rest are counted, not kept: a document in which every student breaks the same rule says so in one line
instead of a list as long as the document.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path

from skolflow.connectors import xmlsafe
from skolflow.connectors.betyg.rules import Problem, check_student
from skolflow.errors import sanitise
from skolflow.tasks.betyg_documents import checked_students

MAX_PER_RULE = 1000
MAX_FIELD = 500


class ReportedProblem(Problem):
    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_FIELD else text[:MAX_FIELD - 1] + "…"


class _Kept:
    """The problems met so far, at most :data:`MAX_PER_RULE` under each rule; beyond that only counted."""

    def __init__(self) -> None:
        self.problems: list[ReportedProblem] = []
        self.per_rule: Counter[str] = Counter()

    def add(self, student: str, code: str, rule: str, message: str) -> None:
        self.per_rule[rule] += 1
        if self.per_rule[rule] <= MAX_PER_RULE:
            self.problems.append(ReportedProblem(_cut(student), _cut(code), rule, _cut(message)))

    def listed(self) -> list[ReportedProblem]:
        """The kept problems in document order, then one line per rule that had more than could be kept."""
        untold = [ReportedProblem("", "", rule, f"{count - MAX_PER_RULE} more problems under rule {rule} "
                                                f"not listed (the first {MAX_PER_RULE} are)")
                  for rule, count in self.per_rule.items() if count > MAX_PER_RULE]
        return self.problems + untold


def validate_betyg_document(path: Path) -> list[ReportedProblem]:
    """Every problem of the document, its students checked one at a time as they stream past.

    A document that cannot be read to its end (unsafe, malformed, or not a Betyg API document at all)
    gives one ``xml`` problem, after whatever was found before the point where reading stopped.
    """
    kept = _Kept()
    try:
        for student in checked_students(path):
            for message in student.schema_errors:
                kept.add(student.student_id, "", "xsd", message)
            for problem in check_student(student.grades) if student.grades is not None else ():
                kept.add(problem.student, problem.code, problem.rule, problem.message)
    except xmlsafe.XmlDocumentError as exc:
        kept.add("", "", "xml", str(sanitise(exc)))
    return kept.listed()
