"""A Skola24 imitation serving skolflow's Skola24 contract from :mod:`skolflow.sandbox.timetable`.

- ``GET /api/{domain}/export/organisation``: the schools the API key may read, their persons and groups.
- ``GET /api/{domain}/export/lektion?school=…&from=YYYY-MM-DD&to=YYYY-MM-DD`` (V1) and ``…/lektion/v3?…``:
  the school's lessons in [from, to]; an unpublished schedule answers ``published="false"`` and no lessons.

Refusals answer ``<error code="…" message="…"/>``, checked in this order: 401 ``UNAUTHORIZED`` (no
``Authorization: ApiKey <key>`` or an unknown key), 404 ``UNKNOWN_DOMAIN``, 400 ``MISSING_PARAMETER`` /
``INVALID_DATE`` / ``INVALID_RANGE`` (from after to, or more than 93 days), 404 ``UNKNOWN_SCHOOL``, 403
``NO_ACCESS``.

Admin endpoints (never faulted, no key), for tests and the demo:
``PUT /_sandbox/schools/{guid}/published`` ``{"published": false}`` publishes or unpublishes a schedule,
``GET /_sandbox/patterns?school={guid}`` lists the weekly lesson patterns, ``DELETE /_sandbox/patterns/{id}``
removes one (every occurrence disappears), ``PUT /_sandbox/persons/{guid}/email`` ``{"email": …}`` changes
"e-post arbete" in Skola24 only.
"""

from __future__ import annotations

import datetime as dt
import re

from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel

from skolflow.connectors.skola24.codec import encode_error, encode_lessons, encode_organisation
from skolflow.connectors.skola24.models import (
    INVALID_DATE,
    INVALID_RANGE,
    MAX_RANGE_DAYS,
    MISSING_PARAMETER,
    NO_ACCESS,
    UNAUTHORIZED,
    UNKNOWN_DOMAIN,
    UNKNOWN_SCHOOL,
    V1,
    V3,
    ErrorBody,
    Group,
    Lesson,
    LessonExport,
    Organisation,
    Person,
    School,
)
from skolflow.sandbox.faults import ADMIN_PREFIX
from skolflow.sandbox.timetable import ScheduledLesson, Timetable, TimetableGroup

XML_MEDIA_TYPE = "application/xml; charset=utf-8"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Refusal(Exception):
    """A request Skola24 answers with an ``<error>`` body."""

    def __init__(self, status_code: int, code: str, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.error = ErrorBody(code, message)


def _xml(body: bytes, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status_code, media_type=XML_MEDIA_TYPE, headers=headers)


def _api_key(request: Request, timetable: Timetable) -> str:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme != "ApiKey" or key not in timetable.api_keys:
        raise Refusal(401, UNAUTHORIZED, "missing or unknown API key (Authorization: ApiKey <key>)")
    return key


def _known_domain(timetable: Timetable, domain: str) -> None:
    if domain != timetable.domain:
        raise Refusal(404, UNKNOWN_DOMAIN, f"no Skola24 domain {domain!r}")


def _range(request: Request) -> tuple[dt.date, dt.date]:
    values: list[dt.date] = []
    for name in ("from", "to"):
        text = request.query_params.get(name)
        try:
            if text is None or not _DATE.match(text):
                raise ValueError(text)
            values.append(dt.date.fromisoformat(text))
        except ValueError:
            raise Refusal(400, INVALID_DATE, f"parameter '{name}' is {text!r}; expected YYYY-MM-DD") from None
    start, end = values
    if start > end:
        raise Refusal(400, INVALID_RANGE, f"'from' ({start}) is after 'to' ({end})")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise Refusal(400, INVALID_RANGE, f"{start}..{end} is more than {MAX_RANGE_DAYS} days")
    return start, end


def organisation_for(timetable: Timetable, api_key: str, domain: str) -> Organisation:
    """What Export Organisation answers this key: its readable schools and their persons and groups."""
    schools = timetable.readable_schools(api_key, domain)
    if not schools:
        raise Refusal(403, NO_ACCESS, f"the API key may read no school of {domain}")
    readable = {school.guid for school in schools}
    return Organisation(
        domain=domain,
        schools=tuple(School(school.guid, school.name) for school in schools),
        persons=tuple(Person(p.guid, p.role, p.school_guid, personnummer=p.civic_no, email=p.email,
                             signature=p.signature) for p in timetable.persons if p.school_guid in readable),
        groups=tuple(Group(g.guid, g.name, g.kind, g.school_guid, g.members, g.teachers)
                     for g in timetable.groups if g.school_guid in readable),
    )


def wire_lesson(lesson: ScheduledLesson, group: TimetableGroup, signatures: dict[str, str | None]) -> Lesson:
    """A scheduled lesson with every V3 field; the codec writes the V1 subset for V1."""
    return Lesson(
        guid=lesson.guid,
        subject=lesson.subject,
        date=lesson.date,
        start=lesson.start,
        end=lesson.end,
        teacher_signatures=tuple(signatures[teacher] or "" for teacher in lesson.teachers),
        group_names=(group.name,),
        teachers=lesson.teachers,
        groups=(group.guid,),
        rooms=lesson.rooms,
        changed=lesson.changed,
    )


def lessons_for(timetable: Timetable, api_key: str, domain: str, request: Request, version: str) -> LessonExport:
    school_guid = request.query_params.get("school")
    if not school_guid:
        raise Refusal(400, MISSING_PARAMETER, "parameter 'school' (a school GUID) is required")
    start, end = _range(request)
    if timetable.school(school_guid) is None:
        raise Refusal(404, UNKNOWN_SCHOOL, f"no school {school_guid} in {domain}")
    if (domain, school_guid) not in timetable.api_keys[api_key]:
        raise Refusal(403, NO_ACCESS, f"the API key may not read school {school_guid}")
    published = timetable.published[school_guid]
    lessons = timetable.lessons(school_guid, start, end) if published else []
    groups = {group.guid: group for group in timetable.groups}
    signatures = {person.guid: person.signature for person in timetable.persons}
    return LessonExport(domain, school_guid, start, end, published, version,
                        tuple(wire_lesson(lesson, groups[lesson.group_guid], signatures) for lesson in lessons))


class Publication(BaseModel):
    published: bool


class WorkEmail(BaseModel):
    email: str | None


def create_app(timetable: Timetable) -> FastAPI:
    """The Skola24 sandbox over ``timetable`` (build one with :func:`skolflow.sandbox.timetable.build_timetable`)."""
    app = FastAPI(title="Skola24 sandbox (skolflow's model of Export Organisation / Export Lektion V1 and V3)")

    def answer(domain: str, request: Request, version: str | None) -> Response:
        try:
            api_key = _api_key(request, timetable)
            _known_domain(timetable, domain)
            if version is None:
                return _xml(encode_organisation(organisation_for(timetable, api_key, domain)))
            return _xml(encode_lessons(lessons_for(timetable, api_key, domain, request, version)))
        except Refusal as refusal:
            headers = {"WWW-Authenticate": "ApiKey"} if refusal.status_code == 401 else None
            return _xml(encode_error(refusal.error), refusal.status_code, headers)

    @app.get("/api/{domain}/export/organisation")
    def export_organisation(domain: str, request: Request) -> Response:
        return answer(domain, request, None)

    @app.get("/api/{domain}/export/lektion")
    def export_lektion(domain: str, request: Request) -> Response:
        return answer(domain, request, V1)

    @app.get("/api/{domain}/export/lektion/v3")
    def export_lektion_v3(domain: str, request: Request) -> Response:
        return answer(domain, request, V3)

    @app.put(f"{ADMIN_PREFIX}/schools/{{school_guid}}/published", include_in_schema=False)
    def set_published(school_guid: str, publication: Publication) -> dict[str, object]:
        try:
            timetable.set_published(school_guid, publication.published)
        except KeyError:
            raise HTTPException(404, f"no school {school_guid}") from None
        return {"school": school_guid, "published": publication.published}

    @app.get(f"{ADMIN_PREFIX}/patterns", include_in_schema=False)
    def list_patterns(school: str) -> list[dict[str, object]]:
        return [{"id": p.id, "group": p.group_guid, "subject": p.subject, "weekday": p.weekday,
                 "start": p.start.isoformat(), "end": p.end.isoformat()} for p in timetable.patterns_of(school)]

    @app.delete(f"{ADMIN_PREFIX}/patterns/{{pattern_id}}", include_in_schema=False)
    def remove_pattern(pattern_id: str) -> dict[str, object]:
        try:
            removed = timetable.remove_pattern(pattern_id)
        except KeyError:
            raise HTTPException(404, f"no lesson pattern {pattern_id}") from None
        return {"removed": removed.id, "group": removed.group_guid, "subject": removed.subject}

    @app.put(f"{ADMIN_PREFIX}/persons/{{person_guid}}/email", include_in_schema=False)
    def set_email(person_guid: str, email: WorkEmail) -> dict[str, object]:
        try:
            timetable.set_email(person_guid, email.email)
        except KeyError:
            raise HTTPException(404, f"no person {person_guid}") from None
        return {"person": person_guid}

    return app
