"""Async client for an SS 12000:2020 v2.1 API (the municipality's student information system).

Bearer authentication (``BearerAuth`` in the contract), list endpoints followed page by page via
the opaque ``pageToken`` until the server stops giving one, and the ``/lookup`` endpoints to
resolve a batch of ids in a few calls instead of one GET per id. Every call goes through
:func:`skolflow.connectors.http.request`, so retries, timeouts and :class:`RemoteError` behave as in
every other connector.

Sources are read record by record (DESIGN §5, tolerant readers). A record that does not read as the
model its reader asked for is not returned: it is added to :attr:`SS12000Client.refused` with its id,
each field and the rule it breaks (never its values), for the caller to record, and the rest go on. A page
that cannot be read at all (not JSON, no ``data`` list) still fails the call. What real servers do beyond
the contract is tolerated here, each in one place:

- a ``pageToken`` that loses the query's filters: every filter the client can judge from the record itself
  is applied again to each record, and an id already read is not read again;
- ``POST …/lookup`` refused (a 4xx other than 401, or 501): the client pages the list endpoint instead and
  keeps what was asked for, for the rest of the client's life;
- ``GET /deletedEntities`` answering a bare list of ids instead of an object of lists;
- errors as ``{"detail": …}`` instead of the contract's ``{code, message}``: either is what the exception says;
- timestamps without an offset, ``civicNo`` written ``ÅÅMMDD-NNNN``, fields skolflow never reads that break
  the schema: see :mod:`skolflow.connectors.ss12000.models`.

Identity numbers only ever travel as the ``civicNo`` query parameter (kept out of exception
messages: the URL is passed to ``request`` without its query) or in a lookup body.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from skolflow.concurrency import all_of
from skolflow.connectors.http import HttpSettings, RemoteError, build_client, request
from skolflow.connectors.ss12000.models import (
    DELETED_FIELDS,
    READ_FROM_SOURCE,
    SOURCE_TIMEZONE,
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
    PersonIdentity,
    PersonsLookup,
    RelationshipEntityType,
    SchoolType,
    civic_no_in_contract_form,
)
from skolflow.errors import MODEL_CONTEXT, SafeError, sanitise, scrub
from skolflow.identity import InvalidIdentity, mask_text

SYSTEM = "ss12000"
# The records asked for per page (``limit``). Without it the contract has the server return "as many as
# possible"; a server may return fewer than asked. Each page is a round trip on a chain no reader can run in
# parallel (the next pageToken comes with the page): 40,000 persons in pages of 100 are 400 round trips one after
# another, in pages of 1,000 (about 1 MB of JSON) 40 (benchmarks/README.md § DNP provisioning).
PAGE_SIZE = 1000
# Validating a page of 1,000 records takes a tenth of a second (persons) to most of a second (groups with their
# memberships), which the event loop's other work (calls on a rate limit, answers arriving, the other listings)
# would otherwise wait for. A turn lets it take one step only (reading an answer takes several), so the reader
# gives it one whenever it has worked this long, however long a record takes: a turn every 100 records left
# DNP's answers unread for 0.7-1 s while a page of 1,000 groups was read (benchmarks/README.md § DNP provisioning).
TURN_SECONDS = 0.005
# The contract sets no limit on a lookup body but answers 503 when "the answer is too big for the
# server"; 100 values per call keeps each answer small.
LOOKUP_CHUNK_SIZE = 100
# A lookup of more ids than one body holds sends its bodies this many at a time: a batch of 1,000 students
# waits for 3 round trips instead of 10, and the server sees no more at once than a few readers would send.
LOOKUPS_IN_FLIGHT = 4

Item = TypeVar("Item", bound=Entity)
PersonRead = TypeVar("PersonRead", bound=PersonIdentity)
Paged = TypeVar("Paged", bound=BaseModel)
Parsed = TypeVar("Parsed")
QueryValue = str | Sequence[str]
# A test of a record as the server sent it (before it is read): does it match what the query asked for?
Check = Callable[[Mapping[str, Any]], bool]


class PagingError(Exception):
    """The server handed back a pageToken it had already given: following it would never end."""


@dataclass(frozen=True)
class Problem:
    """One field of a source record and the rule it breaks: pydantic's error type, with the model's bounds."""

    field: str
    rule: str


@dataclass(frozen=True)
class Refused:
    """A source record skolflow could not read: the endpoint that listed it, its id ("" if it has none), why."""

    path: str
    record_id: str
    problems: tuple[Problem, ...]

    def __str__(self) -> str:
        return "; ".join(f"record {self.record_id or '(no id)'}: {p.field}: {p.rule}" for p in self.problems)


class RefusedRecord(SafeError, ValueError):
    """The one record a ``GET …/{id}`` asked for could not be read; the message says only id, field and rule."""

    def __init__(self, refused: Refused):
        super().__init__(f"{SYSTEM} GET {refused.path}: {refused}")
        self.refused = refused


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


def _validated(validate: Callable[[bytes], Parsed], response: httpx.Response, path: str) -> Parsed:
    """``validate`` the answer; a page that does not is named by its record id, field path and rule only.

    pydantic's own error quotes the record (name, address, civic number) as ``input_value``.
    """
    try:
        return validate(response.content)
    except ValueError as exc:  # pydantic's ValidationError and json's JSONDecodeError are ValueErrors
        raise sanitise(exc, where=f"{SYSTEM} {response.request.method} {path}",
                       json_document=response.content) from None


def _list_as_page(content: bytes) -> Any:
    """The JSON of an answer; a bare list (as some servers answer ``/deletedEntities``) is a last page of it."""
    body = json.loads(content)
    return {"data": body} if isinstance(body, list) else body


# Reading one record


def _raw_id(raw: Any) -> str | None:
    """A record's id as the server wrote it, compared without case (UUIDs), or None."""
    value = raw.get("id") if isinstance(raw, Mapping) else None
    return str(value).lower() if isinstance(value, str | int) and not isinstance(value, bool) else None


def _field(loc: Sequence[int | str]) -> str:
    """``enrolments[0].schoolType``; a key that came from the input (a dict's) is scrubbed like any text."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f"{'.' if path else ''}{scrub(str(part))}"
    return path or "(record)"


def _rule(error: Mapping[str, Any]) -> str:
    context = ", ".join(f"{key}={error['ctx'][key]}" for key in MODEL_CONTEXT if key in error.get("ctx", {}))
    return f"{error['type']} ({context})" if context else str(error["type"])


def _refusal(path: str, raw: Any, exc: ValidationError) -> Refused:
    value = raw.get("id") if isinstance(raw, Mapping) else None
    record_id = scrub(str(value)) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    problems = tuple(Problem(_field(e["loc"]), _rule(e)) for e in exc.errors(include_url=False, include_input=False))
    return Refused(path, record_id, problems)


# What a query asked for, judged again on each record (a pageToken that lost the filters)


def _at(record: Mapping[str, Any], path: str) -> Any:
    node: Any = record
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _among(path: str, wanted: str | Iterable[str] | None) -> Check | None:
    """The field is one of ``wanted`` (ids and codes compared without case); a record without it is not judged."""
    values = {value.lower() for value in _as_list(wanted)}
    if not values:
        return None
    return lambda record: _at(record, path) is None or str(_at(record, path)).lower() in values


def _holding(path: str, key: str | None, wanted: str | Iterable[str] | None) -> Check | None:
    """The list field holds one of ``wanted``: an element's ``key`` (a dotted path), or the element itself."""
    values = {value.lower() for value in _as_list(wanted)}
    if not values:
        return None

    def check(record: Mapping[str, Any]) -> bool:
        found = _at(record, path)
        if not isinstance(found, list):
            return found is None
        held = [_at(element, key) if key and isinstance(element, Mapping) else element for element in found]
        return any(str(value).lower() in values for value in held if value is not None)

    return check


def _date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _time(value: Any) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return parsed.replace(tzinfo=SOURCE_TIMEZONE) if parsed and parsed.tzinfo is None else parsed


def _dates(start_on_or_before: dt.date | None, start_on_or_after: dt.date | None, end_on_or_before: dt.date | None,
           end_on_or_after: dt.date | None) -> Check | None:
    """The contract's date bounds, inclusive; no ``endDate`` passes the end bounds; an unreadable date is not judged."""
    if not any((start_on_or_before, start_on_or_after, end_on_or_before, end_on_or_after)):
        return None

    def check(record: Mapping[str, Any]) -> bool:
        start, end = _date(record.get("startDate")), _date(record.get("endDate"))
        return not ((start and start_on_or_before and start > start_on_or_before)
                    or (start and start_on_or_after and start < start_on_or_after)
                    or (end and end_on_or_before and end > end_on_or_before)
                    or (end and end_on_or_after and end < end_on_or_after))

    return check


def _times(created_after: dt.datetime | None, created_before: dt.datetime | None,
           modified_after: dt.datetime | None, modified_before: dt.datetime | None) -> Check | None:
    """The contract's ``meta`` bounds: "before" inclusive, "after" exclusive."""
    if not any((created_after, created_before, modified_after, modified_before)):
        return None

    def check(record: Mapping[str, Any]) -> bool:
        created, modified = _time(_at(record, "meta.created")), _time(_at(record, "meta.modified"))
        return not ((created and created_after and created <= created_after)
                    or (created and created_before and created > created_before)
                    or (modified and modified_after and modified <= modified_after)
                    or (modified and modified_before and modified > modified_before))

    return check


def _civic_no(value: Any) -> str | None:
    """A civic number as the models read it from a source, to compare with what was asked for."""
    if not isinstance(value, str):
        return None
    try:
        return civic_no_in_contract_form(value)
    except InvalidIdentity:
        return value


def _civic_no_is(wanted: str | None) -> Check | None:
    if wanted is None:
        return None
    asked = _civic_no(wanted)
    return lambda record: _at(record, "civicNo.value") is None or _civic_no(_at(record, "civicNo.value")) == asked


def _names_contain(parts: str | Sequence[str] | None) -> Check | None:
    wanted = [part.casefold() for part in _as_list(parts)]
    if not wanted:
        return None

    def check(record: Mapping[str, Any]) -> bool:
        names = " ".join(str(record.get(key) or "") for key in ("givenName", "middleName", "familyName")).casefold()
        return all(part in names for part in wanted)

    return check


def _lookup_refused(exc: RemoteError) -> bool:
    """The server has no lookup for us (405, 404, 501, …): a 4xx other than a bad token, or 501."""
    return exc.status_code == 501 or (400 <= exc.status_code < 500 and exc.status_code != 401)


def _said(body: str) -> str | None:
    """The server's own words in an error answer: the contract's ``{code, message}``, or ``{"detail": …}``
    (a string, or FastAPI's list of ``{loc, msg}``) as many servers answer."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    message, code, detail = answer.get("message"), answer.get("code"), answer.get("detail")
    if isinstance(message, str):
        return f"{code}: {message}" if isinstance(code, str) and code else message
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(part) for part in item.get('loc') or ())}: {item.get('msg')}"
            if isinstance(item, dict) else str(item) for item in detail)
    return None


def _deleted_listed(ids: Sequence[Any], asked: Sequence[EntityType]) -> dict[str, list[str]]:
    """A bare list of ids says no type: they count for every type asked about (every type, if none was).

    Ids are unique across types (SS 12000's transfer ids), so an id counted for the wrong type matches nothing there.
    """
    found = [str(item.get("id")) if isinstance(item, Mapping) else str(item) for item in ids
             if not isinstance(item, Mapping) or item.get("id") is not None]
    return {DELETED_FIELDS[entity]: found for entity in (asked or DELETED_FIELDS)}


class SS12000Client:
    """``async with SS12000Client(base_url, token) as ss: async for p in ss.persons(): ...``

    ``base_url`` includes the API's version path when it has one (``https://host/v2.0``).
    ``page_size`` is sent as ``limit``; ``None`` lets the server choose. :attr:`refused` lists, in order,
    every record the reads so far could not use.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        http: HttpSettings | None = None,
        *,
        page_size: int | None = PAGE_SIZE,
        lookup_chunk_size: int = LOOKUP_CHUNK_SIZE,
    ):
        if lookup_chunk_size < 1:
            raise ValueError("lookup_chunk_size must be at least 1")
        self.settings = http or HttpSettings()
        self.page_size = page_size
        self.lookup_chunk_size = lookup_chunk_size
        self.refused: list[Refused] = []
        self._lookups_refused: set[str] = set()
        self._client = build_client(
            base_url, self.settings, system=SYSTEM,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    async def __aenter__(self) -> SS12000Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await request(self._client, SYSTEM, method, path, retry=self.settings.retry, **kwargs)
        except RemoteError as exc:
            words = _said(exc.body)
            if words:  # the server's words, not its JSON; the body stays on the exception as it came
                exc.args = (f"{SYSTEM} answered {exc.status_code} to {exc.method} {mask_text(exc.url)}: "
                            f"{mask_text(words[:500])}",)
            raise

    def _read(self, path: str, model: type[Item], raw: Any) -> Item | None:
        """The record as ``model``, or None with the reason added to :attr:`refused`."""
        try:
            return model.model_validate(raw, context=READ_FROM_SOURCE)
        except ValidationError as exc:
            self.refused.append(_refusal(path, raw, exc))
            return None

    async def _page_bodies(self, path: str, page_type: type[Paged],
                           query: Mapping[str, QueryValue]) -> AsyncIterator[Paged]:
        """Yield every page of a paged endpoint, following ``pageToken`` to the end.

        The contract forbids combining ``pageToken`` with the filters (it stands for them), so later
        pages send only the token and ``limit``. The next page is asked for before a page is handed on, so the
        server prepares it while the reader works through this one: a listing of tens of thousands of persons
        is a chain of hundreds of pages, and each link would otherwise wait for both.
        """
        limit = _query(limit=self.page_size)
        seen: set[str] = set()
        ahead: asyncio.Future[httpx.Response] | None = None
        try:
            response = await self._call("GET", path, params={**query, **limit})
            while True:
                page = _validated(lambda content: page_type.model_validate(_list_as_page(content)), response, path)
                token = getattr(page, "pageToken", None)
                repeated = bool(token) and token in seen
                if token and not repeated:
                    seen.add(token)
                    ahead = asyncio.ensure_future(self._call("GET", path, params={"pageToken": token, **limit}))
                yield page
                if not token:
                    return
                if repeated:
                    raise PagingError(f"{SYSTEM} repeated a pageToken on GET {path}")
                assert ahead is not None
                response, ahead = await ahead, None
        finally:
            if ahead is not None:  # the reader stopped early, or failed: the page asked for ahead is not wanted
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ahead

    async def _pages(self, path: str, model: type[Item], query: Mapping[str, QueryValue],
                     checks: Iterable[Check | None] = ()) -> AsyncIterator[Item]:
        """Yield every record of a list endpoint (``{data: [...], pageToken}``), all pages, each id once.

        ``checks`` are the query's filters as the client can judge them: a server whose pageToken forgets the
        filters lists records the query did not ask for, and some list a record again on a later page.
        """
        judged = [check for check in checks if check is not None]
        seen: set[str] = set()
        async for page in self._page_bodies(path, Page, query):
            turn = time.perf_counter() + TURN_SECONDS
            for raw in page.data:
                if time.perf_counter() >= turn:
                    await asyncio.sleep(0)
                    turn = time.perf_counter() + TURN_SECONDS
                key = _raw_id(raw)
                if key is not None and key in seen:
                    continue
                if isinstance(raw, Mapping) and not all(check(raw) for check in judged):
                    continue
                if key is not None:
                    seen.add(key)
                record = self._read(path, model, raw)
                if record is not None:
                    yield record

    async def _get(self, path: str, model: type[Item], query: Mapping[str, QueryValue]) -> Item:
        response = await self._call("GET", path, params=query)
        raw = _validated(json.loads, response, path)
        record = self._read(path, model, raw)
        if record is None:
            raise RefusedRecord(self.refused.pop())
        return record

    async def _lookup(self, path: str, model: type[Item], bodies: Iterable[BaseModel], query: Mapping[str, QueryValue],
                      fallback: Callable[[], Awaitable[list[Item]]]) -> list[Item]:
        """Send the bodies (``LOOKUPS_IN_FLIGHT`` at a time); one record per id even when two bodies matched it.

        A server that refuses the lookup (:func:`_lookup_refused`) is asked by ``fallback`` (paging the list
        endpoint) instead, now and for every later lookup of this client.
        """
        if path in self._lookups_refused:
            return await fallback()
        slots = asyncio.Semaphore(LOOKUPS_IN_FLIGHT)

        async def send(body: BaseModel) -> httpx.Response:
            async with slots:
                return await self._call("POST", path, params=query,
                                        json=body.model_dump(mode="json", exclude_none=True))

        try:
            responses = await all_of(*(send(body) for body in bodies))
        except RemoteError as exc:
            if not _lookup_refused(exc):
                raise
            self._lookups_refused.add(path)
            return await fallback()
        found: dict[str, Item] = {}
        seen: set[str] = set()
        for response in responses:
            answer = _validated(lambda content: Page.model_validate({"data": json.loads(content)}), response, path)
            for raw in answer.data:
                key = _raw_id(raw)
                if key is not None and key in seen:
                    continue
                if key is not None:
                    seen.add(key)
                record = self._read(path, model, raw)
                if record is not None:
                    found.setdefault(record.id, record)
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
        read_as: type[PersonRead] = Person,  # type: ignore[assignment]
    ) -> AsyncIterator[PersonRead]:
        """``GET /persons``: every person matching the filters, all pages.

        ``relationship_organisation`` (an Organisation id, usually a school unit) with
        ``relationship_entity_type="enrolment"`` gives the students enrolled there (a filter only the server
        can judge). ``read_as``: ``Person`` whole, or ``PersonIdentity`` for a reader that needs no more.
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
        checks = [_civic_no_is(civic_no), _names_contain(name_contains),
                  _times(meta_created_after, meta_created_before, meta_modified_after, meta_modified_before)]
        return self._pages("/persons", read_as, query, checks)

    async def person(self, person_id: str, *, expand: Sequence[PersonExpand] = (),
                     expand_reference_names: bool | None = None) -> Person:
        """``GET /persons/{id}``; an unknown id raises RemoteError with status 404, an unreadable one RefusedRecord."""
        query = _query(expand=list(expand), expandReferenceNames=expand_reference_names)
        return await self._get(f"/persons/{person_id}", Person, query)

    async def lookup_persons(
        self,
        ids: Sequence[str] = (),
        *,
        civic_nos: Sequence[str] = (),
        expand: Sequence[PersonExpand] = (),
        expand_reference_names: bool | None = None,
        read_as: type[PersonRead] = Person,  # type: ignore[assignment]
    ) -> list[PersonRead]:
        """``POST /persons/lookup``: the persons with these ids and/or civic numbers (12 digits).

        Values are de-duplicated and sent at most ``lookup_chunk_size`` per call; unknown ids are
        simply absent from the answer, so callers compare what they asked for with what came back.
        A server without the lookup is paged (``GET /persons``) for the same persons instead.
        """
        bodies = (PersonsLookup(**body) for body in self._chunked(ids=ids, civicNos=civic_nos))
        query = _query(expand=list(expand), expandReferenceNames=expand_reference_names)
        wanted_ids = {value.lower() for value in ids}
        wanted_civic_nos = {_civic_no(value) for value in civic_nos}

        def asked_for(record: Mapping[str, Any]) -> bool:
            return _raw_id(record) in wanted_ids or _civic_no(_at(record, "civicNo.value")) in wanted_civic_nos

        async def paged() -> list[PersonRead]:
            return [person async for person in self._pages("/persons", read_as, query, [asked_for])]

        return await self._lookup("/persons/lookup", read_as, bodies, query, paged)

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
        checks = [_among("organisationType", organisation_type), _among("schoolUnitCode", school_unit_code),
                  _among("organisationCode", organisation_code), _among("parentOrganisation.id", parent),
                  _holding("schoolTypes", None, school_types), _among("municipalityCode", municipality_code),
                  _times(meta_created_after, meta_created_before, meta_modified_after, meta_modified_before)]
        return self._pages("/organisations", Organisation, query, checks)

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
        """``POST /organisations/lookup`` by ids, school unit codes and/or organisation codes, chunked.

        A server without the lookup is paged (``GET /organisations``) for the same organisations instead.
        """
        chunks = self._chunked(ids=ids, schoolUnitCodes=school_unit_codes, organisationCodes=organisation_codes)
        bodies = (OrganisationsLookup(**body) for body in chunks)
        query = _query(expandReferenceNames=expand_reference_names)
        wanted = [(path, {value.lower() for value in values}) for path, values in
                  (("id", ids), ("schoolUnitCode", school_unit_codes), ("organisationCode", organisation_codes))]

        def asked_for(record: Mapping[str, Any]) -> bool:
            return any(str(record.get(path)).lower() in values for path, values in wanted if record.get(path))

        async def paged() -> list[Organisation]:
            return [o async for o in self._pages("/organisations", Organisation, query, [asked_for])]

        return await self._lookup("/organisations/lookup", Organisation, bodies, query, paged)

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
        huvudman's id gives every duty (a filter only the server can judge). ``end_date_on_or_after=today``
        keeps the current duties (a duty without an end date is always included, as the contract says).
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
        checks = [_among("dutyRole", duty_role), _among("person.id", person),
                  _dates(start_date_on_or_before, start_date_on_or_after, end_date_on_or_before, end_date_on_or_after),
                  _times(meta_created_after, meta_created_before, meta_modified_after, meta_modified_before)]
        return self._pages("/duties", DutyExpanded, query, checks)

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
        checks = [_among("groupType", group_type), _among("schoolType", school_types),
                  _among("organisation.id", organisation),
                  _dates(start_date_on_or_before, start_date_on_or_after, end_date_on_or_before, end_date_on_or_after),
                  _times(meta_created_after, meta_created_before, meta_modified_after, meta_modified_before)]
        return self._pages("/groups", GroupExpanded, query, checks)

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

        ``member`` is a person id (in one of the activity's groups), ``teacher`` a duty id; ``member`` and
        ``organisation`` (which includes what is under it) only the server can judge.
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
        checks = [_holding("teachers", "duty.id", teacher), _holding("groups", "id", group),
                  _dates(start_date_on_or_before, start_date_on_or_after, end_date_on_or_before, end_date_on_or_after),
                  _times(meta_created_after, meta_created_before, meta_modified_after, meta_modified_before)]
        return self._pages("/activities", ActivityExpanded, query, checks)

    async def deleted_entities(self, *, after: dt.datetime | None = None,
                               entities: EntityType | Sequence[EntityType] = ()) -> DeletedEntitiesData:
        """``GET /deletedEntities``: the ids removed after ``after``, per entity type, all pages merged.

        Each page is an object of id lists, so pages are merged list by list (an id once per list). A page
        that is a bare list of ids is read too (:func:`_deleted_listed`).
        """
        asked: list[EntityType] = [entities] if isinstance(entities, str) else list(entities)  # type: ignore[list-item]
        query = _query(after=after, entities=asked)
        merged: dict[str, list[str]] = {}
        async for page in self._page_bodies("/deletedEntities", DeletedEntities, query):
            lists = page.data.model_dump(exclude_none=True) if isinstance(page.data, DeletedEntitiesData) \
                else _deleted_listed(page.data, asked)
            for name, ids in lists.items():
                merged[name] = list(dict.fromkeys([*merged.get(name, []), *ids]))
        return DeletedEntitiesData.model_validate(merged)

