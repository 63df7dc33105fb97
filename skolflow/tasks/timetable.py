"""Skola24 → Haldor: matching persons and turning lessons into schedule positions. Pure functions.

Seed 002: a school identifies people either by work e-mail ("e-post arbete") or by personnummer, and
the same key must exist in both systems. Matching is skolflow's job, so e-mail is compared trimmed and
case-folded, and personnummer in its 12-digit form whatever way either system wrote it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from skolflow.connectors.haldor.models import Group as HaldorGroup
from skolflow.connectors.haldor.models import PersonRef, Position, User
from skolflow.connectors.skola24.models import Group, Lesson, Person
from skolflow.identity import InvalidIdentity, mask, mask_email, parse_swedish_identity
from skolflow.tasks.diff import content_hash


class MatchKey(StrEnum):
    EMAIL = "email"
    PERSONNUMMER = "personnummer"


def email_key(value: str | None) -> str | None:
    return (value.strip().casefold() or None) if value else None


def personnummer_key(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return parse_swedish_identity(value).number
    except InvalidIdentity:
        return None


@dataclass(frozen=True)
class Unmatched:
    """A person of one system the other does not know, as an admin sees it (masked)."""

    person: str  # Skola24 GUID, or "Haldor" for a Haldor user no Skola24 person matched
    role: str
    shown: str
    reason: str


@dataclass
class Matching:
    refs: dict[str, PersonRef] = field(default_factory=dict)  # Skola24 person GUID → Haldor reference
    unmatched: list[Unmatched] = field(default_factory=list)


def match_persons(persons: Iterable[Person], users: Iterable[User], key: MatchKey) -> Matching:
    normalise = email_key if key is MatchKey.EMAIL else personnummer_key
    known = {k for user in users if (k := normalise(user.email if key is MatchKey.EMAIL else user.personnummer))}
    matching = Matching()
    for person in persons:
        raw = person.email if key is MatchKey.EMAIL else person.personnummer
        value = normalise(raw)
        shown = mask_email(raw) if key is MatchKey.EMAIL else mask(raw)
        if value is None:
            what = "e-post arbete" if key is MatchKey.EMAIL else "giltigt personnummer"
            matching.unmatched.append(Unmatched(person.guid, person.role, shown, f"saknar {what} i Skola24"))
        elif value not in known:
            matching.unmatched.append(Unmatched(person.guid, person.role, shown, "finns inte i Haldor"))
        else:
            matching.refs[person.guid] = (PersonRef(email=value) if key is MatchKey.EMAIL
                                          else PersonRef(personnummer=value))
    return matching


@dataclass(frozen=True)
class UnplacedLesson:
    lesson: str
    date: dt.date
    subject: str
    reason: str


def positions_for(lessons: Iterable[Lesson], groups: Mapping[str, Group], refs: Mapping[str, PersonRef]
                  ) -> tuple[list[Position], list[UnplacedLesson]]:
    """One position per lesson. A lesson none of whose teachers matched is reported, not sent
    (Haldor cannot place a lesson without a teacher); the rest go through with whoever matched."""
    positions: list[Position] = []
    unplaced: list[UnplacedLesson] = []
    for lesson in lessons:
        teachers = [refs[t] for t in lesson.teachers if t in refs]
        if not teachers:
            reason = ("ingen lärare på lektionen" if not lesson.teachers
                      else "ingen av lektionens lärare kunde matchas mot Haldor")
            unplaced.append(UnplacedLesson(lesson.guid, lesson.date, lesson.subject, reason))
            continue
        lesson_groups = [groups[g] for g in lesson.groups if g in groups]
        unknown_groups = [g for g in lesson.groups if g not in groups]
        if unknown_groups:
            unplaced.append(UnplacedLesson(lesson.guid, lesson.date, lesson.subject,
                                           f"grupp {', '.join(unknown_groups)} finns inte i Export Organisation"))
            continue
        positions.append(Position(
            external_id=lesson.guid, subject=lesson.subject, date=lesson.date,
            start=lesson.start.strftime("%H:%M"), end=lesson.end.strftime("%H:%M"), rooms=list(lesson.rooms),
            teachers=teachers,
            groups=[HaldorGroup(external_id=g.guid, name=g.name, members=[refs[m] for m in g.members if m in refs])
                    for g in lesson_groups]))
    return positions, unplaced


def day_hashes(positions: Iterable[Position], start: dt.date, end: dt.date) -> dict[dt.date, str]:
    """A content hash per day of [start, end]; a day without lessons hashes like an empty list."""
    by_day: dict[dt.date, list[dict[str, object]]] = defaultdict(list)
    for position in positions:
        by_day[position.date].append(position.model_dump(mode="json", by_alias=True))
    days = (start + dt.timedelta(days=n) for n in range((end - start).days + 1))
    return {day: content_hash(sorted(by_day[day], key=lambda p: str(p["externalId"]))) for day in days}


def changed_ranges(current: Mapping[dt.date, str], previous: Mapping[dt.date, str]) -> list[tuple[dt.date, dt.date]]:
    """Contiguous runs of days whose lessons differ from what Haldor last accepted.

    Haldor replaces a date range whole, so sending only these days pushes exactly what changed —
    including a day whose last lesson was removed in Skola24, which is sent empty.
    """
    empty = content_hash([])
    changed = sorted(day for day, digest in current.items() if digest != previous.get(day, empty))
    ranges: list[tuple[dt.date, dt.date]] = []
    for day in changed:
        if ranges and ranges[-1][1] + dt.timedelta(days=1) == day:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges
