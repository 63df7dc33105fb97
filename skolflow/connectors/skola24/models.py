"""Wire models of skolflow's Skola24 contract (``schemas/skola24/``): Export Organisation and Export Lektion V1/V3.

The contract's rules that both the client and the sandbox keep live here once: the longest date range
one Export Lektion call may ask for, the roles and group types, and the error codes.

Export Lektion V1 names a lesson's teachers by signature and its groups by name only; V3 adds the
teachers' and groups' GUIDs, the rooms and a ``changed`` time per lesson. A :class:`Lesson` read from V1
therefore has empty ``teachers``, ``groups`` and ``rooms`` and no ``changed``; a V1 consumer joins
teachers to persons through :attr:`Person.signature`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

MAX_RANGE_DAYS = 93  # one Export Lektion call covers at most this many days, from and to included

ROLE_STUDENT = "student"
ROLE_STAFF = "staff"
ROLES = (ROLE_STUDENT, ROLE_STAFF)

GROUP_CLASS = "class"
GROUP_TEACHING = "teachingGroup"
GROUP_TYPES = (GROUP_CLASS, GROUP_TEACHING)

V1 = "v1"
V3 = "v3"

UNAUTHORIZED = "UNAUTHORIZED"  # 401: no API key, or one Skola24 does not know
UNKNOWN_DOMAIN = "UNKNOWN_DOMAIN"  # 404
UNKNOWN_SCHOOL = "UNKNOWN_SCHOOL"  # 404: no school with this GUID in the domain
NO_ACCESS = "NO_ACCESS"  # 403: the key may not read this school (or any school of the domain)
MISSING_PARAMETER = "MISSING_PARAMETER"  # 400
INVALID_DATE = "INVALID_DATE"  # 400: from/to missing or not YYYY-MM-DD
INVALID_RANGE = "INVALID_RANGE"  # 400: from after to, or more than MAX_RANGE_DAYS days
ERROR_CODES = (UNAUTHORIZED, UNKNOWN_DOMAIN, UNKNOWN_SCHOOL, NO_ACCESS, MISSING_PARAMETER, INVALID_DATE,
               INVALID_RANGE)


@dataclass(frozen=True)
class School:
    guid: str
    name: str


@dataclass(frozen=True)
class Person:
    """A student or member of staff. ``email`` is the field "e-post arbete"; either may be missing in Skola24.

    Personnummer and e-mail are kept out of ``repr`` so that a logged Person never shows them.
    """

    guid: str
    role: str  # ROLE_STUDENT | ROLE_STAFF
    school: str  # school GUID
    personnummer: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)
    signature: str | None = None  # staff: the teacher's signature, how Export Lektion V1 names them


@dataclass(frozen=True)
class Group:
    guid: str
    name: str
    type: str  # GROUP_CLASS | GROUP_TEACHING
    school: str  # school GUID
    members: tuple[str, ...] = ()  # person GUIDs of students
    teachers: tuple[str, ...] = ()  # person GUIDs of staff


@dataclass(frozen=True)
class Organisation:
    """An Export Organisation answer: only the schools the API key may read, with their persons and groups."""

    domain: str
    schools: tuple[School, ...]
    persons: tuple[Person, ...]
    groups: tuple[Group, ...]


@dataclass(frozen=True)
class Lesson:
    """One lesson on one date.

    ``teacher_signatures`` and ``group_names`` come in V1 and V3 (in V3 in the order of ``teachers`` and
    ``groups``, one for each); ``teachers``, ``groups``, ``rooms`` and ``changed`` come in V3 only.
    """

    guid: str
    subject: str
    date: dt.date
    start: dt.time
    end: dt.time
    teacher_signatures: tuple[str, ...] = ()
    group_names: tuple[str, ...] = ()
    teachers: tuple[str, ...] = ()  # V3: person GUIDs
    groups: tuple[str, ...] = ()  # V3: group GUIDs
    rooms: tuple[str, ...] = ()  # V3
    changed: dt.datetime | None = None  # V3: when the lesson was last edited in Skola24


@dataclass(frozen=True)
class LessonExport:
    """An Export Lektion answer for one school and [start, end]; an unpublished schedule has no lessons."""

    domain: str
    school: str
    start: dt.date
    end: dt.date
    published: bool
    version: str  # V1 | V3
    lessons: tuple[Lesson, ...] = ()


@dataclass(frozen=True)
class ErrorBody:
    """The ``<error code="…" message="…"/>`` document of a refused request."""

    code: str
    message: str
