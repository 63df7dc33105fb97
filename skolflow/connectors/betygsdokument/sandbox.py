"""A Betygsdokument API imitation serving the synthetic data set: ``GET /api/skolplattform/betygsdokument``.

Students changed in [from, tom) with diplomas are sent with the latest issued document of each type
(the contract sends only that), ``skola`` as the school unit's GUID in braces beside its
``skolenhetskod``. Window, 400 and 401 behave as in the Betyg API sandbox.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse

from skolflow.connectors.betyg.sandbox import XML_MEDIA_TYPE, BadRequest, braced, unauthorized, window_from_query
from skolflow.connectors.betygsdokument.codec import encode
from skolflow.connectors.betygsdokument.models import GradeDocument
from skolflow.sandbox.dataset import Dataset, Diploma


def wire_document(student_id: str, diploma: Diploma) -> GradeDocument:
    """A data set diploma as the platform sends it."""
    return GradeDocument(
        elev=braced(student_id),
        studievagskod=diploma.programme_code,
        utfardat=diploma.issued,
        skola=braced(diploma.school_unit_id),
        skolenhetskod=diploma.school_unit_code,
        typ=diploma.typ,
        grundlaggandebehorighet=diploma.basic_eligibility,
        kurser=diploma.courses,
    )


def select_documents(dataset: Dataset, start: dt.datetime, end: dt.datetime) -> Iterator[GradeDocument]:
    """The latest document of each type for every student changed in the window, built lazily."""
    for student_id, record in dataset.changed_between(start, end):
        latest: dict[str, Diploma] = {}
        for diploma in record.diplomas:
            if diploma.typ not in latest or diploma.issued >= latest[diploma.typ].issued:
                latest[diploma.typ] = diploma
        for diploma in latest.values():
            yield wire_document(student_id, diploma)


def create_app(dataset: Dataset, token: str | None = None) -> FastAPI:
    """The Betygsdokument API sandbox over ``dataset``; requests must carry ``Bearer <token>`` when one is given."""
    app = FastAPI(title="Betygsdokument API sandbox (PING PONG betygsdokument v2.0)")

    @app.get("/api/skolplattform/betygsdokument")
    def betygsdokument(request: Request) -> Response:
        if (refused := unauthorized(request, token)) is not None:
            return refused
        try:
            start, end = window_from_query(request)
        except BadRequest as exc:
            return PlainTextResponse(str(exc), status_code=400)
        body = io.BytesIO()
        encode(body, select_documents(dataset, start, end), start, end)
        return Response(body.getvalue(), media_type=XML_MEDIA_TYPE)

    return app
