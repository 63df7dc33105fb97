"""HTTP behaviour shared by every connector (DESIGN §5).

One pooled async client per system and run, a timeout on every call, and retries with
exponential backoff and jitter for what is transient only: connect errors, timeouts, dropped
connections, 429 (honouring ``Retry-After`` / ``X-RateLimit-Reset``) and 5xx. A 4xx is the remote
system's verdict on our request and is raised at once as :class:`RemoteError`, with the remote
body kept so that callers can show the system's own words.

:func:`build_client` is the one door out (DESIGN §5): every client it builds checks each request's
URL with the production guard of its :class:`HttpSettings` before any connection is opened, so no
caller has to remember to.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from skolflow.guard import Door
from skolflow.identity import mask_text

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=20)

TRANSIENT_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


class RemoteError(Exception):
    """A remote system refused a request. ``body`` holds its answer verbatim."""

    def __init__(self, system: str, status_code: int, body: str, *, method: str = "", url: str = ""):
        self.system = system
        self.status_code = status_code
        self.body = body
        self.method = method
        self.url = url
        # The remote body may echo an identity number back: the message is what logs and the UI show.
        super().__init__(f"{system} answered {status_code} to {method} {mask_text(url)}: {mask_text(body[:500])}")


class TransientError(RemoteError):
    """The last transient failure after every retry was spent."""


class AnswerLost(TransientError):
    """The request went out and its answer was lost (a read timeout, a dropped connection): the server may have
    carried it out. Raised at once, unretried, for a request sent with ``replay=False``: the caller asks the
    server what it holds before sending again, so a record reaches it once."""


# Failures that happen before a request leaves: nothing reached the server, so sending again is always safe.
NOT_SENT_EXCEPTIONS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    backoff_base: float = 0.2
    backoff_max: float = 10.0
    max_retry_after: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Full jitter: a random wait up to base·2^attempt, so retrying clients spread out."""
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from Retry-After (seconds or HTTP date) or X-RateLimit-Reset."""
    value = response.headers.get("Retry-After")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - (now or time.time()))
    return rate_limit_reset_seconds(response, now)


def rate_limit_reset_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds until the server's rate window resets, from ``X-RateLimit-Reset`` (seconds or an epoch time)."""
    reset = response.headers.get("X-RateLimit-Reset")
    if not reset:
        return None
    try:
        number = float(reset)
    except ValueError:
        return None
    # Either seconds to wait or an epoch timestamp; epoch values are far larger than any wait.
    current = now or time.time()
    return max(0.0, number - current) if _epoch(number) else max(0.0, number)


def _epoch(reset: float) -> bool:
    return reset > 1_000_000_000


def _reset_is_a_moment(response: httpx.Response) -> bool:
    """Whether ``X-RateLimit-Reset`` names a moment (an epoch time), not seconds from when the call was counted."""
    try:
        return _epoch(float(response.headers.get("X-RateLimit-Reset") or 0))
    except ValueError:
        return False


def rate_limit_remaining(response: httpx.Response) -> int | None:
    """``X-RateLimit-Remaining``: calls the server still allows in its current window (None when not said)."""
    value = response.headers.get("X-RateLimit-Remaining")
    if value is None:
        return None
    try:
        return max(0, int(float(value)))
    except ValueError:
        return None


def is_transient_status(status_code: int) -> bool:
    """429 and 5xx, except what a retry cannot change: 501 (not implemented) and 505 (HTTP version)."""
    return status_code == 429 or (status_code >= 500 and status_code not in (501, 505))


class RateLimiter:
    """Client-side limit of ``rate`` calls per second (token bucket with burst 1), told by the server's headers.

    Each call reserves the next free slot, ``interval`` after the one before, and waits for it. The server's
    own count comes on top (:meth:`observe`, fed every answer by :func:`request`): it counts every caller on this
    client IP, which no spacing here can know. ``Remaining: r`` lets at most ``r`` more calls go before its
    ``Reset``; ``Remaining: 0`` holds every call until then.

    One limiter may be shared by tasks running in different threads and event loops (Prefect runs sync and async
    tasks so), so the reservation arithmetic is guarded by a :class:`threading.Lock`, held only for that
    arithmetic, and the wait happens outside it on the caller's own loop. (An ``asyncio.Lock`` is bound to the
    loop that first used it and breaks in any other.) ``clock`` and ``sleep`` are the ones a test replaces to
    check these decisions without waiting on the machine's time.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.interval = 1.0 / rate
        self.clock = clock
        self.sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()
        # What the server last said: ``_remaining`` calls may go before ``_until`` (the clock's time).
        self._remaining = 0
        self._until = float("-inf")
        self._said = 0  # counts what the server said, so a waiting call knows whether news came meanwhile
        self._heard_of = float("-inf")  # when the server counted the call whose answer last spoke (estimated)

    def _reserve(self) -> tuple[float, float, int]:
        """(now, the reserved slot, what the server had said by then); the caller holds the lock."""
        now = self.clock()
        slot = max(now, self._next)
        if slot < self._until:
            if self._remaining > 0:
                self._remaining -= 1
            else:
                slot = self._until
        self._next = slot + self.interval
        return now, slot, self._said

    async def acquire(self) -> None:
        while True:
            with self._lock:
                now, slot, said = self._reserve()
            if slot > now:
                await self.sleep(slot - now)
            with self._lock:
                if said == self._said or slot >= self._until:
                    return
                # The server spoke while this call waited, of a window its slot falls in: it is counted there.
                if self._remaining > 0:
                    self._remaining -= 1
                    return
            # That window is spent: reserve again, after its reset.

    def observe(self, remaining: int | None, reset_seconds: float | None, *, sent_at: float | None = None) -> None:
        """What the server said of its window: ``remaining`` calls allowed in the ``reset_seconds`` to come.

        The Reset runs from when the server counted the call, somewhere between its sending (``sent_at``, this
        limiter's clock) and now, when its answer is read: the middle is taken. Counting from now would add the
        time the server took to answer (a 200 KB write, a job's status of hundreds of records) to every hold: at
        40,000 students the first load took 28 s instead of 27. Counting from the sending was as fast but met
        two 429s in five first loads, since a busy server counts a call later than it was sent; the middle met
        none in six (benchmarks/README.md § DNP provisioning). Without ``sent_at``, now. An answer to a call
        counted before the one last heard from is older news and changes nothing.

        ``Remaining: 0`` without a usable Reset holds one interval: a window the server says is spent is never
        called into at once.
        """
        if remaining is None:
            return
        if not reset_seconds or reset_seconds <= 0:
            if remaining > 0:
                return
            reset_seconds = self.interval
        with self._lock:
            now = self.clock()
            at = now if sent_at is None else (sent_at + now) / 2
            if at < self._heard_of:
                return
            self._heard_of = at
            self._remaining = remaining
            self._until = at + reset_seconds
            self._said += 1

    def observe_response(self, response: httpx.Response, *, sent_at: float | None = None) -> None:
        """:meth:`observe` the ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` of any answer, 2xx included (a Reset
        that names a moment is that moment, whenever the call was counted)."""
        self.observe(rate_limit_remaining(response), rate_limit_reset_seconds(response),
                     sent_at=None if _reset_is_a_moment(response) else sent_at)


@dataclass
class HttpSettings:
    """What every connector's constructor accepts besides its own credentials."""

    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    transport: httpx.AsyncBaseTransport | None = None
    limits: httpx.Limits = field(default_factory=lambda: DEFAULT_LIMITS)
    # The production guard every request passes. The default door lets requests out to this machine only:
    # reaching a real service takes settings built for the run (skolflow.settings.Settings.http).
    door: Door = field(default_factory=Door)


def build_client(
    base_url: str,
    settings: HttpSettings | None = None,
    *,
    system: str,
    headers: Mapping[str, str] | None = None,
    verify: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """A pooled client for ``system`` whose every request, tokens and absolute URLs included, passes the door.

    The check is a request hook rather than a transport, so that the environment's proxy settings still apply.
    A refusal raises :class:`skolflow.guard.ProductionGuardError` before a connection is made, and is never retried.
    ``verify`` is the TLS context for a system that needs its own: a client certificate (mTLS), another trust anchor.
    """
    settings = settings or HttpSettings()
    door = settings.door

    async def guard(outgoing: httpx.Request) -> None:
        door.check(system, str(outgoing.url))

    return httpx.AsyncClient(
        base_url=base_url,
        timeout=settings.timeout,
        limits=settings.limits,
        transport=settings.transport,
        headers=dict(headers or {}),
        follow_redirects=False,
        event_hooks={"request": [guard]},
        verify=verify if verify is not None else default_tls_context(),
    )


_TLS_CONTEXTS: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def default_tls_context() -> ssl.SSLContext:
    """httpx's own default TLS context (certifi's CA bundle, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), built once.

    httpx loads the CA bundle for every client it builds, plain http included, and that load (some 30 ms of CPU)
    was most of what building a client cost. A context is safe to share between threads and clients; it is kept
    per value of the two variables, so a changed environment still gets the bundle it names.
    """
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    context = _TLS_CONTEXTS.get(key)
    if context is None:
        context = _TLS_CONTEXTS.setdefault(key, httpx.create_ssl_context())
    return context


def tls_refusal(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a transport error when a handshake failed over a certificate (either side's).

    No retry can change that verdict, so :func:`request` raises it at once instead of spending its attempts. A
    connection cut mid-stream (``SSLEOFError``, ``SSLZeroReturnError``) is not a verdict and stays transient.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) and not isinstance(seen, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


OnRetry = Callable[[int, str], None]


async def request_with_bearer(
    client: httpx.AsyncClient,
    system: str,
    method: str,
    url: str,
    *,
    token: Callable[[], Awaitable[str]],
    refused: Callable[[RemoteError], bool],
    forget: Callable[[str | None], None],
    **kwargs: Any,
) -> httpx.Response:
    """:func:`request` with ``Authorization: Bearer <token()>``, fetched before each attempt; when the server
    refuses the token (``refused``: a 401, DNP's 403 code 5002), ``forget`` is told which token it refused and
    the call is made once more with a fresh one. A second refusal is the server's verdict, and raised.

    The server refused the call before doing anything, so sending it again is safe for a write too.
    """
    used: list[str] = []  # the token each attempt carried, the refused one last

    async def bearer() -> Mapping[str, str]:
        value = await token()
        used.append(value)
        return {"Authorization": f"Bearer {value}"}

    for attempt in range(2):
        try:
            return await request(client, system, method, url, prepare=bearer, **kwargs)
        except RemoteError as exc:
            if attempt == 0 and not isinstance(exc, TransientError) and refused(exc):
                forget(used[-1] if used else None)
                continue
            raise
    raise AssertionError("unreachable: the second attempt returns or raises")


async def request(
    client: httpx.AsyncClient,
    system: str,
    method: str,
    url: str,
    *,
    retry: RetryPolicy,
    limiter: RateLimiter | None = None,
    on_retry: OnRetry | None = None,
    prepare: Callable[[], Awaitable[Mapping[str, str]]] | None = None,
    replay: bool = True,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request, retrying transient failures; return a 2xx/3xx response or raise RemoteError.

    ``prepare`` is awaited before each attempt for headers that may change between attempts (a
    refreshed OAuth2 token). ``on_retry`` hears why each retry happens, for logging. ``replay=False`` is for a
    write that must reach the server once: a failure after it was sent raises :class:`AnswerLost` at once
    instead of sending it again (failures before it left, and 5xx/429 answers, are still retried).
    """
    last_reason = ""
    base_headers = dict(kwargs.pop("headers", None) or {})
    response: httpx.Response | None = None
    for attempt in range(retry.attempts):
        if limiter is not None:
            await limiter.acquire()
        headers = {**base_headers, **(await prepare() if prepare else {})}
        wait: float | None = None
        sent_at = limiter.clock() if limiter is not None else None
        try:
            response = await client.request(method, url, headers=headers, **kwargs)
        except TRANSIENT_EXCEPTIONS as exc:
            if tls_refusal(exc) is not None:
                raise
            last_reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if not replay and not isinstance(exc, NOT_SENT_EXCEPTIONS):
                raise AnswerLost(system, 0, last_reason, method=method, url=url) from None
            response = None
        if response is not None:
            if limiter is not None:  # every answer says how much of the server's window is left, a 2xx too
                limiter.observe_response(response, sent_at=sent_at)
            if not is_transient_status(response.status_code):
                if response.status_code >= 400:
                    raise RemoteError(system, response.status_code, response.text, method=method, url=url)
                return response
            last_reason = f"HTTP {response.status_code}"
            wait = retry_after_seconds(response)
            if wait is not None:
                wait = min(wait, retry.max_retry_after)
        if attempt + 1 == retry.attempts:
            break
        if on_retry is not None:
            on_retry(attempt + 1, last_reason)
        await asyncio.sleep(wait if wait is not None else retry.backoff(attempt))
    status = response.status_code if response is not None else 0
    body = response.text if response is not None else last_reason
    raise TransientError(system, status, body, method=method, url=url)
