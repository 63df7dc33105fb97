"""DNP open-data API sandbox (schemas/dnp/provisioning-data-api.yaml): the data set's huvudman and
school units, and the catalogue of programmes and test activities, all under Skolverket's UUID v5 ids.

Errors are the open-data API's ``Error`` object (``{code, message, timeStamp}``), not LogEntry.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from skolflow.connectors.dnp.opendata import (
    DEFAULT_PROGRAMMES,
    DEFAULT_TEST_ACTIVITIES,
    activity_id,
    organisation_id,
    organisation_number,
    programme_id,
    school_unit_id,
)
from skolflow.sandbox.dataset import Dataset

# The data set's school forms (Betyg API Skolform values) in SS 12000's Code_SchoolType.
SCHOOL_TYPES_OF_FORMS = {"GR": "GR", "GRSAR": "GRAN", "GY": "GY", "GYSAR": "GYAN", "VUX": "VUXGY",
                         "SARVUX": "SARVUX", "SFI": "SFI", "YH": "YH"}
DNP_SCHOOL_TYPES = ("GR", "SP", "SAM", "GY", "VUXGY")


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message,
                         "timeStamp": dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds")}, code)


def create_app(
    dataset: Dataset,
    *,
    activities: Iterable[tuple[str, str, int | None]] = DEFAULT_TEST_ACTIVITIES,
    programmes: Iterable[tuple[str, str]] = DEFAULT_PROGRAMMES,
) -> FastAPI:
    orgnr = organisation_number(dataset.huvudman_orgnr)
    parent = {"id": organisation_id(orgnr), "organisationNumber": orgnr, "displayName": dataset.huvudman_name}
    units: dict[str, dict[str, Any]] = {}
    for unit in dataset.school_units:
        types = sorted({SCHOOL_TYPES_OF_FORMS.get(form, form) for form in unit.school_forms})
        units[school_unit_id(unit.code)] = {
            "id": school_unit_id(unit.code), "displayName": unit.name, "schoolUnitCode": unit.code,
            "schoolTypes": [{"schoolType": t, "dnpStatus": t in DNP_SCHOOL_TYPES} for t in types],
            "status": "Active", "dnpStatus": any(t in DNP_SCHOOL_TYPES for t in types),
            "parentOrganisation": parent}
    organisation = {**parent, "countryCode": "SWE", "organisationType": "Huvudman", "status": "Active"}
    programme_list = [{"id": programme_id(code), "displayName": name, "educationCode": code, "schoolType": "GY",
                       "status": "Active"} for code, name in programmes]
    activity_list = [{"id": activity_id(name), "displayName": name, "activityType": "Provaktivitet",
                      "schoolType": school_type, **({"schoolYear": year} if year is not None else {})}
                     for name, school_type, year in activities]
    app = FastAPI(title="DNP open-data API sandbox")

    def by_id(items: Iterable[dict[str, Any]], item_id: str, what: str) -> Response | dict[str, Any]:
        try:
            uuid.UUID(item_id)
        except ValueError:
            return _error(400, "Invalid parameter: id")
        found = next((item for item in items if item["id"] == item_id), None)
        return found if found is not None else _error(404, f"{what} not found")

    def with_units(expand: bool) -> dict[str, Any]:
        return {**organisation, "schoolUnits": list(units.values())} if expand else organisation

    @app.get("/alive")
    async def alive() -> Response:
        return Response(status_code=200)

    @app.get("/organisations/code/{code}", response_model=None)
    async def organisation_by_code(code: str, request: Request) -> Response | dict[str, Any]:
        if code != orgnr:
            return _error(404, "Organisation not found")
        return with_units(request.query_params.get("expandSchoolUnits") == "true")

    @app.get("/organisations/{organisation_id}", response_model=None)
    async def organisation_by_id(organisation_id: str, request: Request) -> Response | dict[str, Any]:
        found = by_id([organisation], organisation_id, "Organisation")
        return with_units(request.query_params.get("expandSchoolUnits") == "true") if found is organisation else found

    @app.get("/schoolUnits/code/{code}", response_model=None)
    async def school_unit_by_code(code: str) -> Response | dict[str, Any]:
        return units.get(school_unit_id(code)) or _error(404, "School unit not found")

    @app.get("/schoolUnits/{unit_id}", response_model=None)
    async def school_unit(unit_id: str) -> Response | dict[str, Any]:
        return by_id(units.values(), unit_id, "School unit")

    @app.get("/programmes")
    async def list_programmes() -> list[dict[str, Any]]:
        return programme_list

    @app.get("/programmes/code/{code}", response_model=None)
    async def programme_by_code(code: str) -> Response | dict[str, Any]:
        return next((p for p in programme_list if p["educationCode"] == code), None) or _error(
            404, "Programme not found")

    @app.get("/programmes/{programme_id}", response_model=None)
    async def programme(programme_id: str) -> Response | dict[str, Any]:
        return by_id(programme_list, programme_id, "Programme")

    @app.get("/activities")
    async def list_activities() -> list[dict[str, Any]]:
        return activity_list

    @app.get("/activities/{activity_id}", response_model=None)
    async def activity(activity_id: str) -> Response | dict[str, Any]:
        return by_id(activity_list, activity_id, "Activity")

    return app
