"""Async client for Skolverket's DNP Provisioning API (schemas/dnp/dnp-provisioning-api.yaml).

Bulk writes are asynchronous: a POST/PUT/delete answers 202 with a ``jobId``, and the job's status
(``AsynchronousResponse``, one result per record) is polled until no record is ``Pending``. The API
allows 5 calls/s per client for writes and job status and 10 calls/s for reads, and 200 KB per call
(CHANGELOG 1.3.1). The limits are DNP's per client IP, not per client object: every DnpClient of a
process draws on one :class:`RateBudget` per DNP host (:func:`shared_budget`), one :class:`RateLimiter` per
call class, set a tenth below the stated limit so that network jitter cannot bunch calls into a 429, and
told by DNP's ``X-RateLimit-Remaining``/``X-RateLimit-Reset`` on every answer. So the tasks and subflows
of a run (each builds its own client) and concurrent runs in one process never add up to more than DNP
allows. The client refuses to send a body over the cap; :func:`chunk_by_size` splits records into bodies
that fit, and :meth:`DnpClient.submit_chunked` halves a chunk DNP still answers 413.

Read tolerantly, where the contract is loose: a 202 whose body lacks ``jobId`` names the job by its
``Location`` header; job answers take any scalar as a LogEntry's ``attributeValue`` and any text as a
record's status (see :attr:`skolflow.connectors.dnp.models.RecordResponse.settled`).

Authentication: a JWT from Skolverket's authorisation server, given as a string or as an async callable
that returns the current one (awaited before every attempt). A source that can refresh
(:class:`RefreshableToken`, e.g. :class:`skolflow.connectors.dnp.auth.MtlsTokenSource`, which fetches it over
mTLS) is told when DNP refuses a token (403, code 5002) and the call is made once more with a fresh one.
Errors are :class:`DnpError` with Skolverket's ``LogEntry`` list parsed and the body masked, since a
lookup by civic number may be echoed back.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from skolflow.connectors.dnp import rules
from skolflow.connectors.dnp.models import (
    RECORD_MODELS,
    Accepted,
    AsynchronousResponse,
    IdLookup,
    LogEntry,
    PersonLookup,
)
from skolflow.connectors.http import (
    HttpSettings,
    RateLimiter,
    RemoteError,
    TransientError,
    build_client,
    request_with_bearer,
)
from skolflow.identity import mask_text

SYSTEM = "dnp"
PRODUCTION_URL = "https://api.skolverket.se/provtjanst/provisioning/v1"
VERIFICATION_URL = "https://apigw-pre.skolverket.se/provtjanst/verifieringstest/provisioning/v1"

MAX_PAYLOAD_BYTES = 200_000  # "200 KB per anrop": the decimal reading, which also satisfies 200 KiB
WRITE_CALLS_PER_SECOND = 5.0  # bulk writes and job status
READ_CALLS_PER_SECOND = 10.0  # GET, lookup
RATE_MARGIN = 0.95

Kind = Literal["persons", "duties", "groups", "activities"]
TokenSource = str | Callable[[], Awaitable[str]]


@runtime_checkable
class RefreshableToken(Protocol):
    """A token source that can drop a token DNP refused, so the next call fetches a fresh one
    (:class:`skolflow.connectors.dnp.auth.MtlsTokenSource`)."""

    async def __call__(self) -> str: ...

    def invalidate(self, token: str | None = None) -> None: ...
Record = BaseModel | Mapping[str, Any]
R = TypeVar("R", bound=Record)

_ENVELOPE = len(b'{"data":[]}')
_LOG_ENTRIES = TypeAdapter(list[LogEntry])


class DnpError(RemoteError):
    """DNP refused a call; ``entries`` holds its LogEntry list (empty when the body was not one)."""

    def __init__(self, status_code: int, body: str, *, method: str, url: str, transient: bool = False):
        super().__init__(SYSTEM, status_code, body, method=method, url=url)
        self.transient = transient
        try:
            self.entries = _LOG_ENTRIES.validate_json(body)
        except ValidationError:
            self.entries = []

    @property
    def codes(self) -> list[str]:
        return [entry.id for entry in self.entries]


class PayloadTooLarge(ValueError):
    """A body over DNP's cap, refused before sending (DNP would answer 413, code 5020)."""


class JobTimeout(TimeoutError):
    """A job still had Pending records when the wait ran out."""


@dataclass(frozen=True)
class RateBudget:
    """DNP's two limits as one process spends them: writes and job status (5/s), reads (10/s)."""

    writes: RateLimiter
    reads: RateLimiter

    @classmethod
    def of(cls, write_rate: float = WRITE_CALLS_PER_SECOND, read_rate: float = READ_CALLS_PER_SECOND, *,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> RateBudget:
        """A budget RATE_MARGIN below the stated rates (a test gives its own ``clock`` and ``sleep``)."""
        return cls(RateLimiter(write_rate * RATE_MARGIN, clock=clock, sleep=sleep),
                   RateLimiter(read_rate * RATE_MARGIN, clock=clock, sleep=sleep))


_BUDGETS: dict[tuple[str, float, float], RateBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def shared_budget(base_url: str, write_rate: float = WRITE_CALLS_PER_SECOND,
                  read_rate: float = READ_CALLS_PER_SECOND) -> RateBudget:
    """This process's one budget for the DNP host of ``base_url`` (scheme, host and port; the path is not part).

    DNP counts calls per client IP, so every client in the process that reaches the same host — every task and
    subflow of a run, and runs for other huvudmän in the same process — must draw on the same limiters. The
    verification and production hosts are counted apart, as DNP counts them.
    """
    url = httpx.URL(base_url)
    port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    key = (f"{url.scheme}://{url.host}:{port}".lower(), write_rate, read_rate)
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(key)
        if budget is None:
            budget = _BUDGETS[key] = RateBudget.of(write_rate, read_rate)
        return budget


def forget_budgets() -> None:
    """Drop every shared budget: a new process's state, for tests that must not inherit another's calls."""
    with _BUDGETS_LOCK:
        _BUDGETS.clear()


def _record_id(record: Record) -> str:
    return str(getattr(record, "id", None) or (record.get("id", "") if isinstance(record, Mapping) else ""))


def encode_record(record: Record) -> bytes:
    """A record as it travels: compact JSON, UTF-8 (what the size cap counts)."""
    wire = record.to_wire() if hasattr(record, "to_wire") else (
        record.model_dump(mode="json", by_alias=True, exclude_none=True) if isinstance(record, BaseModel)
        else dict(record))
    return encode_wire(wire)


def encode_wire(wire: Mapping[str, Any]) -> bytes:
    """A record's JSON object as it travels (:func:`encode_record` of a record already turned into one)."""
    return json.dumps(wire, ensure_ascii=False, separators=(",", ":")).encode()


def bulk_body(encoded: Sequence[bytes]) -> bytes:
    """``{"data": [...]}`` of already encoded records, byte for byte as sent."""
    return b'{"data":[' + b",".join(encoded) + b"]}"


class Chunker(Generic[R]):
    """Records in one at a time, full chunks out: what :func:`chunk_by_size` does for records that are still coming."""

    def __init__(self, limit_bytes: int = MAX_PAYLOAD_BYTES):
        self.limit_bytes = limit_bytes
        self._chunk: list[R] = []
        self._size = _ENVELOPE

    def add(self, record: R, length: int | None = None) -> list[R] | None:
        """The chunk that ``record`` does not fit in (``record`` starts the next), or None.

        ``length``: the record's encoded length, when the caller has encoded it already. A record too large for
        any body raises :class:`PayloadTooLarge` (it can never be sent) and is not kept.
        """
        length = len(encode_record(record)) if length is None else length
        if _ENVELOPE + length > self.limit_bytes:
            raise PayloadTooLarge(f"one record is {length} bytes; DNP takes at most {self.limit_bytes} per call")
        added = length + (1 if self._chunk else 0)
        full = None
        if self._chunk and self._size + added > self.limit_bytes:
            full, self._chunk, self._size, added = self._chunk, [], _ENVELOPE, length
        self._chunk.append(record)
        self._size += added
        return full

    def rest(self) -> list[R]:
        """The last, partly filled chunk (empty if there is none); the chunker starts afresh."""
        chunk, self._chunk, self._size = self._chunk, [], _ENVELOPE
        return chunk


def chunk_by_size(records: Iterable[R], limit_bytes: int = MAX_PAYLOAD_BYTES) -> Iterator[list[R]]:
    """Consecutive lists of ``records`` whose ``{"data": [...]}`` body stays within ``limit_bytes``.

    A single record too large for any body raises :class:`PayloadTooLarge` (it can never be sent).
    """
    chunker: Chunker[R] = Chunker(limit_bytes)
    for record in records:
        if (full := chunker.add(record)) is not None:
            yield full
    if rest := chunker.rest():
        yield rest


class DnpClient:
    """``async with DnpClient(url, token) as dnp: job = await dnp.submit("persons", people)``.

    Calls draw on the process's :func:`shared_budget` for the host unless ``budget`` gives the client its own.
    """

    def __init__(self, base_url: str, token: TokenSource, http: HttpSettings | None = None, *,
                 write_rate: float = WRITE_CALLS_PER_SECOND, read_rate: float = READ_CALLS_PER_SECOND,
                 max_payload_bytes: int = MAX_PAYLOAD_BYTES, budget: RateBudget | None = None):
        self._settings = http or HttpSettings()
        self._http = build_client(base_url, self._settings, system=SYSTEM, headers={"Accept": "application/json"})
        self._token = token
        self.budget = budget or shared_budget(base_url, write_rate, read_rate)
        self.writes = self.budget.writes
        self.reads = self.budget.reads
        self.max_payload_bytes = max_payload_bytes

    async def __aenter__(self) -> DnpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _token_value(self) -> str:
        return self._token if isinstance(self._token, str) else await self._token()

    def _refused(self, exc: RemoteError) -> bool:
        """403 code 5002 (token expired or revoked) refuses the token, when the source can fetch a fresh one."""
        return (isinstance(self._token, RefreshableToken) and not isinstance(exc, DnpError)
                and exc.status_code == 403 and rules.TOKEN_INVALID in DnpError(403, exc.body, method="", url="").codes)

    def _forget(self, token: str | None) -> None:
        if isinstance(self._token, RefreshableToken):
            self._token.invalidate(token)

    async def _call(self, method: str, path: str, limiter: RateLimiter, **kwargs: Any) -> httpx.Response:
        """One call; on 403 code 5002 (token refused: expired, revoked) a refreshable token source is asked for a
        fresh token and the call is made once more (:func:`request_with_bearer`); a second 5002 is DNP's verdict
        on the fresh token too, and raised."""
        try:
            return await request_with_bearer(self._http, SYSTEM, method, path, retry=self._settings.retry,
                                             limiter=limiter, token=self._token_value, refused=self._refused,
                                             forget=self._forget, **kwargs)
        except DnpError:
            raise  # the token source could not get a token (DnpAuthError): already in its own words
        except RemoteError as exc:
            raise DnpError(exc.status_code, mask_text(exc.body), method=method, url=path,
                           transient=isinstance(exc, TransientError)) from None

    def _parse(self, model: Any, response: httpx.Response, method: str, path: str, item: Any = None) -> Any:
        """The answer (or one ``item`` of it) as ``model``; another shape is a DnpError, its body masked.

        (pydantic's own error would quote the input, civic numbers included.)
        """
        try:
            adapter = TypeAdapter(model)
            return adapter.validate_json(response.text) if item is None else adapter.validate_python(item)
        except ValidationError:
            shown = response.text if item is None else json.dumps(item, ensure_ascii=False)
            raise DnpError(response.status_code, f"not the contract's shape: {mask_text(shown[:500])}",
                           method=method, url=path) from None

    async def _send_bulk(self, method: str, path: str, encoded: list[bytes],
                         params: Mapping[str, str] | None = None) -> str:
        body = bulk_body(encoded)
        if len(body) > self.max_payload_bytes:
            raise PayloadTooLarge(f"a body of {len(body)} bytes; DNP takes at most {self.max_payload_bytes} "
                                  "per call (use chunk_by_size)")
        response = await self._call(method, path, self.writes, content=body, params=params,
                                    headers={"Content-Type": "application/json"})
        return self._job_id(response, method, path)

    def _job_id(self, response: httpx.Response, method: str, path: str) -> str:
        """The job a 202 names: ``jobId`` in the body, else the last segment of its ``Location`` header.

        The contract declares both but requires neither, so an answer with only one of them is read; one with
        neither leaves the records' fate unknown, which is an error (the chunk is sent again by the next run).
        """
        try:
            accepted = Accepted.model_validate_json(response.text) if response.text.strip() else None
        except ValidationError:
            accepted = None
        if accepted is not None and accepted.job_id:
            return accepted.job_id
        location = response.headers.get("Location", "")
        job_id = httpx.URL(location).path.rstrip("/").rsplit("/", 1)[-1] if location else ""
        if job_id:
            return job_id
        raise DnpError(response.status_code, "the job's id is neither in the answer's jobId nor in a Location "
                       f"header: {mask_text(response.text[:500])}", method=method, url=path)

    async def alive(self) -> bool:
        try:
            await self._call("GET", "/alive", self.reads)
        except DnpError:
            return False
        return True

    async def submit(self, kind: Kind, records: Sequence[R], *, update_if_exists: bool = False,
                     encode: Callable[[R], bytes] = encode_record) -> str:
        """``POST /{kind}/bulk``: create (or, with ``update_if_exists``, create or update); the job's id.

        ``encode``: each record's bytes, for a caller that has encoded them already (to size its chunks).
        """
        params = {"updateIfExists": "true" if update_if_exists else "false"}
        return await self._send_bulk("POST", f"/{kind}/bulk", [encode(r) for r in records], params)

    async def update(self, kind: Kind, records: Sequence[Record]) -> str:
        """``PUT /{kind}/bulk``: update records DNP already holds; the job's id."""
        return await self._send_bulk("PUT", f"/{kind}/bulk", [encode_record(r) for r in records])

    async def submit_chunked(self, kind: Kind, records: Iterable[Record], *,
                             update_if_exists: bool = False) -> list[str]:
        """Submit in as many calls as the size cap needs; one job id per call, in order.

        A chunk DNP answers 413 (its cap lower than ours) is halved and each half sent, down to single records;
        a single record DNP still refuses raises :class:`PayloadTooLarge` naming it.
        """
        job_ids: list[str] = []
        for chunk in chunk_by_size(records, self.max_payload_bytes):
            async for sent, outcome in self.submit_halving(kind, chunk, update_if_exists=update_if_exists):
                if isinstance(outcome, DnpError):
                    if len(sent) == 1:
                        raise PayloadTooLarge(f"DNP refused record {_record_id(sent[0])} alone as too large "
                                              f"(413): {outcome}")
                    continue
                job_ids.append(outcome)
        return job_ids

    async def submit_halving(self, kind: Kind, records: Sequence[R], *, update_if_exists: bool = False,
                             encode: Callable[[R], bytes] = encode_record
                             ) -> AsyncIterator[tuple[Sequence[R], str | DnpError]]:
        """``POST /{kind}/bulk`` of ``records``, halved for as long as DNP answers 413 (code 5020).

        Yields each call made, in order: the records sent and the job's id, or the 413 refusal (after which the
        two halves follow). A lone record refused is yielded with its refusal and not sent again: no body can
        carry it. Any other refusal is raised. ``encode`` as for :meth:`submit`.
        """
        try:
            job_id = await self.submit(kind, records, update_if_exists=update_if_exists, encode=encode)
        except DnpError as exc:
            if exc.status_code != 413 or exc.transient:
                raise
            yield records, exc
            if len(records) > 1:
                half = len(records) // 2
                for part in (records[:half], records[half:]):
                    async for sent in self.submit_halving(kind, part, update_if_exists=update_if_exists,
                                                          encode=encode):
                        yield sent
            return
        yield records, job_id

    async def delete(self, kind: Kind, ids: Sequence[str]) -> str:
        """``POST /{kind}/bulk/delete``; the job's id."""
        return await self._send_bulk("POST", f"/{kind}/bulk/delete", [json.dumps(i).encode() for i in ids])

    async def job(self, kind: Kind, job_id: str, *, only_errors: bool = False) -> AsynchronousResponse:
        """The job's status as DNP holds it now (never cached: each call asks DNP)."""
        path = f"/{kind}/bulk/jobs/{job_id}"
        response = await self._call("GET", path, self.writes, params={"showOnlyError": str(only_errors).lower()},
                                    headers={"Cache-Control": "no-cache"})
        return self._parse(AsynchronousResponse, response, "GET", path)

    async def is_completed(self, kind: Kind, job_id: str) -> bool:
        path = f"/{kind}/bulk/jobs/{job_id}/isCompleted"
        response = await self._call("GET", path, self.writes, headers={"Cache-Control": "no-cache"})
        return self._parse(bool, response, "GET", path)

    async def wait(self, kind: Kind, job_id: str, timeout: float = 600.0, *, interval: float = 0.25,
                   max_interval: float = 5.0) -> AsynchronousResponse:
        """Poll ``isCompleted`` with a doubling interval until the job is done, then fetch its status.

        (A provisioning step reads its jobs with fewer calls: ``skolflow.tasks.dnp_steps.JobPace``.)
        """
        deadline = time.monotonic() + timeout
        while not await self.is_completed(kind, job_id):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobTimeout(f"DNP {kind} job {job_id} not completed after {timeout:.0f} s")
            await asyncio.sleep(min(interval, remaining))
            interval = min(interval * 2, max_interval)
        return await self.job(kind, job_id)

    async def lookup(self, kind: Kind, ids: Sequence[str] = (), *, civic_nos: Sequence[str] = (),
                     eppns: Sequence[str] = ()) -> list[Any]:
        """``POST /{kind}/lookup``: records by id (persons also by civic number or EPPN)."""
        if kind == "persons":
            body: BaseModel = PersonLookup(ids=list(ids) or None, civic_nos=list(civic_nos) or None,
                                           edu_person_principal_names=list(eppns) or None)
        elif civic_nos or eppns:
            raise ValueError("only persons can be looked up by civic number or EPPN")
        else:
            body = IdLookup(ids=list(ids))
        path = f"/{kind}/lookup"
        response = await self._call("POST", path, self.reads, content=encode_record(body),
                                    headers={"Content-Type": "application/json"})
        return self._parse(list[RECORD_MODELS[kind]], response, "POST", path)

    async def get(self, kind: Kind, record_id: str) -> Any | None:
        """``GET /{kind}/{id}``; None when DNP does not hold it."""
        path = f"/{kind}/{record_id}"
        try:
            response = await self._call("GET", path, self.reads)
        except DnpError as exc:
            if exc.status_code == 404 and not exc.transient:
                return None
            raise
        return self._parse(RECORD_MODELS[kind], response, "GET", path)

    async def list(self, kind: Kind, *, limit: int = 100) -> AsyncIterator[Any]:
        """Every record of a kind, page by page (``limit`` 1–100, ``pageToken`` until null)."""
        model = RECORD_MODELS[kind]
        params: dict[str, Any] = {"limit": limit}
        path = f"/{kind}"
        while True:
            response = await self._call("GET", path, self.reads, params=params)
            page = self._parse(dict[str, Any], response, "GET", path)
            for item in page.get("data") or []:
                yield self._parse(model, response, "GET", path, item)
            token = page.get("pageToken")
            if not token:
                return
            params = {"limit": limit, "pageToken": token}
