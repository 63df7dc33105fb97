"""A Betyg API imitation serving the synthetic data set: ``GET /api/skolplattform/betyg``.

It answers like the platform: every student whose grades changed in [from, tom), each with their
complete list (a student whose grades were all removed appears as an empty ``<elev id="…"/>``), ids as
platform GUIDs in braces, 400 with a plain-text message for a bad window or schoolType, and 401 when
a token is configured and the request does not carry it.

``schoolType`` narrows both the students and their lists to one school form. ``GYSAR2002`` is the
gymnasiesärskola of the 2002 curriculum (grades VG/G/***), ``GYSAR`` the current one; the wire says
``GYSAR`` for both. School types that give no grades (``PO``, ``FSK``, …) yield no students. A student
without any grade left is sent under every school form their school unit teaches, since the data set no
longer knows which form the removed grades had.

``POST /_sandbox/students/{id}/grades`` changes or removes one grade, as a teacher would, and marks the
student changed now, so tests and the demo can watch full-list semantics carry a removal.

``PUT /_sandbox/betyg/answer`` plants a body (any bytes) that every later valid request is answered
with instead of the data set, until ``DELETE /_sandbox/betyg/answer``: a test can serve what no data set
produces, such as another version's namespace, and watch the pipeline refuse it.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator
from typing import Literal

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from skolflow.connectors.betyg.codec import encode
from skolflow.connectors.betyg.models import AMNESBETYG, SCHOOL_TYPES, GradeRecord, StudentGrades, Termin
from skolflow.sandbox.dataset import GYSAR2002_COURSES, Dataset, Grade

XML_MEDIA_TYPE = "application/xml; charset=utf-8"
_WINDOW_VALUE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")
_GYSAR_2002_ONLY = frozenset({"VG", "G"})


class BadRequest(Exception):
    """A request the platform answers with 400 and a plain-text message."""


def braced(platform_id: str) -> str:
    """How the platform writes a GUID: ``{…}``."""
    return "{" + platform_id + "}"


def window_from_query(request: Request) -> tuple[dt.datetime, dt.datetime]:
    """``from``/``tom`` in the API's yyyy-MM-ddTHH:mm form, or BadRequest naming what is wrong."""
    values: list[dt.datetime] = []
    for name in ("from", "tom"):
        text = request.query_params.get(name)
        if text is None:
            raise BadRequest(f"parameter '{name}' is required (format yyyy-MM-ddTHH:mm)")
        try:
            if not _WINDOW_VALUE.match(text):
                raise ValueError(text)
            values.append(dt.datetime.strptime(text, "%Y-%m-%dT%H:%M"))
        except ValueError:
            raise BadRequest(f"parameter '{name}' is {text!r}; expected format yyyy-MM-ddTHH:mm") from None
    start, end = values
    if start > end:
        raise BadRequest(f"'from' ({start:%Y-%m-%dT%H:%M}) is after 'tom' ({end:%Y-%m-%dT%H:%M})")
    return start, end


def unauthorized(request: Request, token: str | None) -> Response | None:
    """The 401 answer when a token is configured and the request lacks it; None when it may pass."""
    if token is None or request.headers.get("authorization") == f"Bearer {token}":
        return None
    return PlainTextResponse("missing or invalid bearer token", status_code=401,
                             headers={"WWW-Authenticate": "Bearer"})


def wire_grade(grade: Grade) -> GradeRecord:
    """A data set grade as the platform sends it."""
    subject = grade.kind == AMNESBETYG
    return GradeRecord(
        kind=grade.kind,
        value=grade.value,
        datum=grade.decided,
        provning=grade.exam,
        betygsgrupp=braced(grade.group_id) if grade.group_id else None,
        skola=braced(grade.school_unit_id),
        beslutsfattare_roll=grade.decided_by_role,
        beslutsfattare=tuple(braced(person) for person in grade.decided_by),
        skolform=grade.school_form,
        code=grade.code,
        omdome=grade.assessment and not subject,
        sprak=grade.language if subject else None,
        termin=Termin(*grade.term) if subject and grade.term else None,
        slutbetyg=grade.final if subject else None,
    )


def _is_gysar_2002(grade: Grade) -> bool:
    # "***" is on both gymnasiesärskola scales, so the course tells the curricula apart where the value cannot.
    return grade.school_form == "GYSAR" and (grade.value in _GYSAR_2002_ONLY or grade.code in GYSAR2002_COURSES)


def _in_school_type(grade: Grade, school_type: str) -> bool:
    if school_type == "GYSAR2002":
        return _is_gysar_2002(grade)
    if school_type == "GYSAR":
        return grade.school_form == "GYSAR" and not _is_gysar_2002(grade)
    return grade.school_form == school_type


def _unit_teaches(dataset: Dataset, student_id: str, school_type: str) -> bool:
    form = "GYSAR" if school_type == "GYSAR2002" else school_type
    try:
        unit_id = dataset.person(student_id).school_unit_id
    except KeyError:
        return False
    return any(unit.id == unit_id and form in unit.school_forms for unit in dataset.school_units)


def select_students(dataset: Dataset, start: dt.datetime, end: dt.datetime,
                    school_type: str | None = None) -> Iterator[StudentGrades]:
    """The students the API sends for this window and schoolType, built lazily."""
    for student_id, record in dataset.changed_between(start, end):
        grades = record.grades
        if school_type is not None:
            grades = [grade for grade in grades if _in_school_type(grade, school_type)]
            if not grades and (record.grades or not _unit_teaches(dataset, student_id, school_type)):
                continue
        yield StudentGrades(braced(student_id), tuple(wire_grade(grade) for grade in grades))


class GradeEdit(BaseModel):
    """An admin edit of one grade: ``change`` sets ``value``, ``remove`` deletes the grade.

    Any value is taken, so that a test can plant a grade the rules (or even the XSD) reject.
    """

    action: Literal["change", "remove"]
    index: int
    value: str | None = None


def create_app(dataset: Dataset, token: str | None = None) -> FastAPI:
    """The Betyg API sandbox over ``dataset``; requests must carry ``Bearer <token>`` when one is given."""
    app = FastAPI(title="Betyg API sandbox (PING PONG grades v1.1)")
    planted: dict[str, bytes] = {}  # "answer" → the body to send instead of the data set's

    @app.get("/api/skolplattform/betyg")
    def betyg(request: Request) -> Response:
        if (refused := unauthorized(request, token)) is not None:
            return refused
        try:
            start, end = window_from_query(request)
        except BadRequest as exc:
            return PlainTextResponse(str(exc), status_code=400)
        school_type = request.query_params.get("schoolType")
        if school_type is not None and school_type not in SCHOOL_TYPES:
            return PlainTextResponse(
                f"unknown schoolType {school_type!r}; expected one of {', '.join(SCHOOL_TYPES)}", status_code=400)
        if "answer" in planted:
            return Response(planted["answer"], media_type=XML_MEDIA_TYPE)
        body = io.BytesIO()
        encode(body, select_students(dataset, start, end, school_type), start, end)
        return Response(body.getvalue(), media_type=XML_MEDIA_TYPE)

    @app.put("/_sandbox/betyg/answer", include_in_schema=False)
    async def plant_answer(request: Request) -> dict[str, int]:
        planted["answer"] = await request.body()
        return {"bytes": len(planted["answer"])}

    @app.delete("/_sandbox/betyg/answer", include_in_schema=False)
    def clear_answer() -> dict[str, bool]:
        return {"cleared": planted.pop("answer", None) is not None}

    @app.post("/_sandbox/students/{student_id}/grades", include_in_schema=False)
    def edit_grade(student_id: str, edit: GradeEdit) -> dict[str, object]:
        student_id = student_id.strip("{}")
        record = dataset.records.get(student_id)
        if record is None:
            raise HTTPException(404, f"no student {student_id}")
        if not 0 <= edit.index < len(record.grades):
            raise HTTPException(400, f"student {student_id} has {len(record.grades)} grades; no index {edit.index}")
        if edit.action == "change":
            if edit.value is None:
                raise HTTPException(400, "a change needs a value")
            dataset.change_grade(student_id, edit.index, edit.value)
        else:
            dataset.remove_grade(student_id, edit.index)
        return {"student": student_id, "grades": len(record.grades), "changed": record.changed.isoformat()}

    return app
