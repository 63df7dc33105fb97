"""Client of the Betyg API: ``GET /api/skolplattform/betyg?from=…&tom=…[&schoolType=…]``.

An answer holds every student whose grades changed in the window, each with their complete list, so it
can be large. The client therefore streams the body to a file and never holds it in memory; callers
then read it with :func:`skolflow.connectors.betyg.codec.iter_students`.

Retries follow skolflow's HTTP rules (transient faults only, backoff with jitter, ``Retry-After``);
because :func:`skolflow.connectors.http.request` reads whole bodies, the streaming download repeats that
loop with the same pieces, and also restarts a download whose connection drops mid-answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlencode

import httpx

from skolflow.connectors.betyg.models import SCHOOL_TYPES
from skolflow.connectors.http import (
    TRANSIENT_EXCEPTIONS,
    HttpSettings,
    RemoteError,
    TransientError,
    build_client,
    is_transient_status,
    retry_after_seconds,
)

WINDOW_FORMAT = "%Y-%m-%dT%H:%M"  # the API's yyyy-MM-ddTHH:mm


def format_window(start: dt.datetime, end: dt.datetime) -> tuple[str, str]:
    """``from``/``tom`` to the minute, widened so that the window always covers [start, end).

    The platform compares naive local wall-clock times, so a time-zone-aware value is refused rather
    than silently shifted. ``start`` is rounded down and ``end`` up: resending a student is harmless
    (full-list semantics), missing one is not.
    """
    for value in (start, end):
        if value.tzinfo is not None:
            raise ValueError("the platform takes naive local times; pass a datetime without tzinfo")
    if start > end:
        raise ValueError(f"the window starts after it ends: {start:{WINDOW_FORMAT}} > {end:{WINDOW_FORMAT}}")
    floor = start.replace(second=0, microsecond=0)
    ceil = end.replace(second=0, microsecond=0)
    if ceil < end:
        ceil += dt.timedelta(minutes=1)
    return floor.strftime(WINDOW_FORMAT), ceil.strftime(WINDOW_FORMAT)


async def download(client: httpx.AsyncClient, system: str, url: str, dest: Path, settings: HttpSettings) -> Path:
    """GET ``url`` into ``dest`` chunk by chunk; retry transient faults, raise RemoteError on any other non-2xx.

    The body is written to ``dest`` + ``.part`` and renamed when complete, so ``dest`` never holds a
    truncated answer.
    """
    retry = settings.retry
    part = dest.with_name(dest.name + ".part")
    status, reason, target = 0, "", url
    try:
        for attempt in range(retry.attempts):
            wait: float | None = None
            try:
                async with client.stream("GET", url) as response:
                    status, target = response.status_code, str(response.url)
                    if 200 <= status < 300:
                        with part.open("wb") as file:
                            async for chunk in response.aiter_bytes():
                                file.write(chunk)
                        part.replace(dest)
                        return dest
                    body = (await response.aread()).decode(response.encoding or "utf-8", errors="replace")
                    if not is_transient_status(status):
                        raise RemoteError(system, status, body, method="GET", url=target)
                    reason = body
                    wait = retry_after_seconds(response)
                    if wait is not None:
                        wait = min(wait, retry.max_retry_after)
            except TRANSIENT_EXCEPTIONS as exc:
                status, reason = 0, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt + 1 < retry.attempts:
                await asyncio.sleep(wait if wait is not None else retry.backoff(attempt))
        raise TransientError(system, status, reason, method="GET", url=target)
    finally:
        part.unlink(missing_ok=True)


class PlatformExportClient:
    """What the platform's export APIs share: bearer auth, a from/tom window, a streamed XML answer.

    Subclasses name their ``system`` (for errors) and the endpoint ``path``.
    """

    system: str
    path: str

    def __init__(self, base_url: str, token: str | None = None, http: HttpSettings | None = None):
        self.base_url = base_url
        self.http = http or HttpSettings()
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        self._client = build_client(self.base_url, self.http, system=self.system, headers=self._headers)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _fetch(self, start: dt.datetime, end: dt.datetime, dest: Path, **extra: str) -> Path:
        if self._client is None:
            raise RuntimeError(f"use {type(self).__name__} as 'async with {type(self).__name__}(...) as client'")
        start_text, end_text = format_window(start, end)
        # Colons stay literal, as the contract writes the query (yyyy-MM-ddTHH:mm).
        query = urlencode({"from": start_text, "tom": end_text, **extra}, safe=":")
        return await download(self._client, self.system, f"{self.path}?{query}", Path(dest), self.http)


class BetygClient(PlatformExportClient):
    """``async with BetygClient(url, token) as client: path = await client.fetch(start, end, dest=...)``."""

    system = "betyg"
    path = "/api/skolplattform/betyg"

    async def fetch(self, start: dt.datetime, end: dt.datetime, school_type: str | None = None, *,
                    dest: Path) -> Path:
        """Download the grades of students changed in [start, end) to ``dest``; return ``dest``.

        ``school_type`` narrows the answer to one schoolType of the API (``GY``, ``GYSAR2002``, …).
        """
        if school_type is not None and school_type not in SCHOOL_TYPES:
            raise ValueError(f"unknown schoolType {school_type!r}; the Betyg API takes {', '.join(SCHOOL_TYPES)}")
        extra = {"schoolType": school_type} if school_type is not None else {}
        return await self._fetch(start, end, dest, **extra)
