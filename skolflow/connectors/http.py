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
import random
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
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            number = float(reset)
        except ValueError:
            return None
        # Either seconds to wait or an epoch timestamp; epoch values are far larger than any wait.
        current = now or time.time()
        return max(0.0, number - current) if number > 1_000_000_000 else number
    return None


def is_transient_status(status_code: int) -> bool:
    """429 and 5xx, except what a retry cannot change: 501 (not implemented) and 505 (HTTP version)."""
    return status_code == 429 or (status_code >= 500 and status_code not in (501, 505))


class RateLimiter:
    """Client-side limit of ``rate`` calls per second (token bucket with burst 1).

    Each call reserves the next free slot, ``interval`` after the one before, and waits for it. ``clock`` and
    ``sleep`` are the ones a test replaces to check those decisions without waiting on the machine's time.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.interval = 1.0 / rate
        self.clock = clock
        self.sleep = sleep
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            now = self.clock()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            await self.sleep(wait)


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
) -> httpx.AsyncClient:
    """A pooled client for ``system`` whose every request, tokens and absolute URLs included, passes the door.

    The check is a request hook rather than a transport, so that the environment's proxy settings still apply.
    A refusal raises :class:`skolflow.guard.ProductionGuardError` before a connection is made, and is never retried.
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
    )


OnRetry = Callable[[int, str], None]


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
    **kwargs: Any,
) -> httpx.Response:
    """Send a request, retrying transient failures; return a 2xx/3xx response or raise RemoteError.

    ``prepare`` is awaited before each attempt for headers that may change between attempts (a
    refreshed OAuth2 token). ``on_retry`` hears why each retry happens, for logging.
    """
    last_reason = ""
    base_headers = dict(kwargs.pop("headers", None) or {})
    response: httpx.Response | None = None
    for attempt in range(retry.attempts):
        if limiter is not None:
            await limiter.acquire()
        headers = {**base_headers, **(await prepare() if prepare else {})}
        wait: float | None = None
        try:
            response = await client.request(method, url, headers=headers, **kwargs)
        except TRANSIENT_EXCEPTIONS as exc:
            last_reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            response = None
        if response is not None:
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
