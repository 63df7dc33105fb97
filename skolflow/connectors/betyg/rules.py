"""Document rules of the Betyg API beyond its XSD, for ``skolflow validate betyg FILE``.

The XSD types ids, codes and terms as plain strings; the contract's README and its list of subject
codes (``amneskoder.md``) say more, and so do the grade scales (seed 004). Each rule has a stable id:

- ``guid``: elev id, skola, betygsgrupp and beslutsfattare persons are platform GUIDs in braces.
- ``grade-kind``: grundskoleutbildning (GR, GRSAR) is graded per subject, so a kursbetyg there is wrong.
- ``subject-code``: an ämnesförkortning is one of the listed codes; M1/M2/ML carry a language, written
  in the code (``M2DEU``) or in ``<språk>`` beside it (``M2`` + ``DEU``), which the codec reads as one code.
- ``subject-language``: that language is one of Skolverket's språkkoder (ISO 639-3, in capitals) or one of
  the older codes amneskoder.md still accepts, and a ``<språk>`` names the same language as the code.
- ``subject-ungraded``: the grundsärskola subjects marked * (ES, KOM, MOT, VAA, VEU) are never graded.
- ``term-date``: VT is January–July and HT July–December of the termin's year, matching ``datum``.
- ``decided-by``: LÄRARE and REKTOR name at least one person; EXTERN needs none.
- the grade scale rules of :func:`skolflow.connectors.beda.grade_scales.check_grade`, under their own ids.

One mistake gives one problem: a kursbetyg in GR is reported as ``grade-kind`` only (not again as a
gymnasiearbete in the wrong school form), and a bad ämnesförkortning as ``subject-code`` only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from skolflow.connectors.beda.grade_scales import check_grade
from skolflow.connectors.betyg.codec import Source, iter_students
from skolflow.connectors.betyg.models import AMNESBETYG, KURSBETYG, GradeRecord, StudentGrades

GUID = re.compile(r"^\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$")

# amneskoder.md: Skolverket's codes for subjects of grundskoleutbildning.
SUBJECT_CODES = frozenset({
    "BI", "BL", "DA", "EN", "ES", "FY", "GE", "HI", "HKK", "IDH", "JU", "KE", "KOM", "MA", "MOT", "MU", "NO",
    "RE", "SH", "SL", "SO", "SV", "SVA", "TK", "TN", "VAA", "VEU",
})
UNGRADED_SUBJECTS = frozenset({"ES", "KOM", "MOT", "VAA", "VEU"})  # marked * in amneskoder.md
LANGUAGE_SUBJECT = re.compile(r"^(M1|M2|ML)(.*)$")  # moderna språk (M1, M2), modersmål (ML) + språkkod
LANGUAGE_CODE = re.compile(r"^[A-Z]{3}$")
# amneskoder.md: accepted beside Skolverket's list for backward compatibility.
# Skolverket's språkkoder: the ISO 639-3 table, one code a line (see the file's header for its source).
LANGUAGE_CODES_FILE = Path(__file__).with_name("iso-639-3.txt")
OLDER_LANGUAGE_CODES = frozenset({"ARM", "FRE", "CHI", "KUR", "PER", "ROM", "RUM", "GER"})
SUBJECT_GRADED_FORMS = frozenset({"GR", "GRSAR"})
TERM_MONTHS = {"VT": range(1, 8), "HT": range(7, 13)}


@dataclass(frozen=True)
class Problem:
    """A rule a document breaks: ``student`` is the elev id, ``code`` the course/subject code or ""."""

    student: str
    code: str
    rule: str
    message: str


def _guid_problems(student: str, code: str, grade: GradeRecord) -> Iterator[Problem]:
    ids = [("skola", grade.skola)]
    if grade.betygsgrupp is not None:
        ids.append(("betygsgrupp", grade.betygsgrupp))
    ids += [("beslutsfattare/person", person) for person in grade.beslutsfattare]
    for field, value in ids:
        if not GUID.match(value):
            yield Problem(student, code, "guid", f"{field} {value!r} är inte ett GUID inom klamrar {{…}}")


@cache
def language_codes() -> frozenset[str]:
    """Every språkkod a language subject may carry: Skolverket's (ISO 639-3) and the older ones."""
    lines = LANGUAGE_CODES_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#")) | OLDER_LANGUAGE_CODES


def _language_problems(student: str, grade: GradeRecord, subject: str, language: str) -> Iterator[Problem]:
    code = grade.code
    if not language:
        yield Problem(student, code, "subject-code",
                      f"ämnesförkortningen {code!r} saknar språkkod (t.ex. {code}DEU eller <språk>DEU</språk>)")
        return
    if not LANGUAGE_CODE.match(language):
        yield Problem(student, code, "subject-code",
                      f"ämnesförkortningen {code!r} är inte {subject} följt av en språkkod med tre versaler "
                      f"(t.ex. {subject}DEU)")
    elif language not in language_codes():
        yield Problem(student, code, "subject-language",
                      f"språkkoden {language!r} i {code} finns varken bland Skolverkets språkkoder (ISO 639-3) "
                      "eller bland ämneskodernas äldre koder")
    if grade.sprak and grade.sprak != language:
        yield Problem(student, code, "subject-language",
                      f"ämnesförkortningen {code} anger språket {language}, men <språk> anger {grade.sprak!r}")


def _subject_problems(student: str, grade: GradeRecord) -> Iterator[Problem]:
    code = grade.code
    language = LANGUAGE_SUBJECT.match(code)
    if language:
        yield from _language_problems(student, grade, language.group(1), language.group(2))
    elif code not in SUBJECT_CODES:
        yield Problem(student, code, "subject-code", f"ämnesförkortningen {code!r} finns inte i ämneskoderna")
    if code in UNGRADED_SUBJECTS:
        yield Problem(student, code, "subject-ungraded",
                      f"grundsärskoleämnet {code} betygsätts inte, men har betyget {grade.value!r}")
    if grade.termin is not None and (grade.termin.ar != grade.datum.year
                                     or grade.datum.month not in TERM_MONTHS.get(grade.termin.typ, ())):
        yield Problem(student, code, "term-date",
                      f"termin {grade.termin.typ} {grade.termin.ar} stämmer inte med datum {grade.datum.isoformat()}")


def _grade_problems(student: str, grade: GradeRecord) -> Iterator[Problem]:
    code = grade.code
    yield from _guid_problems(student, code, grade)
    wrong_kind = grade.kind == KURSBETYG and grade.skolform in SUBJECT_GRADED_FORMS
    if wrong_kind:
        yield Problem(student, code, "grade-kind",
                      f"kursbetyg {code} i skolform {grade.skolform}: grundskoleutbildning betygsätts med ämnesbetyg")
    if grade.kind == AMNESBETYG:
        yield from _subject_problems(student, grade)
    if grade.beslutsfattare_roll in ("LÄRARE", "REKTOR") and not grade.beslutsfattare:
        yield Problem(student, code, "decided-by",
                      f"beslutsfattare med roll {grade.beslutsfattare_roll} saknar person")
    covered: set[str] = set()  # check_grade rules that would repeat a mistake already reported above
    if wrong_kind:
        covered.add("course-school-form")
    if grade.kind == AMNESBETYG:
        covered.add("course-code")
    for broken in check_grade(grade.skolform, code, grade.value, grade.omdome):
        if broken.rule not in covered:
            yield Problem(student, code, broken.rule, broken.message)


def check_student(student: StudentGrades) -> list[Problem]:
    """Every rule the student's ``<elev>`` breaks, grade by grade in document order."""
    problems: list[Problem] = []
    if not GUID.match(student.student_id):
        problems.append(Problem(student.student_id, "", "guid",
                                f"elev id {student.student_id!r} är inte ett GUID inom klamrar {{…}}"))
    for grade in student.grades:
        problems.extend(_grade_problems(student.student_id, grade))
    return problems


def check_document(source: Source) -> Iterator[Problem]:
    """The problems of a whole Betyg API document, streamed student by student."""
    for student in iter_students(source):
        yield from check_student(student)
