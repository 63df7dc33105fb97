"""The seeded synthetic data set every sandbox serves from.

One huvudman (a municipality) with schools; each school is a school unit with an 8-digit
skolenhetskod and a platform GUID. Students and staff have valid personnummer or samordningsnummer
(checked with the same stdnum-backed code the pipelines use), some students have protected
identity, and grades cover every school form of the Betyg API with values its rules allow, plus
diplomas of the Betygsdokument API. The same seed and size always give the same data, so a test
or a school's trial run can be repeated.

The SS 12000 side of the same school (what DNP provisioning reads): students carry their school year
(GR, grundsärskola, GY, gymnasiesärskola) and GY students their programme; every staff member has a
duty at their school unit; each school unit has a class (``Klass``) per school form and school year,
and a teaching group (``Undervisning``) per subject or course taught, which is the group each grade
names; each teaching group has an activity with the unit's teachers and the subject or course as
its syllabus. Every person has one eduPersonPrincipalName, in a domain for students and another for
staff, and a postal address (``Folkbokföring``). Tests change the source with :meth:`Dataset.change_person`
(and ``change_duty``, ``change_group``, ``change_activity``), which move the entity's ``meta.modified``, and the
``remove_*`` methods, which record the removal for ``/deletedEntities``.

The *imperfect* data set (``generate(imperfect=True)``, ``skolflow sandbox --imperfect``) is the same data with
the defects real student-information systems have, each on a few records (:class:`Defect`, listed in
:attr:`Dataset.defects`); the SS 12000 sandbox serves them, and also behaves as such servers do (see
:mod:`skolflow.connectors.ss12000.sandbox`). The other sandboxes serve the same people as always.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeVar

from stdnum import luhn

from skolflow.connectors.betyg.models import platform_now
from skolflow.identity import parse_swedish_identity

HUVUDMAN_ORGNR = "212000-0142"  # a valid municipal organisationsnummer (checked by stdnum)
HUVUDMAN_NAME = "Sandviks kommun"

SECURITY_NONE = "Ingen"
SECURITY_MARKED = "Sekretessmarkering"
SECURITY_PROTECTED = "Skyddad folkbokföring"

# When every entity was created, and last changed unless a test changed it: the data set has no history.
CREATED = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

# SS 12000 Code_DutyRole values of the data set's staff, Code_GroupType values of its groups.
TEACHER = "Lärare"
PRINCIPAL = "Rektor"
CLASS = "Klass"
TEACHING = "Undervisning"

# The two eduPersonPrincipalName domains: DNP wants a student's and a staff member's EPPN to differ.
EPPN_DOMAINS = {"student": "elev.sandvik.se", "staff": "sandvik.se"}


@dataclass(frozen=True)
class SchoolUnit:
    id: str  # SS 12000 Organisation.id; the Betyg API shows it as "{id}"
    code: str  # skolenhetskod, 8 digits
    name: str
    school_forms: tuple[str, ...]  # Betyg API Skolform values taught here


@dataclass(frozen=True)
class Address:
    """A person's postal address, as SS 12000's ``Person.addresses[]`` has it; ``country`` None: left out."""

    street: str
    postal_code: str
    locality: str
    country: str | None = "SE"


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
    school_form: str | None = None  # students: the Betyg API school form they are enrolled in
    school_year: int | None = None  # students of GR, GRSAR (1-9), GY, GYSAR (1-3): årskurs
    programme: str | None = None  # GY students: the studievägskod (educationCode)
    eppn: str | None = None  # eduPersonPrincipalName
    address: Address | None = None


@dataclass(frozen=True)
class Duty:
    """A staff member's duty at their school unit (SS 12000 Duty)."""

    id: str
    person_id: str
    school_unit_id: str
    role: str  # Code_DutyRole: TEACHER or PRINCIPAL
    signature: str
    start: dt.date


@dataclass(frozen=True)
class Membership:
    person_id: str
    start: dt.date
    end: dt.date | None = None


@dataclass(frozen=True)
class Group:
    """A class (``kind`` CLASS) or teaching group (TEACHING) of one school form at one school unit."""

    id: str
    name: str
    kind: str
    school_form: str  # Betyg API school form, as SchoolUnit.school_forms
    school_unit_id: str
    start: dt.date
    members: tuple[Membership, ...]
    school_year: int | None = None


@dataclass(frozen=True)
class Activity:
    """Teaching (SS 12000 Activity of type Undervisning): groups and teachers' duties around a syllabus."""

    id: str
    name: str
    school_unit_id: str
    school_form: str
    code: str  # the syllabus: a subject (GR, GRSAR: "MA") or a course code ("MATMAT01a")
    group_ids: tuple[str, ...]
    teacher_duty_ids: tuple[str, ...]
    start: dt.date
    school_year: int | None = None


@dataclass(frozen=True)
class Deletion:
    """An entity removed from the source: ``entity`` is SS 12000's Code_ObjectType ("Person", "Group", …)."""

    entity: str
    id: str
    at: dt.datetime


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


class Defect(StrEnum):
    """What the imperfect data set's SS 12000 source gets wrong, each on a few records.

    The first five are tolerated (the record reaches Beda and DNP as if it were right); the others break what
    skolflow reads, so the record (or, for ``TEACHER_WITHOUT_DUTY``, the teacher link) is refused, with its id,
    the field and the rule.
    """

    ADDRESS_WITHOUT_COUNTRY = "address-without-country"  # persons: `country` is required, never read
    CIVIC_NO_WITH_DASH = "civic-no-with-dash"  # persons: ÅÅMMDD-NNNN instead of 12 digits
    ASSIGNMENT_ROLE_OUTSIDE_ENUM = "assignment-role-outside-enum"  # duties: assignmentRoleType "Lärare"
    NO_CALENDAR_EVENTS_REQUIRED = "no-calendar-events-required"  # activities: a required field left out
    TEACHER_AS_PERSON = "teacher-as-person"  # activities: teachers as {person}, who has a duty at the unit
    SECURITY_MARKING_OUTSIDE_ENUM = "security-marking-outside-enum"  # persons: refused by Beda's and DNP's reads
    CIVIC_NO_UNREADABLE = "civic-no-unreadable"  # persons: ÅÅMMDD-NNNN with a wrong check digit
    NO_GIVEN_NAME = "no-given-name"  # persons: Beda does not need it (delivered), DNP does (refused)
    DUTY_ROLE_OUTSIDE_ENUM = "duty-role-outside-enum"  # duties: dutyRole "Lärarinna", refused by DNP's read
    TEACHER_WITHOUT_DUTY = "teacher-without-duty"  # activities: a {person} teacher with no duty at the unit


TOLERATED = frozenset({Defect.ADDRESS_WITHOUT_COUNTRY, Defect.CIVIC_NO_WITH_DASH, Defect.ASSIGNMENT_ROLE_OUTSIDE_ENUM,
                       Defect.NO_CALENDAR_EVENTS_REQUIRED, Defect.TEACHER_AS_PERSON})


E = TypeVar("E", Person, Duty, Group, Activity)


@dataclass
class Dataset:
    huvudman_orgnr: str
    huvudman_name: str
    school_units: list[SchoolUnit]
    persons: list[Person]
    records: dict[str, StudentRecord]  # by student Person.id
    duties: list[Duty] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    deleted: list[Deletion] = field(default_factory=list)
    modified: dict[str, dt.datetime] = field(default_factory=dict)  # entity id → when a test last changed it
    imperfect: bool = False  # the SS 12000 sandbox behaves as imperfect servers do
    defects: dict[Defect, tuple[str, ...]] = field(default_factory=dict)  # defect → the ids of its records

    def defective(self, entity_id: str) -> set[Defect]:
        return {defect for defect, ids in self.defects.items() if entity_id in ids}

    def person(self, person_id: str) -> Person:
        return self._persons_by_id[person_id]

    def persons_by_id(self) -> Mapping[str, Person]:
        """Every person by id, kept while the list of persons keeps its length (the changes below drop it)."""
        return self._persons_by_id

    def modified_at(self, entity_id: str) -> dt.datetime:
        """The entity's ``meta.modified``: CREATED until a change or removal touches it."""
        return self.modified.get(entity_id, CREATED)

    def duties_of(self, person_id: str) -> list[Duty]:
        return [duty for duty in self.duties if duty.person_id == person_id]

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

    # Changing the SS 12000 source, as a test needs. ``when`` must be timezone-aware (default: now).

    def change_person(self, person_id: str, when: dt.datetime | None = None, **changes: Any) -> Person:
        """Change a person's fields (not the id) and move its ``meta.modified`` to ``when``."""
        changed = self._change(self.persons, person_id, when, changes)
        self.__dict__.pop("_person_index", None)
        return changed

    def change_duty(self, duty_id: str, when: dt.datetime | None = None, **changes: Any) -> Duty:
        return self._change(self.duties, duty_id, when, changes)

    def change_group(self, group_id: str, when: dt.datetime | None = None, **changes: Any) -> Group:
        return self._change(self.groups, group_id, when, changes)

    def change_activity(self, activity_id: str, when: dt.datetime | None = None, **changes: Any) -> Activity:
        return self._change(self.activities, activity_id, when, changes)

    def remove_person(self, person_id: str, when: dt.datetime | None = None) -> None:
        """The person leaves the source: their duties go too, their memberships end (the groups change).

        Their grade record goes as well, so that no sandbox speaks of a person the source lacks.
        """
        at = _aware(when)
        person = self.person(person_id)
        for duty in self.duties_of(person_id):
            self.remove_duty(duty.id, at)
        for group in [g for g in self.groups if any(m.person_id == person_id for m in g.members)]:
            self.change_group(group.id, at, members=tuple(m for m in group.members if m.person_id != person_id))
        self.persons.remove(person)
        self.__dict__.pop("_person_index", None)
        self.records.pop(person_id, None)
        self._deleted("Person", person_id, at)

    def remove_duty(self, duty_id: str, when: dt.datetime | None = None) -> None:
        """The duty ends in the source: the activities it taught lose that teacher."""
        at = _aware(when)
        self.duties.remove(_find(self.duties, duty_id))
        for activity in [a for a in self.activities if duty_id in a.teacher_duty_ids]:
            self.change_activity(activity.id, at,
                                 teacher_duty_ids=tuple(d for d in activity.teacher_duty_ids if d != duty_id))
        self._deleted("Duty", duty_id, at)

    def remove_group(self, group_id: str, when: dt.datetime | None = None) -> None:
        """The group leaves the source; an activity left without groups goes too (it needs at least one)."""
        at = _aware(when)
        self.groups.remove(_find(self.groups, group_id))
        for activity in [a for a in self.activities if group_id in a.group_ids]:
            remaining = tuple(g for g in activity.group_ids if g != group_id)
            if remaining:
                self.change_activity(activity.id, at, group_ids=remaining)
            else:
                self.remove_activity(activity.id, at)
        self._deleted("Group", group_id, at)

    def remove_activity(self, activity_id: str, when: dt.datetime | None = None) -> None:
        at = _aware(when)
        self.activities.remove(_find(self.activities, activity_id))
        self._deleted("Activity", activity_id, at)

    def _change(self, items: list[E], entity_id: str, when: dt.datetime | None, changes: dict[str, Any]) -> E:
        if "id" in changes:
            raise ValueError("an entity's id never changes; remove it and add another")
        index = items.index(_find(items, entity_id))
        items[index] = replace(items[index], **changes)
        self.modified[entity_id] = _aware(when)
        return items[index]

    def _deleted(self, entity: str, entity_id: str, at: dt.datetime) -> None:
        self.deleted.append(Deletion(entity, entity_id, at))
        self.modified.pop(entity_id, None)


def _find(items: list[E], entity_id: str) -> E:
    found = next((item for item in items if item.id == entity_id), None)
    if found is None:
        raise KeyError(entity_id)
    return found


def _aware(when: dt.datetime | None) -> dt.datetime:
    if when is None:
        return dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        raise ValueError("SS 12000 times carry an offset: give a timezone-aware datetime")
    return when


STREETS = ["Storgatan", "Kyrkogatan", "Björkvägen", "Skolgatan", "Lärkstigen", "Hamngatan", "Ekbacken", "Tallvägen"]
LOCALITIES = [("Sandvik", "123"), ("Norrby", "124"), ("Strandå", "125")]
# Courses with national tests, so that DNP provisioning carries the activities that teach them.
TESTED_COURSES = ("MATMAT01a", "SVESVE01", "ENGENG05")

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

GY_PROGRAMMES = ("NATNAT", "SAMBET", "BF")  # studievägskoder
SCHOOL_YEARS: dict[str, range] = {"GR": range(1, 10), "GRSAR": range(1, 10), "GY": range(1, 4), "GYSAR": range(1, 4)}
# How many years before årskurs 1 a student of the form started school: birth year = autumn - offset - year.
SCHOOL_START_AGE = {"GR": 6, "GRSAR": 6, "GY": 15, "GYSAR": 15}
CLASS_NAMES = {"GR": "{year}A", "GRSAR": "{year}S", "GY": "GY{year}", "GYSAR": "GYS{year}"}
SUBJECT_NAMES = {
    "SV": "Svenska", "MA": "Matematik", "EN": "Engelska", "BI": "Biologi", "FY": "Fysik", "KE": "Kemi",
    "HI": "Historia", "GE": "Geografi", "RE": "Religionskunskap", "SH": "Samhällskunskap", "TK": "Teknik",
    "IDH": "Idrott och hälsa", "MU": "Musik", "BL": "Bild", "SL": "Slöjd", "HKK": "Hem- och konsumentkunskap",
    "M2FRA": "Moderna språk, franska",
}


def _civic_no(rng: random.Random, birth_year: int, used: set[str], coordination: bool) -> str:
    while True:
        day_of_year = rng.randrange(365)
        born = dt.date(birth_year, 1, 1) + dt.timedelta(days=day_of_year)
        day = born.day + (60 if coordination else 0)
        serial = f"{rng.randrange(1000):03d}"
        base = f"{born:%y%m}{day:02d}{serial}"
        check = luhn.calc_check_digit(base)
        number = f"{birth_year // 100}{base}{check}"
        if number not in used and serial != "000":  # serial 000 is never issued
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
        return Diploma(typ, issued, unit.id, unit.code, programme_code=rng.choice(GY_PROGRAMMES),
                       basic_eligibility=eligibility, courses=courses)
    if form == "VUX" and rng.random() < 0.3:
        return Diploma("VUX_KUNSKAPSINTYG", issued, unit.id, unit.code, courses=courses)
    return None


def _autumn(today: dt.date) -> int:
    """The year the current school year started (in August)."""
    return today.year if today.month >= 7 else today.year - 1


def _signatures(staff: list[Person]) -> dict[str, str]:
    """Teacher signatures as Skola24 makes them: two letters of each name, a number added when taken."""
    taken: set[str] = set()
    signatures: dict[str, str] = {}
    for person in staff:
        base = (person.given_name[:2] + person.family_name[:2]).upper()
        signature, n = base, 1
        while signature in taken:
            n += 1
            signature = f"{base}{n}"
        taken.add(signature)
        signatures[person.id] = signature
    return signatures


def _teaching_name(year: int | None, code: str) -> str:
    return f"{year}{code}" if year is not None else code


def _activity_name(year: int | None, code: str) -> str:
    return f"{SUBJECT_NAMES.get(code, code)} åk {year}" if year is not None else code


def _organise(dataset: Dataset, uid: Callable[[], str], today: dt.date, duty_starts: dict[str, dt.date]) -> None:
    """Duties, classes, teaching groups and activities of the data set's people.

    The first staff member of a unit is a teacher (the one who decides its grades); the second is
    the principal at every other unit and a teacher elsewhere. A grade's group becomes the teaching
    group of its subject or course: GR and grundsärskola teach per school year (``6MA``), the
    course-based forms per course (``MATMAT01a``).
    """
    start = dt.date(_autumn(today), 8, 18)
    staff = [p for p in dataset.persons if p.role == "staff"]
    signatures = _signatures(staff)
    for unit_index, unit in enumerate(dataset.school_units):
        for n, person in enumerate(p for p in staff if p.school_unit_id == unit.id):
            role = PRINCIPAL if n == 1 and unit_index % 2 == 0 else TEACHER
            dataset.duties.append(Duty(uid(), person.id, unit.id, role, signatures[person.id], duty_starts[person.id]))
    classes: dict[tuple[str, str, int], list[str]] = {}
    teaching: dict[tuple[str, str, int | None, str], list[str]] = {}
    for person in dataset.students():
        form, year = person.school_form or "", person.school_year
        if year is not None:
            classes.setdefault((person.school_unit_id, form, year), []).append(person.id)
        record = dataset.records.get(person.id)
        for grade in record.grades if record else ():
            key = (person.school_unit_id, grade.school_form, year if grade.kind == "ämnesbetyg" else None, grade.code)
            members = teaching.setdefault(key, [])
            if person.id not in members:
                members.append(person.id)
    for (unit_id, form, year), members in classes.items():
        dataset.groups.append(Group(uid(), CLASS_NAMES[form].format(year=year), CLASS, form, unit_id, start,
                                    tuple(Membership(m, start) for m in members), year))
    group_of: dict[tuple[str, str, int | None, str], str] = {}
    for key, members in teaching.items():
        unit_id, form, year, code = key
        group = Group(uid(), _teaching_name(year, code), TEACHING, form, unit_id, start,
                      tuple(Membership(m, start) for m in members), year)
        dataset.groups.append(group)
        group_of[key] = group.id
        teachers = tuple(d.id for d in dataset.duties if d.school_unit_id == unit_id and d.role == TEACHER)
        dataset.activities.append(Activity(uid(), _activity_name(year, code), unit_id, form, code,
                                           (group.id,), teachers, start, year))
    for person in dataset.students():
        record = dataset.records.get(person.id)
        if record:
            record.grades = [replace(g, group_id=group_of[(person.school_unit_id, g.school_form,
                                                             person.school_year if g.kind == "ämnesbetyg" else None,
                                                             g.code)])
                             for g in record.grades]


def _address(rng: random.Random) -> Address:
    locality, postal_prefix = rng.choice(LOCALITIES)
    return Address(f"{rng.choice(STREETS)} {rng.randrange(1, 80)}", f"{postal_prefix} {rng.randrange(10, 99)}",
                   locality)


def _add_defects(dataset: Dataset, rng: random.Random) -> None:
    """Give a few records of each kind each defect, on records DNP provisioning and Betyg → Beda both carry.

    Persons are students of GR and GY (and staff at their units), duties are teachers' duties there, activities
    teach a course with a national test, so that each defect shows in both pipelines' outcomes.
    """
    dnp_forms = ("GR", "GY")
    units = {unit.id for unit in dataset.school_units if set(unit.school_forms) & set(dnp_forms)}
    students = [p.id for p in dataset.students() if p.school_form in dnp_forms and dataset.records.get(p.id)]
    staff = [p.id for p in dataset.persons if p.role == "staff" and p.school_unit_id in units]
    taught = {d for a in dataset.activities for d in a.teacher_duty_ids}
    duties = [d.id for d in dataset.duties if d.school_unit_id in units and d.id in taught and d.person_id in staff]
    activities = [a.id for a in dataset.activities if a.code in TESTED_COURSES and a.teacher_duty_ids]
    for pool in (students, staff, duties, activities):
        rng.shuffle(pool)
    on_defective_duty = {d.person_id for d in dataset.duties if d.id in duties[:3]}
    staff = [person_id for person_id in staff if person_id not in on_defective_duty]
    dataset.defects = {
        Defect.CIVIC_NO_WITH_DASH: (*students[0:3], *staff[0:1]),
        Defect.ADDRESS_WITHOUT_COUNTRY: (*students[3:6], *staff[1:2]),
        Defect.SECURITY_MARKING_OUTSIDE_ENUM: tuple(students[6:7]),
        Defect.CIVIC_NO_UNREADABLE: tuple(students[7:8]),
        Defect.NO_GIVEN_NAME: tuple(students[8:9]),
        Defect.ASSIGNMENT_ROLE_OUTSIDE_ENUM: tuple(duties[0:2]),
        Defect.DUTY_ROLE_OUTSIDE_ENUM: tuple(duties[2:3]),
        Defect.NO_CALENDAR_EVENTS_REQUIRED: tuple(activities[0:2]),
        Defect.TEACHER_AS_PERSON: tuple(activities[2:3]),
        Defect.TEACHER_WITHOUT_DUTY: tuple(activities[3:4]),
    }
    for person_id in dataset.defects[Defect.ADDRESS_WITHOUT_COUNTRY]:
        person = dataset.person(person_id)
        dataset.persons[dataset.persons.index(person)] = replace(
            person, address=replace(person.address, country=None) if person.address else None)
    dataset.__dict__.pop("_person_index", None)
    dataset.imperfect = True


def generate(students: int = 200, schools: int = 6, seed: int = 2026, today: dt.date | None = None,
             mistakes: int = 0, imperfect: bool = False) -> Dataset:
    """A data set of ``students`` students spread over ``schools`` schools (cycling the school plans).

    Every student's grades are marked changed some time in the last ten days, so the default window
    (the last 14 days) of a first run finds them all. ``mistakes`` students get one grade that the
    XSD accepts but the grade scales refuse (as when a teacher picks the wrong scale), so that a demo
    or a test sees rejections with Beda's reasons.

    What SS 12000 adds (school years, programmes, duties, groups, activities, addresses) is drawn from
    generators of its own seeded from ``seed``, so the people, grades and diplomas of a seed are what they
    were before SS 12000 had them, except that a student's birth year now fits their school year.
    ``imperfect``: the SS 12000 source gets :class:`Defect` s on a few records (drawn from yet another
    generator), and its sandbox the manners of imperfect servers.
    """
    rng = random.Random(seed)
    uid = lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))  # noqa: E731 - deterministic uuid4
    school = random.Random(f"{seed}:ss12000")
    school_uid = lambda: str(uuid.UUID(int=school.getrandbits(128), version=4))  # noqa: E731
    today = today or dt.date.today()
    autumn = _autumn(today)
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
    duty_starts: dict[str, dt.date] = {}
    for unit in units:
        for n in range(2):
            civic = _civic_no(rng, rng.randrange(1960, 1995), used_numbers, coordination=False)
            given, family = rng.choice(GIVEN), rng.choice(FAMILY)
            person_id = uid()
            person = Person(person_id, civic, given, family, "staff", unit.id,
                            f"{given}.{family}{n}@{unit.code}.sandvik.se".lower(),
                            eppn=f"{person_id}@{EPPN_DOMAINS['staff']}")
            persons.append(person)
            teachers.setdefault(unit.id, person.id)
            duty_starts[person_id] = dt.date(autumn - school.randrange(0, 10), 8, 1)

    records: dict[str, StudentRecord] = {}
    for index in range(students):
        unit = units[index % len(units)]
        form = unit.school_forms[rng.randrange(len(unit.school_forms))]
        school_year = school.choice(SCHOOL_YEARS[form]) if form in SCHOOL_YEARS else None
        adult_birth_year = rng.randrange(1975, 2004)  # drawn for every student, as always, to keep the seed's people
        birth_year = autumn - SCHOOL_START_AGE[form] - school_year if school_year is not None else adult_birth_year
        coordination = rng.random() < 0.05
        civic = _civic_no(rng, birth_year, used_numbers, coordination)
        roll = rng.random()
        marking = SECURITY_PROTECTED if roll < 0.02 else SECURITY_MARKED if roll < 0.04 else SECURITY_NONE
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        student_id = uid()
        group = uid()  # the grades' group until _organise gives them their teaching group
        grades = _grades_for(rng, form, unit, group, teachers[unit.id], today)
        diploma = _diploma_for(rng, form, unit, grades)
        programme = None
        if form == "GY":
            programme = diploma.programme_code if diploma and diploma.programme_code else school.choice(GY_PROGRAMMES)
        persons.append(Person(student_id, civic, given, family, "student", unit.id,
                              f"{civic[2:8]}{index}@elev.sandvik.se", marking, school_form=form,
                              school_year=school_year, programme=programme,
                              eppn=f"{student_id}@{EPPN_DOMAINS['student']}"))
        changed = changed_base - dt.timedelta(minutes=rng.randrange(60, 10 * 24 * 60))
        records[student_id] = StudentRecord(grades, [diploma] if diploma else [], changed)
    for student_id in rng.sample(sorted(sid for sid, rec in records.items() if rec.grades), min(mistakes, students)):
        record = records[student_id]
        wrong = "F" if record.grades[0].school_form == "GRSAR" else "1"
        record.grades[0] = replace(record.grades[0], value=wrong)
    addresses = random.Random(f"{seed}:addresses")
    persons = [replace(person, address=_address(addresses)) for person in persons]
    dataset = Dataset(HUVUDMAN_ORGNR, HUVUDMAN_NAME, units, persons, records)
    _organise(dataset, school_uid, today, duty_starts)
    if imperfect:
        _add_defects(dataset, random.Random(f"{seed}:imperfect"))
    return dataset
