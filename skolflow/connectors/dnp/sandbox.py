"""DNP Provisioning API sandbox: Skolverket's OpenAPI (schemas/dnp/dnp-provisioning-api.yaml) as written.

Bulk POST/PUT/delete answer 202 with ``jobId`` and ``Location``; a job is processed ``job_delay_seconds``
after it was received, by a background task of the server (as DNP's jobs are processed apart from its API), jobs
strictly in the order received (so a duty sent before its person is an
error, one sent after it is not). Each record is judged by :mod:`skolflow.connectors.dnp.rules` and
against what the sandbox holds, and answered ``Success``/``Warning``/``Error`` with LogEntry lists.
Every API call counts against a per-client-IP sliding one-second window, 5 calls for writes and job
status and 10 for reads, with ``X-RateLimit-*`` headers on every answer and 429 (code 5021) beyond;
a body over 200 KB is refused with 413 (code 5020). The bearer token is the one ``create_app`` is
given, or one ``verify_token`` accepts: the authorisation server sandbox's short-lived tokens
(:mod:`skolflow.connectors.dnp.auth_sandbox`, as Skolverket's come from its mTLS server). Anything else, an
expired token included, is 403 (5002).

Known school units are the data set's, under Skolverket's ids (uuid5 of the skolenhetskod); known
test activities are the open-data catalogue's (:data:`skolflow.connectors.dnp.opendata.DEFAULT_TEST_ACTIVITIES`).

Admin endpoints (never faulted, never rate limited, no auth): ``GET /_sandbox/state`` (ids held per
kind, jobs, 429s answered), ``DELETE /_sandbox/state`` (forget everything), and
``PUT /_sandbox/outcomes`` with ``{"<record id>": "Warning" | "TemporaryError"}`` to answer that record
so the next time a job processes it (once; a TemporaryError record is not stored). Any other text there is
a status DNP's enum does not list (``"Queued"``): the record is judged and stored as usual and its answer
carries that text as its status, as if the enum had grown again.

``GET``/``PUT /_sandbox/quirks`` (or ``create_app(quirks=…)``) make the sandbox as loose as the contract
allows (:class:`Quirks`): numeric ``attributeValue``, 202 without ``jobId``, a lower 413 cap than the
client's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import math
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from skolflow.connectors.dnp import rules
from skolflow.connectors.dnp.client import MAX_PAYLOAD_BYTES, READ_CALLS_PER_SECOND, WRITE_CALLS_PER_SECOND
from skolflow.connectors.dnp.models import OBJECT_TYPES, RECORD_MODELS, Activity, Duty, Group, Person
from skolflow.connectors.dnp.opendata import DEFAULT_TEST_ACTIVITIES, activity_id, school_unit_id
from skolflow.connectors.dnp.rules import Violation
from skolflow.sandbox.dataset import Dataset
from skolflow.sandbox.faults import ADMIN_PREFIX

KINDS = tuple(RECORD_MODELS)
Operation = Literal["create", "upsert", "update", "delete"]
PERSON_LIST_FIELDS = ("id", "civicNo", "eduPersonPrincipalNames", "givenName", "middleName", "familyName",
                      "provisioningStatus", "meta")
FORCED_WARNING = "SF1099"
ACCEPTED_MESSAGE = ("Anropet har tagits emot. Återkoppling görs asynkront. Kontrollera status av asynkrona "
                    "processen genom att följa URL-adressen i ’Location’-header.")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).astimezone()


def _stamp(at: dt.datetime) -> str:
    return at.isoformat(timespec="milliseconds")


def log_entry(code: str, status: int, message_type: str, message: str, **extra: Any) -> dict[str, Any]:
    """One LogEntry as JSON, for refusals of a whole call."""
    entry = {"id": code, "statusCode": status, "messageType": message_type, "message": message,
             "severityLevel": "Error", "timeOfOccurance": _stamp(_now())}
    return {**entry, **{key: value for key, value in extra.items() if value is not None}}


class _Refusal(Exception):
    def __init__(self, status: int, entries: list[dict[str, Any]]):
        self.status = status
        self.entries = entries


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class Quirks(BaseModel):
    """Where real DNP may answer as loosely as its contract allows, the sandbox does when asked to."""

    numeric_attribute_values: bool = Field(
        False, description="LogEntry attributeValue sent as a JSON number (its digits, else 0), as the YAML's example")
    accepted_without_job_id: bool = Field(
        False, description="202 answers carry the job only in the Location header, not as jobId in the body")
    max_payload_bytes: int | None = Field(
        None, ge=1, description="refuse bodies over this many bytes with 413 (5020), below the client's own cap")


@dataclass
class Stored:
    wire: dict[str, Any]
    model: Any
    created: str
    modified: str

    def as_answer(self) -> dict[str, Any]:
        return {**self.wire, "meta": {"created": self.created, "modified": self.modified},
                "provisioningStatus": True}


@dataclass
class Job:
    id: str
    kind: str
    operation: Operation
    items: list[Any]
    due: float
    received: str
    results: list[dict[str, Any]] | None = None


@dataclass
class SandboxState:
    records: dict[str, dict[str, Stored]] = field(default_factory=lambda: {kind: {} for kind in KINDS})
    eppns: dict[str, str] = field(default_factory=dict)  # EPPN → person id
    jobs: dict[str, Job] = field(default_factory=dict)
    queue: deque[Job] = field(default_factory=deque)
    outcomes: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)  # record id → a status text DNP's enum does not list
    windows: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    rate_limited: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {"records": {kind: sorted(held) for kind, held in self.records.items()},
                "jobs": len(self.jobs), "pending_jobs": len(self.queue), "rate_limited": self.rate_limited,
                "outcomes": {**self.outcomes, **self.statuses}}


def call_class(method: str, path: str) -> str:
    """``write`` for bulk writes and job status (5/s), ``read`` for GET and lookup (10/s)."""
    if "/bulk/jobs/" in path:
        return "write"
    if method in ("POST", "PUT") and not path.endswith("/lookup"):
        return "write"
    return "read"


class _Models(Mapping[str, Any]):
    """The held records' models by id, without copying what the sandbox holds for every record judged."""

    def __init__(self, stored: Mapping[str, Any]):
        self._stored = stored

    def __getitem__(self, key: str) -> Any:
        return self._stored[key].model

    def __iter__(self) -> Iterator[str]:
        return iter(self._stored)

    def __len__(self) -> int:
        return len(self._stored)


def known_school_units(dataset: Dataset) -> Collection[str]:
    """Skolverket's ids of the data set's school units, as the sandbox knows them."""
    return frozenset(school_unit_id(unit.code) for unit in dataset.school_units)


def create_app(
    dataset: Dataset,
    *,
    token: str = "sandbox-token",
    verify_token: Callable[[str], bool] | None = None,
    job_delay_seconds: float = 0.2,
    write_limit: int = int(WRITE_CALLS_PER_SECOND),
    read_limit: int = int(READ_CALLS_PER_SECOND),
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    test_activities: Iterable[str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    quirks: Quirks | None = None,
) -> FastAPI:
    """A DNP sandbox for the data set's huvudman; ``test_activities``: display names of known test activities.

    The rate windows are per client IP, as DNP's are: two processes on one machine share them.
    """
    school_units = known_school_units(dataset)
    names = test_activities if test_activities is not None else [name for name, _, _ in DEFAULT_TEST_ACTIVITIES]
    known_activities = frozenset(activity_id(name) for name in names)
    limits = {"write": write_limit, "read": read_limit}
    state = SandboxState()
    loose = quirks or Quirks()
    app = FastAPI(title="DNP Provisioning API sandbox",
                  description="Skolverket's Provtjänstens Provisioning API 1.3.x, for tests and demos.")

    @app.exception_handler(_Refusal)
    async def refused(request: Request, exc: _Refusal) -> JSONResponse:
        return JSONResponse(exc.entries, exc.status)

    @app.middleware("http")
    async def rate_limit_and_auth(request: Request, call_next: Callable[[Request], Any]) -> Response:
        path = request.url.path
        if path.startswith(ADMIN_PREFIX):
            return await call_next(request)
        kind = call_class(request.method, path)
        limit = limits[kind]
        now = clock()
        window = state.windows.setdefault((request.client.host if request.client else "", kind), deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        limited = len(window) >= limit
        if not limited:
            window.append(now)
        # Reset rounded up to the millisecond: a client that waits exactly that long finds the window moved on.
        reset = math.ceil(max(0.0, window[0] + 1.0 - now) * 1000) / 1000 if window else 0.0
        headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(0, limit - len(window))),
                   "X-RateLimit-Reset": f"{reset:.3f}"}
        if limited:
            state.rate_limited += 1
            response: Response = JSONResponse([log_entry(
                rules.TOO_MANY_REQUESTS, 429, "Teknisk begränsning",
                "Den högsta tillåtna antal förfrågningar har uppnåtts för den specifika URL:en.")], 429)
        elif path != "/alive" and not _authorised(request):
            response = JSONResponse([log_entry(rules.TOKEN_INVALID, 403, "Behörighet saknas",
                                               "Ogiltigt JWT bearer token.")], 403)
        else:
            settle()
            response = await call_next(request)
        response.headers.update(headers)
        return response

    def _authorised(request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        given = given.strip()
        return secrets.compare_digest(given.encode(), token.encode()) or (
            verify_token is not None and verify_token(given))

    async def body_of(request: Request) -> Any:
        raw = await request.body()
        if len(raw) > (loose.max_payload_bytes or max_payload_bytes):
            raise _Refusal(413, [log_entry(rules.PAYLOAD_TOO_LARGE, 413, "Teknisk begränsning",
                                           "Provisionerade uppgifter överstiger tillåten datamängd.")])
        try:
            return json.loads(raw)
        except ValueError:
            raise _Refusal(400, [log_entry(rules.RECORD_INVALID, 400, rules.INVALID_FORMAT,
                                           "Ogiltigt format på ´body´. Innehållet är inte giltig JSON.")]) from None

    def boolean(request: Request, name: str, code: str) -> bool:
        value = request.query_params.get(name, "false")
        if value not in ("true", "false"):
            raise _Refusal(400, [log_entry(code, 400, rules.INVALID_FORMAT,
                                           f"Ogiltigt format på ´query´ parameter <{name}>. Format ska vara boolean "
                                           "(true/false).", parameterName=name, parameterValue=value)])
        return value == "true"

    def data_list(body: Any) -> list[Any]:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not data:
            raise _Refusal(400, [log_entry(rules.RECORD_INVALID, 400, rules.INVALID_FORMAT,
                                           "Ogiltigt format på ´body´ parameter <data>. Värdet ska vara en lista "
                                           "med minst en post.", parameterName="data")])
        return data

    def accept(request: Request, kind: str, operation: Operation, items: list[Any]) -> JSONResponse:
        job = Job(str(uuid.uuid4()), kind, operation, items, clock() + job_delay_seconds, _stamp(_now()))
        state.jobs[job.id] = job
        state.queue.append(job)
        if worker.get("task") is None or worker["task"].done():
            worker["task"] = asyncio.get_running_loop().create_task(work())
        location = f"{str(request.base_url).rstrip('/')}/{kind}/bulk/jobs/{job.id}"
        body = {"message": ACCEPTED_MESSAGE} if loose.accepted_without_job_id else {"jobId": job.id,
                                                                                   "message": ACCEPTED_MESSAGE}
        return JSONResponse(body, 202, headers={"Location": location})

    def settle(most: int | None = None) -> None:
        """Process, in the order received, every job whose delay has passed (at most ``most`` of them)."""
        now = clock()
        done = 0
        while state.queue and state.queue[0].due <= now and (most is None or done < most):
            job = state.queue.popleft()
            job.results = [process(job, item) for item in job.items]
            done += 1

    # DNP processes jobs apart from its API: a request never waits while another job's records are judged. One
    # background task per server processes each job when it is due, one at a time so that requests come between;
    # settle() in the middleware only catches up, so a job is always processed when its status is read after due.
    worker: dict[str, asyncio.Task[None]] = {}

    async def work() -> None:
        while state.queue:
            await asyncio.sleep(min(1.0, max(0.005, state.queue[0].due - clock())))
            settle(most=1)

    def result(record_id: str, status: str, code: int, at: str, *, location: str | None = None,
               errors: list[dict[str, Any]] | None = None, warnings: list[dict[str, Any]] | None = None
               ) -> dict[str, Any]:
        response: dict[str, Any] = {"status": status, "statusCode": code, "errors": numeric(errors or []),
                                    "warnings": numeric(warnings or [])}
        if location:
            response["location"] = location
        return {"id": record_id, "response": response, "meta": {"created": at, "modified": at}}

    def numeric(logged: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """With the quirk on, every attributeValue as a JSON number: its digits, else the YAML's example 0."""
        if not loose.numeric_attribute_values:
            return logged
        return [{**entry, "attributeValue": int(value) if isinstance(value, str) and value.isdigit() else 0}
                if (value := entry.get("attributeValue")) is not None else entry for entry in logged]

    def process(job: Job, item: Any) -> dict[str, Any]:
        """One record's answer; with a status text set for it, that text in place of the status (once)."""
        record_id = item if isinstance(item, str) else str(item.get("id", "")) if isinstance(item, dict) else ""
        text = state.statuses.pop(record_id, None)
        answer = answer_of(job, item)
        if text is not None:
            answer["response"]["status"] = text
        return answer

    def entries(violations: list[Violation], kind: str, record_id: str, at: dt.datetime) -> list[dict[str, Any]]:
        return [v.to_log_entry(OBJECT_TYPES[kind], record_id, at).to_wire() for v in violations]

    def answer_of(job: Job, item: Any) -> dict[str, Any]:
        at = _now()
        stamp = _stamp(at)
        kind = job.kind
        held = state.records[kind]
        if job.operation == "delete":
            record_id = item if isinstance(item, str) else json.dumps(item)
            if record_id not in held:
                missing = Violation(rules.NOT_FOUND, rules.INVALID_VALUE,
                                    f"{OBJECT_TYPES[kind]} identifierats av angivet värde hittades inte.",
                                    "id", record_id, status_code=404)
                return result(record_id, "Error", 404, stamp, errors=entries([missing], kind, record_id, at))
            forget(kind, record_id)
            return result(record_id, "Success", 200, stamp)
        record_id = str(item.get("id", "")) if isinstance(item, dict) else ""
        forced = state.outcomes.pop(record_id, None)
        if forced == "TemporaryError":
            down = Violation(rules.SERVICE_UNAVAILABLE, "Teknisk begränsning",
                             "Tjänsten är inte tillgänglig. Försök igen senare.", "id", record_id, status_code=503)
            return result(record_id, "TemporaryError", 503, stamp, errors=entries([down], kind, record_id, at))
        violations = judge(kind, job.operation, item, record_id)
        if rules.errors(violations):
            return result(record_id, "Error", 400, stamp, errors=entries(rules.errors(violations), kind, record_id, at),
                          warnings=entries(rules.warnings(violations), kind, record_id, at))
        if forced == "Warning":
            violations.append(Violation(FORCED_WARNING, rules.POOR_VALUE,
                                        "Uppgiften har accepterats med en varning (framkallad i sandlådan).", "id",
                                        record_id, severity="Warning"))
        existed = record_id in held
        store(kind, item, stamp)
        warned = rules.warnings(violations)
        return result(record_id, "Warning" if warned else "Success", 200 if existed else 201, stamp,
                      location=f"/{kind}/{record_id}", warnings=entries(warned, kind, record_id, at))

    def judge(kind: str, operation: Operation, item: Any, record_id: str) -> list[Violation]:
        if not _is_uuid(record_id):
            return [Violation(rules.BODY_ID_FORMAT, rules.INVALID_FORMAT,
                              "Ogiltigt format på ´body´ parameter <id>. Format ska vara UUID enligt RFC4122. Se "
                              "https://www.ietf.org/rfc/rfc4122.txt.", "id", record_id)]
        try:
            record = RECORD_MODELS[kind].model_validate(item)
        except ValidationError as exc:
            return [Violation(rules.RECORD_INVALID, rules.INVALID_FORMAT,
                              f"Ogiltigt format på <{'.'.join(str(part) for part in error['loc'])}>: "
                              f"{error['type']}.", ".".join(str(part) for part in error["loc"]))
                    for error in exc.errors()]
        exists = record_id in state.records[kind]
        if operation == "create" and exists:
            return [Violation(rules.ALREADY_EXISTS, rules.INVALID_VALUE,
                              f"{OBJECT_TYPES[kind]} med angivet id finns redan. Använd updateIfExists=true eller PUT "
                              "för att uppdatera.", "id", record_id, status_code=409)]
        if operation == "update" and not exists:
            return [Violation(rules.NOT_FOUND, rules.INVALID_VALUE,
                              f"{OBJECT_TYPES[kind]} identifierats av angivet värde hittades inte.", "id", record_id,
                              status_code=404)]
        return check(record)

    def check(record: Any) -> list[Violation]:
        persons = _Models(state.records["persons"])
        if isinstance(record, Person):
            return rules.person_violations(record, school_units) + rules.eppn_violations(record, state.eppns)
        if isinstance(record, Duty):
            return rules.duty_violations(record, school_units) + rules.duty_reference_violations(record, persons)
        if isinstance(record, Group):
            return rules.group_violations(record, school_units) + rules.group_reference_violations(record, persons)
        assert isinstance(record, Activity)
        return (rules.activity_violations(record, known_activities, school_units)
                + rules.activity_reference_violations(record, state.records["groups"], state.records["duties"]))

    def store(kind: str, item: dict[str, Any], stamp: str) -> None:
        model = RECORD_MODELS[kind].model_validate(item)
        wire = {key: value for key, value in model.to_wire().items() if key not in ("meta", "provisioningStatus")}
        previous = state.records[kind].get(model.id)
        if previous is not None:
            forget(kind, model.id)
        state.records[kind][model.id] = Stored(wire, model, previous.created if previous else stamp, stamp)
        if isinstance(model, Person):
            state.eppns.update((eppn, model.id) for eppn in model.edu_person_principal_names)

    def forget(kind: str, record_id: str) -> None:
        stored = state.records[kind].pop(record_id)
        if isinstance(stored.model, Person):
            for eppn in stored.model.edu_person_principal_names:
                state.eppns.pop(eppn, None)

    def job_of(kind: str, job_id: str) -> Job:
        job = state.jobs.get(job_id) if _is_uuid(job_id) else None
        if not _is_uuid(job_id):
            raise _Refusal(400, [log_entry(rules.PATH_ID_FORMAT, 400, rules.INVALID_FORMAT,
                                           "Ogiltigt format på ´path´ parameter <id>. Format ska vara UUID enligt "
                                           "RFC4122. Se https://www.ietf.org/rfc/rfc4122.txt.", parameterName="id",
                                           parameterValue=job_id)])
        if job is None or job.kind != kind:
            raise _Refusal(404, [log_entry(rules.NOT_FOUND, 404, rules.INVALID_VALUE,
                                           "Bulk-jobb identifierats av angivet värden i `path` parameter <id> hittades "
                                           "inte.", parameterName="id", parameterValue=job_id)])
        return job

    def record_of(kind: str, record_id: str) -> Stored:
        if not _is_uuid(record_id):
            raise _Refusal(400, [log_entry(rules.PATH_ID_FORMAT, 400, rules.INVALID_FORMAT,
                                           "Ogiltigt format på ´path´ parameter <id>. Format ska vara UUID enligt "
                                           "RFC4122. Se https://www.ietf.org/rfc/rfc4122.txt.", parameterName="id",
                                           parameterValue=record_id, resourceType=OBJECT_TYPES[kind])])
        stored = state.records[kind].get(record_id)
        if stored is None:
            raise _Refusal(404, [log_entry(rules.NOT_FOUND, 404, rules.INVALID_VALUE,
                                           f"{OBJECT_TYPES[kind]} identifierats av angivet värden i `path` parameter "
                                           "<id> hittades inte.", parameterName="id", parameterValue=record_id,
                                           resourceType=OBJECT_TYPES[kind])])
        return stored

    def listed(kind: str, stored: Stored) -> dict[str, Any]:
        answer = stored.as_answer()
        return {k: v for k, v in answer.items() if k in PERSON_LIST_FIELDS} if kind == "persons" else answer

    def page_offset(request: Request) -> tuple[int, int]:
        raw_limit = request.query_params.get("limit", "50")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
            raise _Refusal(400, [log_entry(rules.LIMIT_INVALID, 400, rules.INVALID_VALUE,
                                           "Värdet för <limit> måste vara ett tal mellan 1 och 100 (inklusive).",
                                           parameterName="limit")])
        token_value = request.query_params.get("pageToken")
        if token_value is None:
            return int(raw_limit), 0
        try:
            offset = json.loads(base64.urlsafe_b64decode(token_value.encode()))["offset"]
            if not isinstance(offset, int) or offset < 0:
                raise ValueError(offset)
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise _Refusal(400, [log_entry(rules.RECORD_INVALID, 400, rules.INVALID_FORMAT,
                                           "Ogiltigt format på ´query´ parameter <pageToken>.",
                                           parameterName="pageToken")]) from None
        return int(raw_limit), offset

    def lookup_ids(body: Any, name: str) -> list[str]:
        values = body.get(name) or [] if isinstance(body, dict) else None
        if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
            raise _Refusal(400, [log_entry(rules.BODY_ID_FORMAT, 400, rules.INVALID_FORMAT,
                                           f"Ogiltigt format på ´body´ parameter <{name}>.", parameterName=name)])
        if name == "ids" and not all(_is_uuid(value) for value in values):
            raise _Refusal(400, [log_entry(rules.BODY_ID_FORMAT, 400, rules.INVALID_FORMAT,
                                           "Ogiltigt format på ´body´ parameter <ids>. Format ska vara UUID enligt "
                                           "RFC4122. Se https://www.ietf.org/rfc/rfc4122.txt.", parameterName="ids")])
        return values

    @app.get("/alive")
    async def alive() -> Response:
        return Response(status_code=200)

    def routes(kind: str) -> None:
        @app.post(f"/{kind}/bulk", name=f"bulk_create_{kind}")
        async def bulk_create(request: Request) -> JSONResponse:
            upsert = boolean(request, "updateIfExists", rules.UPDATE_IF_EXISTS_FORMAT)
            items = data_list(await body_of(request))
            return accept(request, kind, "upsert" if upsert else "create", items)

        @app.put(f"/{kind}/bulk", name=f"bulk_update_{kind}")
        async def bulk_update(request: Request) -> JSONResponse:
            return accept(request, kind, "update", data_list(await body_of(request)))

        @app.post(f"/{kind}/bulk/delete", name=f"bulk_delete_{kind}")
        async def bulk_delete(request: Request) -> JSONResponse:
            return accept(request, kind, "delete", data_list(await body_of(request)))

        @app.get(f"/{kind}/bulk/jobs/{{job_id}}", name=f"job_{kind}")
        async def job_status(job_id: str, request: Request) -> JSONResponse:
            only_errors = boolean(request, "showOnlyError", rules.RECORD_INVALID)
            job = job_of(kind, job_id)
            if job.results is None:
                pending = [{"id": item if isinstance(item, str) else str(item.get("id", "")) if isinstance(item, dict)
                            else "", "response": {"status": "Pending"},
                            "meta": {"created": job.received, "modified": job.received}} for item in job.items]
                responses = [] if only_errors else pending
            else:
                responses = [r for r in job.results if not only_errors or r["response"]["status"] == "Error"]
            return JSONResponse({"jobId": job.id, "responses": responses}, headers={"Cache-Control": "no-store"})

        @app.get(f"/{kind}/bulk/jobs/{{job_id}}/isCompleted", name=f"job_completed_{kind}")
        async def job_completed(job_id: str) -> JSONResponse:
            return JSONResponse(job_of(kind, job_id).results is not None, headers={"Cache-Control": "no-store"})

        @app.post(f"/{kind}/lookup", name=f"lookup_{kind}")
        async def lookup(request: Request) -> JSONResponse:
            body = await body_of(request)
            held = state.records[kind]
            wanted = set(lookup_ids(body, "ids"))
            if kind == "persons":
                civic_nos = set(lookup_ids(body, "civicNos"))
                eppns = set(lookup_ids(body, "eduPersonPrincipalNames"))
                wanted |= {pid for pid, stored in held.items() if stored.model.civic_no.value in civic_nos
                           or eppns.intersection(stored.model.edu_person_principal_names)}
            return JSONResponse([held[rid].as_answer() for rid in sorted(wanted) if rid in held])

        @app.get(f"/{kind}", name=f"list_{kind}")
        async def list_records(request: Request) -> JSONResponse:
            limit, offset = page_offset(request)
            held = list(state.records[kind].values())
            page = held[offset:offset + limit]
            following = offset + limit
            token_value = (base64.urlsafe_b64encode(json.dumps({"offset": following}).encode()).decode()
                           if following < len(held) else None)
            return JSONResponse({"data": [listed(kind, stored) for stored in page], "pageToken": token_value})

        @app.get(f"/{kind}/{{record_id}}", name=f"get_{kind}")
        async def get_record(record_id: str) -> JSONResponse:
            return JSONResponse(record_of(kind, record_id).as_answer())

    for kind in KINDS:
        routes(kind)

    @app.get(f"{ADMIN_PREFIX}/state", include_in_schema=False)
    async def read_state() -> dict[str, Any]:
        settle()
        return state.snapshot()

    @app.delete(f"{ADMIN_PREFIX}/state", include_in_schema=False)
    async def reset_state() -> dict[str, Any]:
        fresh = SandboxState()
        for name in fresh.__dataclass_fields__:
            setattr(state, name, getattr(fresh, name))
        return state.snapshot()

    @app.put(f"{ADMIN_PREFIX}/outcomes", include_in_schema=False)
    async def set_outcomes(outcomes: dict[str, str]) -> dict[str, str]:
        for record_id, status in outcomes.items():
            (state.outcomes if status in ("Warning", "TemporaryError") else state.statuses)[record_id] = status
        return {**state.outcomes, **state.statuses}

    @app.get(f"{ADMIN_PREFIX}/quirks", include_in_schema=False)
    async def read_quirks() -> Quirks:
        return loose

    @app.put(f"{ADMIN_PREFIX}/quirks", include_in_schema=False)
    async def set_quirks(given: Quirks) -> Quirks:
        nonlocal loose
        loose = given
        return loose

    return app
