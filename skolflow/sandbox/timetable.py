"""Skola24's side of the synthetic data set: schools, persons, groups and a weekly timetable.

It is derived from a :class:`~skolflow.sandbox.dataset.Dataset`, so that the Skola24 sandbox speaks of the
same people as every other sandbox: a person's Skola24 GUID is their data set id, their personnummer and
"e-post arbete" are the data set's. That is what lets a test see a Skola24 → Haldor match succeed, and
fail on purpose after :meth:`Timetable.set_email` changes an address in Skola24 only.

Everything is deterministic: school and group GUIDs are uuid5 of the unit id and group name, a lesson's
GUID is uuid5 of its group, weekly pattern and date, so the same lesson has the same GUID in every call
and every run. The huvudman has one Skola24 domain (``sandvik.skola24.se``); each school has a
``published`` flag, since Skola24 yields lessons only for a published schedule (seed 002).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from skolflow.connectors.skola24.models import GROUP_CLASS, GROUP_TEACHING
from skolflow.sandbox.dataset import Dataset, Person

NAMESPACE = uuid.UUID("6c1f0c2e-5a0b-5d3e-9a61-5b8c2f0d2424")  # fixed, so GUIDs never change between runs
DEFAULT_DOMAIN = "sandvik.skola24.se"  # the domain of the data set's huvudman, Sandviks kommun
DEFAULT_API_KEY = "sandbox-skola24-key"  # a public test value of the sandbox, not a secret
PATTERNS_CHANGED = dt.datetime(2025, 8, 1, 7, 0)  # when the sandbox's schedule was last edited in Skola24
CLASS_SIZE = 15

SLOTS: tuple[tuple[dt.time, dt.time], ...] = (
    (dt.time(8, 15), dt.time(9, 15)),
    (dt.time(9, 30), dt.time(10, 30)),
    (dt.time(10, 45), dt.time(11, 45)),
    (dt.time(12, 45), dt.time(13, 45)),
    (dt.time(14, 0), dt.time(15, 0)),
)
CLASS_SLOTS = 3  # a class has the first three slots of each weekday; the teaching group meets in the last
SUBJECTS = ("Svenska", "Matematik", "Engelska", "Idrott och hälsa", "Historia", "Biologi", "Samhällskunskap")
CO_TAUGHT = "Idrott och hälsa"  # taught by every teacher of the school, so lessons with several teachers exist
LANGUAGE_SUBJECT = "Moderna språk"



def stable_guid(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "|".join(parts)))


@dataclass(frozen=True)
class TimetableSchool:
    guid: str
    name: str
    unit_id: str  # the data set's SchoolUnit.id


@dataclass(frozen=True)
class TimetablePerson:
    """A person as Skola24 holds them; ``email`` is "e-post arbete", None when the field is empty."""

    guid: str
    civic_no: str = field(repr=False)
    email: str | None = field(repr=False)
    role: str  # "student" | "staff"
    school_guid: str
    signature: str | None = None  # staff only: how Export Lektion V1 names a teacher


@dataclass(frozen=True)
class TimetableGroup:
    guid: str
    name: str
    kind: str  # GROUP_CLASS | GROUP_TEACHING
    school_guid: str
    members: tuple[str, ...]  # student GUIDs
    teachers: tuple[str, ...]  # staff GUIDs


@dataclass(frozen=True)
class LessonPattern:
    """A lesson that recurs every week on ``weekday`` (0 = Monday)."""

    id: str
    group_guid: str
    subject: str
    weekday: int
    start: dt.time
    end: dt.time
    teachers: tuple[str, ...]
    rooms: tuple[str, ...]
    changed: dt.datetime = PATTERNS_CHANGED


@dataclass(frozen=True)
class ScheduledLesson:
    """One occurrence of a pattern on a date."""

    guid: str
    pattern_id: str
    group_guid: str
    subject: str
    date: dt.date
    start: dt.time
    end: dt.time
    teachers: tuple[str, ...]
    rooms: tuple[str, ...]
    changed: dt.datetime


@dataclass
class Timetable:
    """One Skola24 domain's schools, persons, groups, weekly patterns, publication flags and API keys."""

    domain: str
    schools: list[TimetableSchool]
    persons: list[TimetablePerson]
    groups: list[TimetableGroup]
    patterns: list[LessonPattern]
    published: dict[str, bool]  # by school GUID
    api_keys: dict[str, frozenset[tuple[str, str]]]  # key → the (domain, school GUID) pairs it may read

    def school(self, guid: str) -> TimetableSchool | None:
        return next((school for school in self.schools if school.guid == guid), None)

    def school_of_unit(self, unit_id: str) -> TimetableSchool:
        return next(school for school in self.schools if school.unit_id == unit_id)

    def person(self, guid: str) -> TimetablePerson:
        return next(person for person in self.persons if person.guid == guid)

    def group(self, guid: str) -> TimetableGroup:
        return next(group for group in self.groups if group.guid == guid)

    def readable_schools(self, api_key: str, domain: str) -> list[TimetableSchool]:
        """The schools of ``domain`` the key may read, in the timetable's order."""
        access = self.api_keys.get(api_key, frozenset())
        return [school for school in self.schools if (domain, school.guid) in access]

    def patterns_of(self, school_guid: str) -> list[LessonPattern]:
        groups = {group.guid for group in self.groups if group.school_guid == school_guid}
        return [pattern for pattern in self.patterns if pattern.group_guid in groups]

    def lessons(self, school_guid: str, start: dt.date, end: dt.date) -> list[ScheduledLesson]:
        """Every lesson of the school in [start, end], ordered by date and time; ignores ``published``."""
        by_weekday: dict[int, list[LessonPattern]] = {}
        for pattern in self.patterns_of(school_guid):
            by_weekday.setdefault(pattern.weekday, []).append(pattern)
        lessons: list[ScheduledLesson] = []
        day = start
        while day <= end:
            for pattern in sorted(by_weekday.get(day.weekday(), ()), key=lambda p: (p.start, p.id)):
                lessons.append(ScheduledLesson(
                    guid=stable_guid(pattern.group_guid, pattern.id, day.isoformat()),
                    pattern_id=pattern.id, group_guid=pattern.group_guid, subject=pattern.subject, date=day,
                    start=pattern.start, end=pattern.end, teachers=pattern.teachers, rooms=pattern.rooms,
                    changed=pattern.changed))
            day += dt.timedelta(days=1)
        return lessons

    def remove_pattern(self, pattern_id: str) -> LessonPattern:
        """Delete a weekly lesson from the schedule (every occurrence disappears); KeyError when unknown."""
        for index, pattern in enumerate(self.patterns):
            if pattern.id == pattern_id:
                return self.patterns.pop(index)
        raise KeyError(pattern_id)

    def set_published(self, school_guid: str, published: bool) -> None:
        if school_guid not in self.published:
            raise KeyError(school_guid)
        self.published[school_guid] = published

    def set_email(self, person_guid: str, email: str | None) -> None:
        """Change "e-post arbete" in Skola24 only, as when a school types it in wrong or leaves it empty."""
        for index, person in enumerate(self.persons):
            if person.guid == person_guid:
                self.persons[index] = replace(person, email=email)
                return
        raise KeyError(person_guid)

    def add_api_key(self, api_key: str, access: Iterable[tuple[str, str]]) -> None:
        """Give ``api_key`` read access to these (domain, school GUID) pairs, replacing what it had."""
        self.api_keys[api_key] = frozenset(access)


def _signatures(staff: list[Person]) -> dict[str, str]:
    """Skola24-style teacher signatures: two letters of each name, a number added when taken."""
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


def _class_patterns(group_guid: str, index: int, staff: tuple[str, ...], room: str) -> list[LessonPattern]:
    patterns: list[LessonPattern] = []
    for weekday in range(5):
        for slot in range(CLASS_SLOTS):
            subject = SUBJECTS[(weekday * CLASS_SLOTS + slot + index) % len(SUBJECTS)]
            if subject == CO_TAUGHT:
                teachers, rooms = staff, ("Idrottshallen",)
            else:
                teachers = (staff[(weekday + slot + index) % len(staff)],) if staff else ()
                rooms = (room,)
            start, end = SLOTS[slot]
            patterns.append(LessonPattern(f"{group_guid}:{weekday}:{start:%H%M}", group_guid, subject, weekday,
                                          start, end, teachers, rooms))
    return patterns


def build_timetable(dataset: Dataset, domain: str = DEFAULT_DOMAIN, api_key: str = DEFAULT_API_KEY) -> Timetable:
    """The timetable of ``dataset``: every school published and readable with ``api_key``.

    Students of a school are split into classes of at most CLASS_SIZE, each taught by the school's
    staff three lessons a day; every other student of the school also joins a language teaching group
    that meets on Wednesday afternoons, so some students are in two groups.
    """
    schools = [TimetableSchool(stable_guid("school", unit.id), unit.name, unit.id) for unit in dataset.school_units]
    school_by_unit = {school.unit_id: school.guid for school in schools}
    signatures = _signatures([p for p in dataset.persons if p.role == "staff"])
    persons = [TimetablePerson(p.id, p.civic_no, p.email, p.role, school_by_unit[p.school_unit_id],
                               signatures.get(p.id)) for p in dataset.persons]
    groups: list[TimetableGroup] = []
    patterns: list[LessonPattern] = []
    for number, school in enumerate(schools, start=1):
        students = tuple(p.guid for p in persons if p.school_guid == school.guid and p.role == "student")
        staff = tuple(p.guid for p in persons if p.school_guid == school.guid and p.role == "staff")
        for index, first in enumerate(range(0, len(students), CLASS_SIZE)):
            name = f"Klass {chr(ord('A') + index)}"
            guid = stable_guid("group", school.guid, name)
            groups.append(TimetableGroup(guid, name, GROUP_CLASS, school.guid, students[first:first + CLASS_SIZE],
                                         staff))
            patterns += _class_patterns(guid, index, staff, f"Sal {number}{index + 1:02d}")
        if students:
            name = "Språkval"
            guid = stable_guid("group", school.guid, name)
            teachers = staff[:1]
            groups.append(TimetableGroup(guid, name, GROUP_TEACHING, school.guid, students[::2], teachers))
            start, end = SLOTS[-1]
            patterns.append(LessonPattern(f"{guid}:2:{start:%H%M}", guid, LANGUAGE_SUBJECT, 2, start, end, teachers,
                                          (f"Sal {number}99",)))
    return Timetable(
        domain=domain,
        schools=schools,
        persons=persons,
        groups=groups,
        patterns=patterns,
        published={school.guid: True for school in schools},
        api_keys={api_key: frozenset((domain, school.guid) for school in schools)},
    )
