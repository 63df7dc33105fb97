"""The seeded synthetic data set every sandbox serves from.

One huvudman (a municipality) with schools; each school is a school unit with an 8-digit
skolenhetskod and a platform GUID. Students and staff have valid personnummer or samordningsnummer
(checked with the same stdnum-backed code the pipelines use), some students have protected
identity, and grades cover every school form of the Betyg API with values its rules allow, plus
diplomas of the Betygsdokument API. The same seed and size always give the same data, so a test
or a school's trial run can be repeated.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass, field, replace

from stdnum import luhn

from skolflow.connectors.betyg.models import platform_now
from skolflow.identity import parse_swedish_identity

HUVUDMAN_ORGNR = "212000-0142"  # a valid municipal organisationsnummer (checked by stdnum)
HUVUDMAN_NAME = "Sandviks kommun"

SECURITY_NONE = "Ingen"
SECURITY_MARKED = "Sekretessmarkering"
SECURITY_PROTECTED = "Skyddad folkbokföring"


@dataclass(frozen=True)
class SchoolUnit:
    id: str  # SS 12000 Organisation.id; the Betyg API shows it as "{id}"
    code: str  # skolenhetskod, 8 digits
    name: str
    school_forms: tuple[str, ...]  # Betyg API Skolform values taught here


@dataclass(frozen=True)
class Person:
    id: str
    civic_no: str  # 12 digits, YYYYMMDDNNNN
    given_name: str
    family_name: str
    role: str  # "student" | "staff"
    school_unit_id: str
    email: str
    security_marking: str = SECURITY_NONE


@dataclass(frozen=True)
class Grade:
    """One Betyg API betygsuppgift: ``kind`` is "kursbetyg" or "ämnesbetyg"."""

    kind: str
    code: str  # kurskod or ämnesförkortning
    value: str
    decided: dt.date
    school_form: str
    school_unit_id: str
    exam: bool = False  # prövning
    group_id: str | None = None
    decided_by_role: str = "LÄRARE"
    decided_by: tuple[str, ...] = ()
    assessment: bool = False  # omdöme (betygsliknande omdöme)
    language: str | None = None
    term: tuple[str, int] | None = None  # ("VT", 2015)
    final: bool = True  # slutbetyg


@dataclass(frozen=True)
class Diploma:
    typ: str  # DokumentTyp
    issued: dt.date
    school_unit_id: str
    school_unit_code: str
    programme_code: str | None = None  # studievägskod
    basic_eligibility: bool | None = None  # grundläggandebehörighet, yrkesexamen only
    courses: tuple[str, ...] = ()


@dataclass
class StudentRecord:
    grades: list[Grade] = field(default_factory=list)
    diplomas: list[Diploma] = field(default_factory=list)
    changed: dt.datetime = field(default_factory=lambda: dt.datetime(2000, 1, 1))


@dataclass
class Dataset:
    huvudman_orgnr: str
    huvudman_name: str
    school_units: list[SchoolUnit]
    persons: list[Person]
    records: dict[str, StudentRecord]  # by student Person.id

    def person(self, person_id: str) -> Person:
        return self._persons_by_id[person_id]

    @property
    def _persons_by_id(self) -> dict[str, Person]:
        cache = self.__dict__.get("_person_index")
        if cache is None or len(cache) != len(self.persons):
            cache = {p.id: p for p in self.persons}
            self.__dict__["_person_index"] = cache
        return cache

    def students(self) -> list[Person]:
        return [p for p in self.persons if p.role == "student"]

    def changed_between(self, start: dt.datetime, end: dt.datetime) -> list[tuple[str, StudentRecord]]:
        """Students whose grades or diplomas changed in [start, end), in a stable order."""
        return [(sid, rec) for sid, rec in self.records.items() if start <= rec.changed < end]

    def set_grades(self, student_id: str, grades: list[Grade], when: dt.datetime | None = None) -> None:
        """Replace a student's grades (add, change or remove), as a teacher's decision would."""
        record = self.records.setdefault(student_id, StudentRecord())
        record.grades = list(grades)
        record.changed = when or platform_now()

    def change_grade(self, student_id: str, index: int, value: str, when: dt.datetime | None = None) -> None:
        record = self.records[student_id]
        grades = list(record.grades)
        grades[index] = replace(grades[index], value=value)
        self.set_grades(student_id, grades, when)

    def remove_grade(self, student_id: str, index: int, when: dt.datetime | None = None) -> None:
        grades = list(self.records[student_id].grades)
        del grades[index]
        self.set_grades(student_id, grades, when)


GIVEN = ["Alva", "Elsa", "Maja", "Wilma", "Saga", "Noah", "Hugo", "William", "Liam", "Elias", "Ali", "Sara"]
FAMILY = ["Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson", "Hassan", "Berg"]

# School forms and what they teach, with values the Betyg API's rules (seed 004) allow.
GY_COURSES = ["MATMAT01a", "SVESVE01", "ENGENG05", "HISHIS01a1", "NAKNAK01a1", "IDRIDR01", "MODFRA02"]
GY_WORK = ["GYARES", "GYARNA", "GYARBF"]
GR_SUBJECTS = ["SV", "MA", "EN", "BI", "FY", "KE", "HI", "GE", "RE", "SH", "TK", "IDH", "MU", "BL", "SL", "HKK"]
VUX_COURSES = ["GRNSVA2", "GRNMAT2", "MATMAT02b", "SVESVE02"]
VUX_ORIENTATION = ["ORIENT1", "ORIDAT1"]
SFI_COURSES = ["SFIKURSB", "SFIKURSC", "SFIKURSD"]
YH_COURSES = ["YHPROG01", "YHDATA02", "YHLIA01"]
GYSAR_COURSES = ["SVESVE01S", "MATMAT01S", "HEMHEM01S"]
GYSAR2002_COURSES = ["SV1201", "MA1201"]

SCHOOL_PLANS: list[tuple[str, tuple[str, ...]]] = [
    ("Norra grundskolan", ("GR",)),
    ("Östra gymnasiet", ("GY",)),
    ("Västra grund- och grundsärskolan", ("GR", "GRSAR")),
    ("Södra gymnasiet med gymnasiesärskola", ("GY", "GYSAR")),
    ("Sandviks lärcentrum (komvux, särvux, sfi)", ("VUX", "SARVUX", "SFI")),
    ("Sandviks yrkeshögskola", ("YH",)),
]

SCALE_AF = ["A", "B", "C", "D", "E", "F", "-"]


def _civic_no(rng: random.Random, birth_year: int, used: set[str], coordination: bool) -> str:
    while True:
        day_of_year = rng.randrange(365)
        born = dt.date(birth_year, 1, 1) + dt.timedelta(days=day_of_year)
        day = born.day + (60 if coordination else 0)
        serial = f"{rng.randrange(1000):03d}"
        base = f"{born:%y%m}{day:02d}{serial}"
        check = luhn.calc_check_digit(base)
        number = f"{birth_year // 100}{base}{check}"
        if number not in used:
            parse_swedish_identity(number)  # the generator must never produce what the rules reject
            used.add(number)
            return number


def _grades_for(rng: random.Random, form: str, unit: SchoolUnit, group_id: str, teacher: str,
                today: dt.date) -> list[Grade]:
    decided = today - dt.timedelta(days=rng.randrange(1, 120))
    common = {"decided": decided, "school_form": form, "school_unit_id": unit.id, "group_id": group_id,
              "decided_by": (teacher,)}
    if form in ("GR", "GRSAR"):
        subjects = rng.sample(GR_SUBJECTS, 4)
        scale = SCALE_AF if form == "GR" else ["A", "B", "C", "D", "E", "1"]
        term = ("VT", decided.year) if decided.month <= 6 else ("HT", decided.year)
        grades = [Grade("ämnesbetyg", s, rng.choice(scale), term=term, **common) for s in subjects]
        if form == "GR" and rng.random() < 0.3:
            grades.append(Grade("ämnesbetyg", "M2FRA", rng.choice(SCALE_AF), language="FRA", term=term, **common))
        return grades
    if form == "GY":
        grades = [Grade("kursbetyg", c, rng.choice(SCALE_AF), **common) for c in rng.sample(GY_COURSES, 4)]
        if rng.random() < 0.4:
            grades.append(Grade("kursbetyg", rng.choice(GY_WORK), rng.choice(["E", "F", "-"]), **common))
        return grades
    if form == "GYSAR":
        if rng.random() < 0.2:  # 2002 curriculum
            return [Grade("kursbetyg", c, rng.choice(["VG", "G", "***"]), **common) for c in GYSAR2002_COURSES]
        grades = [Grade("kursbetyg", c, rng.choice(["A", "B", "C", "D", "E", "***", "-"]), **common)
                  for c in GYSAR_COURSES]
        if rng.random() < 0.3:
            grades.append(Grade("kursbetyg", "GYARSA", rng.choice(["E", "***", "-"]), **common))
        return grades
    if form in ("VUX", "SARVUX"):
        grades = [Grade("kursbetyg", c, rng.choice(SCALE_AF), **common) for c in rng.sample(VUX_COURSES, 2)]
        if rng.random() < 0.4:
            grades.append(Grade("kursbetyg", rng.choice(VUX_ORIENTATION), rng.choice(["G", "IG"]),
                                assessment=True, **common))
        return grades
    if form == "SFI":
        return [Grade("kursbetyg", rng.choice(SFI_COURSES), rng.choice(SCALE_AF), **common)]
    if form == "YH":
        return [Grade("kursbetyg", c, rng.choice(["VG", "G", "IG"]), **common) for c in rng.sample(YH_COURSES, 2)]
    raise ValueError(f"no grade plan for school form {form}")


def _diploma_for(rng: random.Random, form: str, unit: SchoolUnit, grades: list[Grade]) -> Diploma | None:
    courses = tuple(g.code for g in grades)
    issued = max(g.decided for g in grades)
    if form == "GY" and rng.random() < 0.5:
        typ = rng.choice(["GY_EXAMENSBEVIS_HOGSKOLEFORBEREDANDE", "GY_EXAMENSBEVIS_YRKESFORBEREDANDE",
                          "GY_STUDIEBEVIS"])
        eligibility = rng.random() < 0.7 if typ == "GY_EXAMENSBEVIS_YRKESFORBEREDANDE" else None
        return Diploma(typ, issued, unit.id, unit.code, programme_code=rng.choice(["NATNAT", "SAMBET", "BF"]),
                       basic_eligibility=eligibility, courses=courses)
    if form == "VUX" and rng.random() < 0.3:
        return Diploma("VUX_KUNSKAPSINTYG", issued, unit.id, unit.code, courses=courses)
    return None


def generate(students: int = 200, schools: int = 6, seed: int = 2026, today: dt.date | None = None,
             mistakes: int = 0) -> Dataset:
    """A data set of ``students`` students spread over ``schools`` schools (cycling the school plans).

    Every student's grades are marked changed some time in the last ten days, so the default window
    (the last 14 days) of a first run finds them all. ``mistakes`` students get one grade that the
    XSD accepts but the grade scales refuse (as when a teacher picks the wrong scale), so that a demo
    or a test sees rejections with Beda's reasons.
    """
    rng = random.Random(seed)
    uid = lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))  # noqa: E731 - deterministic uuid4
    today = today or dt.date.today()
    changed_base = platform_now()
    units: list[SchoolUnit] = []
    used_codes: set[str] = set()
    for index in range(schools):
        name, forms = SCHOOL_PLANS[index % len(SCHOOL_PLANS)]
        if index >= len(SCHOOL_PLANS):
            name = f"{name} {index // len(SCHOOL_PLANS) + 1}"
        code = f"{rng.randrange(10_000_000, 99_999_999)}"
        while code in used_codes:
            code = f"{rng.randrange(10_000_000, 99_999_999)}"
        used_codes.add(code)
        units.append(SchoolUnit(uid(), code, name, forms))

    used_numbers: set[str] = set()
    persons: list[Person] = []
    teachers: dict[str, str] = {}
    for unit in units:
        for n in range(2):
            civic = _civic_no(rng, rng.randrange(1960, 1995), used_numbers, coordination=False)
            given, family = rng.choice(GIVEN), rng.choice(FAMILY)
            person = Person(uid(), civic, given, family, "staff", unit.id,
                            f"{given}.{family}{n}@{unit.code}.sandvik.se".lower())
            persons.append(person)
            teachers.setdefault(unit.id, person.id)

    records: dict[str, StudentRecord] = {}
    for index in range(students):
        unit = units[index % len(units)]
        form = unit.school_forms[rng.randrange(len(unit.school_forms))]
        birth_year = {"GR": 2012, "GRSAR": 2012, "GY": 2008, "GYSAR": 2008}.get(form, rng.randrange(1975, 2004))
        coordination = rng.random() < 0.05
        civic = _civic_no(rng, birth_year, used_numbers, coordination)
        roll = rng.random()
        marking = SECURITY_PROTECTED if roll < 0.02 else SECURITY_MARKED if roll < 0.04 else SECURITY_NONE
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        student = Person(uid(), civic, given, family, "student", unit.id,
                         f"{civic[2:8]}{index}@elev.sandvik.se", marking)
        persons.append(student)
        group = uid()
        grades = _grades_for(rng, form, unit, group, teachers[unit.id], today)
        diploma = _diploma_for(rng, form, unit, grades)
        changed = changed_base - dt.timedelta(minutes=rng.randrange(60, 10 * 24 * 60))
        records[student.id] = StudentRecord(grades, [diploma] if diploma else [], changed)
    for student_id in rng.sample(sorted(sid for sid, rec in records.items() if rec.grades), min(mistakes, students)):
        record = records[student_id]
        wrong = "F" if record.grades[0].school_form == "GRSAR" else "1"
        record.grades[0] = replace(record.grades[0], value=wrong)
    return Dataset(HUVUDMAN_ORGNR, HUVUDMAN_NAME, units, persons, records)
