"""Async client for an SS 12000:2020 v2.1 API (the municipality's student information system).

Bearer authentication (``BearerAuth`` in the contract), list endpoints followed page by page via
the opaque ``pageToken`` until the server stops giving one, and the ``/lookup`` endpoints to
resolve a batch of ids in a few calls instead of one GET per id. Every call goes through
:func:`skolflow.connectors.http.request`, so retries, timeouts and :class:`RemoteError` behave as in
every other connector.

Identity numbers only ever travel as the ``civicNo`` query parameter (kept out of exception
messages: the URL is passed to ``request`` without its query) or in a lookup body.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from skolflow.connectors.http import HttpSettings, build_client, request
from skolflow.connectors.ss12000.models import (
    ActivityExpand,
    ActivityExpanded,
    DeletedEntities,
    DeletedEntitiesData,
    DutyExpand,
    DutyExpanded,
    DutyRole,
    Entity,
    EntityType,
    GroupExpand,
    GroupExpanded,
    GroupType,
    Organisation,
    OrganisationsLookup,
    OrganisationType,
    Page,
    Person,
    PersonExpand,
    PersonsLookup,
    RelationshipEntityType,
    SchoolType,
)

SYSTEM = "ss12000"
# The contract sets no limit on a lookup body but answers 503 when "the answer is too big for the
# server"; 100 values per call keeps each answer about the size of one page.
LOOKUP_CHUNK_SIZE = 100

Item = TypeVar("Item", bound=Entity)
Paged = TypeVar("Paged", bound=BaseModel)
QueryValue = str | Sequence[str]


class PagingError(Exception):
    """The server handed back a pageToken it had already given: following it would never end."""


def _query_time(value: dt.datetime) -> str:
    """RFC 3339 with an offset, as the contract's date-time filters require."""
    if value.tzinfo is None:
        raise ValueError("SS 12000 time filters need a timezone-aware datetime (RFC 3339 with offset)")
    return value.isoformat()


def _query(**params: Any) -> dict[str, QueryValue]:
    """Drop unset filters; lists become repeated parameters (OpenAPI form/explode, the default)."""
    query: dict[str, QueryValue] = {}
    for name, value in params.items():
        if value is None or (isinstance(value, Sequence) and not isinstance(value, str) and not value):
            continue
        if isinstance(value, bool):
            query[name] = "true" if value else "false"
        elif isinstance(value, dt.datetime):
            query[name] = _query_time(value)
        elif isinstance(value, str):
            query[name] = value
        elif isinstance(value, Sequence):
            query[name] = [str(v) for v in value]
        else:
            query[name] = str(value)
    return query


def _meta_filters(created_after: dt.datetime | None, created_before: dt.datetime | None,
                  modified_after: dt.datetime | None, modified_before: dt.datetime | None) -> dict[str, Any]:
    return {"meta.created.after": created_after, "meta.created.before": created_before,
            "meta.modified.after": modified_after, "meta.modified.before": modified_before}


def _date_filters(start_on_or_before: dt.date | None, start_on_or_after: dt.date | None,
                  end_on_or_before: dt.date | None, end_on_or_after: dt.date | None) -> dict[str, Any]:
    return {"startDate.onOrBefore": start_on_or_before, "startDate.onOrAfter": start_on_or_after,
            "endDate.onOrBefore": end_on_or_before, "endDate.onOrAfter": end_on_or_after}


def _as_list(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _chunks(values: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start:start + size])


class SS12000Client:
    """``async with SS12000Client(base_url, token) as ss: async for p in ss.persons(): ...``

    ``base_url`` includes the API's version path when it has one (``https://host/v2.0``).
    ``page_size`` is sent as ``limit``; ``None`` lets the server choose.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        http: HttpSettings | None = None,
        *,
        page_size: int | None = 100,
        lookup_chunk_size: int = LOOKUP_CHUNK_SIZE,
    ):
        if lookup_chunk_size < 1:
            raise ValueError("lookup_chunk_size must be at least 1")
        self.settings = http or HttpSettings()
        self.page_size = page_size
        self.lookup_chunk_size = lookup_chunk_size
        self._client = build_client(
            base_url, self.settings,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    async def __aenter__(self) -> SS12000Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await request(self._client, SYSTEM, method, path, retry=self.settings.retry, **kwargs)

    async def _page_bodies(self, path: str, page_type: type[Paged],
                           query: Mapping[str, QueryValue]) -> AsyncIterator[Paged]:
        """Yield every page of a paged endpoint, following ``pageToken`` to the end.

        The contract forbids combining ``pageToken`` with the filters (it stands for them), so later
        pages send only the token and ``limit``.
        """
        limit = _query(limit=self.page_size)
        params: dict[str, QueryValue] = {**query, **limit}
        seen: set[str] = set()
        while True:
            response = await self._call("GET", path, params=params)
            page = page_type.model_validate_json(response.content)
            yield page
            token = getattr(page, "pageToken", None)
            if not token:
                return
            if token in seen:
                raise PagingError(f"{SYSTEM} repeated a pageToken on GET {path}")
            seen.add(token)
            params = {"pageToken": token, **limit}

    async def _pages(self, path: str, item: type[Item], query: Mapping[str, QueryValue]) -> AsyncIterator[Item]:
        """Yield every item of a list endpoint (``{data: [...], pageToken}``), all pages."""
        async for page in self._page_bodies(path, Page[item], query):  # type: ignore[valid-type]
            for entry in page.data:
                yield entry

    async def _get(self, path: str, item: type[Item], query: Mapping[str, QueryValue]) -> Item:
        response = await self._call("GET", path, params=query)
        return item.model_validate_json(response.content)

    async def _lookup(
        self, path: str, item: type[Item], bodies: Iterable[BaseModel], query: Mapping[str, QueryValue]
    ) -> list[Item]:
        """Send each body; one object per id in the answer even when two bodies matched it."""
        adapter = TypeAdapter(list[item])  # type: ignore[valid-type]
        found: dict[str, Item] = {}
        for body in bodies:
            response = await self._call(
                "POST", path, params=query, json=body.model_dump(mode="json", exclude_none=True)
            )
            for entry in adapter.validate_json(response.content):
                found.setdefault(entry.id, entry)
        return list(found.values())

    def _chunked(self, **fields: Sequence[str]) -> Iterable[dict[str, list[str]]]:
        """Split the values of every lookup field into bodies of at most ``lookup_chunk_size`` values."""
        for name, values in fields.items():
            for chunk in _chunks(list(dict.fromkeys(values)), self.lookup_chunk_size):
                yield {name: chunk}

    # Persons

    def persons(
        self,
        *,
        civic_no: str | None = None,
        name_contains: str | Sequence[str] | None = None,
        relationship_entity_type: RelationshipEntityType | None = None,
        relationship_organisation: str | None = None,
        meta_created_after: dt.datetime | None = None,
        meta_created_before: dt.datetime | None = None,
        meta_modified_after: dt.datetime | None = None,
        meta_modified_before: dt.datetime | None = None,
        expand: Sequence[PersonExpand] = (),
        expand_reference_names: bool | None = None,
    ) -> AsyncIterator[Person]:
        """``GET /persons``: every person matching the filters, all pages.

        ``relationship_organisation`` (an Organisation id, usually a school unit) with
        ``relationship_entity_type="enrolment"`` gives the students enrolled there.
        """
        query = _query(**{
            "civicNo": civic_no,
            "nameContains": _as_list(name_contains),
            "relationship.entity.type": relationship_entity_type,
            "relationship.organisation": relationship_organisation,
            **_meta_filters(meta_created_after, meta_created_before, meta_modified_after, meta_modified_before),
            "expand": list(expand),
            "expandReferenceNames": expand_reference_names,
        })
        return self._pages("/persons", Person, query)

    async def person(self, person_id: str, *, expand: Sequence[PersonExpand] = (),
                     expand_reference_names: bool | None = None) -> Person:
        """``GET /persons/{id}``; an unknown id raises RemoteError with status 404."""
        query = _query(expand=list(expand), expandReferenceNames=expand_reference_names)
        return await self._get(f"/persons/{person_id}", Person, query)

    async def lookup_persons(
        self,
        ids: Sequence[str] = (),
        *,
        civic_nos: Sequence[str] = (),
        expand: Sequence[PersonExpand] = (),
        expand_reference_names: bool | None = None,
    ) -> list[Person]:
        """``POST /persons/lookup``: the persons with these ids and/or civic numbers (12 digits).

        Values are de-duplicated and sent at most ``lookup_chunk_size`` per call; unknown ids are
        simply absent from the answer, so callers compare what they asked for with what came back.
        """
        bodies = (PersonsLookup(**body) for body in self._chunked(ids=ids, civicNos=civic_nos))
        query = _query(expand=list(expand), expandReferenceNames=expand_reference_names)
        return await self._lookup("/persons/lookup", Person, bodies, query)

    # Organisations

    def organisations(
        self,
        *,
        organisation_type: OrganisationType | Sequence[OrganisationType] | None = None,
        school_unit_code: str | Sequence[str] | None = None,
        organisation_code: str | Sequence[str] | None = None,
        parent: str | Sequence[str] | None = None,
        school_types: SchoolType | Sequence[SchoolType] | None = None,
        municipality_code: str | None = None,
        meta_created_after: dt.datetime | None = None,
        meta_created_before: dt.datetime | None = None,
        meta_modified_after: dt.datetime | None = None,
        meta_modified_before: dt.datetime | None = None,
        expand_reference_names: bool | None = None,
    ) -> AsyncIterator[Organisation]:
        """``GET /organisations``: every organisation matching the filters, all pages.

        ``organisation_type`` is sent as the contract's ``type`` parameter (e.g. "Skolenhet").
        """
        query = _query(**{
            "type": _as_list(organisation_type),
            "schoolUnitCode": _as_list(school_unit_code),
            "organisationCode": _as_list(organisation_code),
            "parent": _as_list(parent),
            "schoolTypes": _as_list(school_types),
            "municipalityCode": municipality_code,
            **_meta_filters(meta_created_after, meta_created_before, meta_modified_after, meta_modified_before),
            "expandReferenceNames": expand_reference_names,
        })
        return self._pages("/organisations", Organisation, query)

    async def organisation(self, organisation_id: str, *, expand_reference_names: bool | None = None) -> Organisation:
        """``GET /organisations/{id}``; an unknown id raises RemoteError with status 404."""
        query = _query(expandReferenceNames=expand_reference_names)
        return await self._get(f"/organisations/{organisation_id}", Organisation, query)

    async def lookup_organisations(
        self,
        ids: Sequence[str] = (),
        *,
        school_unit_codes: Sequence[str] = (),
        organisation_codes: Sequence[str] = (),
        expand_reference_names: bool | None = None,
    ) -> list[Organisation]:
        """``POST /organisations/lookup`` by ids, school unit codes and/or organisation codes, chunked."""
        chunks = self._chunked(ids=ids, schoolUnitCodes=school_unit_codes, organisationCodes=organisation_codes)
        bodies = (OrganisationsLookup(**body) for body in chunks)
        query = _query(expandReferenceNames=expand_reference_names)
        return await self._lookup("/organisations/lookup", Organisation, bodies, query)

    # Duties, groups, activities: what DNP provisioning reads

    def duties(
        self,
        *,
        organisation: str | None = None,
        duty_role: DutyRole | None = None,
        person: str | None = None,
        start_date_on_or_before: dt.date | None = None,
        start_date_on_or_after: dt.date | None = None,
        end_date_on_or_before: dt.date | None = None,
        end_date_on_or_after: dt.date | None = None,
        meta_created_after: dt.datetime | None = None,
        meta_created_before: dt.datetime | None = None,
        meta_modified_after: dt.datetime | None = None,
        meta_modified_before: dt.datetime | None = None,
        expand: Sequence[DutyExpand] = (),
        expand_reference_names: bool | None = None,
    ) -> AsyncIterator[DutyExpanded]:
        """``GET /duties``: every duty matching the filters, all pages.

        ``organisation`` (an Organisation id) includes the organisation's underlying elements, so the
        huvudman's id gives every duty. ``end_date_on_or_after=today`` keeps the current duties (a
        duty without an end date is always included, as the contract says).
        """
        query = _query(**{
            "organisation": organisation,
            "dutyRole": duty_role,
            "person": person,
            **_date_filters(start_date_on_or_before, start_date_on_or_after, end_date_on_or_before,
                            end_date_on_or_after),
            **_meta_filters(meta_created_after, meta_created_before, meta_modified_after, meta_modified_before),
            "expand": list(expand),
            "expandReferenceNames": expand_reference_names,
        })
        return self._pages("/duties", DutyExpanded, query)

    def groups(
        self,
        *,
        group_type: GroupType | Sequence[GroupType] | None = None,
        school_types: SchoolType | Sequence[SchoolType] | None = None,
        organisation: str | Sequence[str] | None = None,
        start_date_on_or_before: dt.date | None = None,
        start_date_on_or_after: dt.date | None = None,
        end_date_on_or_before: dt.date | None = None,
        end_date_on_or_after: dt.date | None = None,
        meta_created_after: dt.datetime | None = None,
        meta_created_before: dt.datetime | None = None,
        meta_modified_after: dt.datetime | None = None,
        meta_modified_before: dt.datetime | None = None,
        expand: Sequence[GroupExpand] = (),
        expand_reference_names: bool | None = None,
    ) -> AsyncIterator[GroupExpanded]:
        """``GET /groups``: every group matching the filters, with its memberships, all pages.

        ``organisation`` matches the organisations a group is directly tied to (not their children).
        """
        query = _query(**{
            "groupType": _as_list(group_type),
            "schoolTypes": _as_list(school_types),
            "organisation": _as_list(organisation),
            **_date_filters(start_date_on_or_before, start_date_on_or_after, end_date_on_or_before,
                            end_date_on_or_after),
            **_meta_filters(meta_created_after, meta_created_before, meta_modified_after, meta_modified_before),
            "expand": list(expand),
            "expandReferenceNames": expand_reference_names,
        })
        return self._pages("/groups", GroupExpanded, query)

    def activities(
        self,
        *,
        member: str | None = None,
        teacher: str | None = None,
        organisation: str | None = None,
        group: str | None = None,
        start_date_on_or_before: dt.date | None = None,
        start_date_on_or_after: dt.date | None = None,
        end_date_on_or_before: dt.date | None = None,
        end_date_on_or_after: dt.date | None = None,
        meta_created_after: dt.datetime | None = None,
        meta_created_before: dt.datetime | None = None,
        meta_modified_after: dt.datetime | None = None,
        meta_modified_before: dt.datetime | None = None,
        expand: Sequence[ActivityExpand] = (),
        expand_reference_names: bool | None = None,
    ) -> AsyncIterator[ActivityExpanded]:
        """``GET /activities``: every activity matching the filters, all pages.

        ``member`` is a person id (in one of the activity's groups), ``teacher`` a duty id.
        ``expand=["syllabus"]`` embeds the subject or course taught, which is what tells a teaching
        activity's national test.
        """
        query = _query(**{
            "member": member,
            "teacher": teacher,
            "organisation": organisation,
            "group": group,
            **_date_filters(start_date_on_or_before, start_date_on_or_after, end_date_on_or_before,
                            end_date_on_or_after),
            **_meta_filters(meta_created_after, meta_created_before, meta_modified_after, meta_modified_before),
            "expand": list(expand),
            "expandReferenceNames": expand_reference_names,
        })
        return self._pages("/activities", ActivityExpanded, query)

    async def deleted_entities(self, *, after: dt.datetime | None = None,
                               entities: EntityType | Sequence[EntityType] = ()) -> DeletedEntitiesData:
        """``GET /deletedEntities``: the ids removed after ``after``, per entity type, all pages merged.

        Each page is an object of id lists, so pages are merged list by list (an id once per list).
        """
        query = _query(after=after, entities=_as_list(entities))
        merged: dict[str, list[str]] = {}
        async for page in self._page_bodies("/deletedEntities", DeletedEntities, query):
            for name, ids in page.data.model_dump(exclude_none=True).items():
                merged[name] = list(dict.fromkeys([*merged.get(name, []), *ids]))
        return DeletedEntitiesData.model_validate(merged)
