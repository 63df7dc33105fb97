"""DNP's open-data API: Skolverket's ids for organisations, school units, programmes and test activities.

Skolverket derives every id as a UUID v5 in the nil namespace (schemas/dnp/provisioning-data-api.yaml)
over one attribute: ``organisationNumber`` for an Organisation, ``schoolUnitCode`` for a SchoolUnit,
``educationCode`` for a Programme and ``displayName`` for a test Activity (e.g. ``MATMAT01`` →
``505c5ee0-7be4-560d-9c27-10ab0d96ac9a``). The pipeline computes them the same way, so it maps codes
to ids exactly as Skolverket does; the client is there to check that Skolverket knows them.

The catalogue of test activities and programmes below is skolflow's illustration for the sandbox (a
few of Skolverket's test activities), not Skolverket's list: the real one is read with
:meth:`OpenDataClient.activities`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from skolflow.connectors.http import HttpSettings, RemoteError, TransientError, build_client, request

SYSTEM = "dnp-open-data"
PRODUCTION_URL = "https://api.skolverket.se/provtjanst/open-data/v1"
VERIFICATION_URL = "https://apigw-pre.skolverket.se/provtjanst/verifieringstest/open-data/v1"
NIL_NAMESPACE = uuid.UUID(int=0)

# (displayName, schoolType, schoolYear): ämne + årskurs for GR/SP/SAM, a course for GY/VUXGY.
DEFAULT_TEST_ACTIVITIES: tuple[tuple[str, str, int | None], ...] = (
    ("SV åk 3", "GR", 3), ("MA åk 3", "GR", 3),
    ("SV åk 6", "GR", 6), ("MA åk 6", "GR", 6), ("EN åk 6", "GR", 6),
    ("SV åk 9", "GR", 9), ("MA åk 9", "GR", 9), ("EN åk 9", "GR", 9),
    ("MATMAT01", "GY", None), ("MATMAT01a", "GY", None), ("MATMAT02a", "GY", None),
    ("SVESVE01", "GY", None), ("SVESVE03", "GY", None), ("ENGENG05", "GY", None), ("ENGENG06", "GY", None),
)
DEFAULT_PROGRAMMES: tuple[tuple[str, str], ...] = (
    ("EKJURV", "Ekonomiprogrammet, Juridik, särskild variant inom det estetiska området"),
    ("NATNAT", "Naturvetenskapsprogrammet, Naturvetenskap"),
    ("SAMBET", "Samhällsvetenskapsprogrammet, Beteendevetenskap"),
    ("BF", "Barn- och fritidsprogrammet"),
)


def skolverket_id(code: str) -> str:
    """Skolverket's id for a code: ``uuid5(nil UUID, code)``."""
    return str(uuid.uuid5(NIL_NAMESPACE, code))


def organisation_number(orgnr: str) -> str:
    """The open-data form of an organisationsnummer: ten digits, no dash (``5567044268``)."""
    digits = re.sub(r"\D", "", orgnr)
    return digits[-10:]


def organisation_id(orgnr: str) -> str:
    return skolverket_id(organisation_number(orgnr))


def school_unit_id(school_unit_code: str) -> str:
    return skolverket_id(school_unit_code)


def programme_id(education_code: str) -> str:
    return skolverket_id(education_code)


def activity_id(display_name: str) -> str:
    return skolverket_id(display_name)


class _Wire(BaseModel):
    """Attributes carry the wire's camelCase names as the YAML spells them: these models are only read."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")


Status = Literal["New", "Active", "Expired"]


class SchoolYear(_Wire):
    schoolYear: int | None = None
    dnpStatus: bool | None = None


class SchoolType(_Wire):
    schoolType: str | None = None
    dnpStatus: bool | None = None
    schoolYears: list[SchoolYear] | None = None


class OrganisationReference(_Wire):
    id: str
    organisationNumber: str
    displayName: str | None = None


class SchoolUnit(_Wire):
    id: str
    displayName: str
    schoolUnitCode: str
    schoolTypes: list[SchoolType] | None = None
    municipalityCode: str | None = None
    municipalityName: str | None = None
    status: Status | None = None
    dnpStatus: bool | None = None
    parentOrganisation: OrganisationReference | None = None


class Organisation(_Wire):
    id: str
    displayName: str
    organisationNumber: str
    countryCode: str | None = None
    organisationType: str | None = None
    status: Status | None = None
    schoolUnits: list[SchoolUnit] | None = None
    email: str | None = None


class Programme(_Wire):
    id: str
    displayName: str
    educationCode: str
    schoolType: str | None = None
    validFrom: str | None = None
    status: Status | None = None


class Activity(_Wire):
    """A test activity (``Provaktivitet``): the ``parentActivity`` of a provisioned Activity."""

    id: str
    displayName: str
    activityType: Literal["Provaktivitet"]
    schoolType: str
    schoolYear: int | None = None
    comment: str | None = None


class Error(_Wire):
    code: int
    message: str
    timeStamp: str


Model = TypeVar("Model")


class OpenDataClient:
    """Reads Skolverket's open data (no authentication: the API is open)."""

    def __init__(self, base_url: str, http: HttpSettings | None = None):
        self._settings = http or HttpSettings()
        self._http = build_client(base_url, self._settings, system=SYSTEM, headers={"Accept": "application/json"})

    async def __aenter__(self) -> OpenDataClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(self, path: str, model: Any, params: dict[str, Any] | None = None) -> Any:
        """The parsed answer, or None on a 404 (Skolverket does not know the id or code)."""
        try:
            response = await request(self._http, SYSTEM, "GET", path, retry=self._settings.retry, params=params)
        except RemoteError as exc:
            if exc.status_code == 404 and not isinstance(exc, TransientError):
                return None
            raise
        try:
            return TypeAdapter(model).validate_json(response.text)
        except ValidationError:
            raise RemoteError(SYSTEM, response.status_code, f"not a {model}: {response.text[:200]}",
                              method="GET", url=path) from None

    async def alive(self) -> bool:
        try:
            await request(self._http, SYSTEM, "GET", "/alive", retry=self._settings.retry)
        except RemoteError:
            return False
        return True

    async def organisation_by_code(self, orgnr: str, expand_school_units: bool = False) -> Organisation | None:
        return await self._get(f"/organisations/code/{organisation_number(orgnr)}", Organisation,
                               {"expandSchoolUnits": str(expand_school_units).lower()})

    async def organisation(self, organisation_id: str, expand_school_units: bool = False) -> Organisation | None:
        return await self._get(f"/organisations/{organisation_id}", Organisation,
                               {"expandSchoolUnits": str(expand_school_units).lower()})

    async def school_unit_by_code(self, school_unit_code: str) -> SchoolUnit | None:
        return await self._get(f"/schoolUnits/code/{school_unit_code}", SchoolUnit)

    async def school_unit(self, school_unit_id: str) -> SchoolUnit | None:
        return await self._get(f"/schoolUnits/{school_unit_id}", SchoolUnit)

    async def programmes(self) -> list[Programme]:
        return await self._get("/programmes", list[Programme]) or []

    async def programme_by_code(self, education_code: str) -> Programme | None:
        return await self._get(f"/programmes/code/{education_code}", Programme)

    async def activities(self) -> list[Activity]:
        return await self._get("/activities", list[Activity]) or []

    async def activity(self, activity_id: str) -> Activity | None:
        return await self._get(f"/activities/{activity_id}", Activity)
