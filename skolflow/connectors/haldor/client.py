"""Async client for Haldor's schedule import, as skolflow models it (DESIGN §4).

OAuth2 client credentials as for Beda: one token, cached until shortly before it expires and fetched
anew once when Haldor answers 401. A replace of more positions than one call takes (2,000) or of a
longer range than one call covers (93 days) is split into consecutive date windows, each a complete
replace of its own range, so the union of the calls means exactly what one call would have meant.

Personnummer travel only in bodies, but Haldor may quote them back: every error this client raises
has the remote body masked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from skolflow.connectors.haldor.models import (
    MAX_POSITIONS,
    MAX_RANGE_DAYS,
    Position,
    SchedulePage,
    ScheduleRequest,
    ScheduleResult,
    TokenResponse,
    User,
    UsersPage,
)
from skolflow.connectors.http import HttpSettings, RemoteError, TransientError, build_client, request
from skolflow.identity import mask_text

SYSTEM = "haldor"
TOKEN_PATH = "/oauth2/token"
# Refresh a token this long before Haldor says it expires (at most a tenth of its lifetime).
REFRESH_MARGIN_SECONDS = 60.0

Answer = TypeVar("Answer", bound=BaseModel)


def _parse(model: type[Answer], response: httpx.Response, method: str, path: str) -> Answer:
    """Parse Haldor's answer; one that is not the contract's shape is a RemoteError with the body masked."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError:
        raise RemoteError(SYSTEM, response.status_code, f"not a {model.__name__}: {mask_text(response.text)}",
                          method=method, url=path) from None


@dataclass(frozen=True)
class Window:
    """One call of a split replace: the range it replaces and the positions it carries."""

    start: dt.date
    end: dt.date
    positions: list[Position]


def plan_windows(start: dt.date, end: dt.date, positions: Sequence[Position]) -> list[Window]:
    """Split a replace of [start, end] into consecutive windows of ≤ 2,000 positions and ≤ 93 days.

    The windows cover every day of [start, end] (a day without positions must still be cleared).
    A day is never split: it has one range. Positions dated outside [start, end] ride with the first
    window, so that Haldor rejects them and the answer names them. Raises ValueError when a day (or
    the first day together with those outside positions) alone holds more than 2,000.
    """
    if start > end:
        raise ValueError(f"start {start.isoformat()} is after end {end.isoformat()}")
    per_day = Counter(p.date for p in positions if start <= p.date <= end)
    outside = sum(1 for p in positions if not start <= p.date <= end)
    for day, count in sorted(per_day.items()):
        if count > MAX_POSITIONS:
            raise ValueError(f"{count} positions on {day.isoformat()}: Haldor takes at most {MAX_POSITIONS} "
                             "per call and one day cannot be split")
    bounds: list[tuple[dt.date, dt.date]] = []
    first, count = start, outside
    day = start
    while day <= end:
        if day > first and (count + per_day[day] > MAX_POSITIONS or (day - first).days >= MAX_RANGE_DAYS):
            bounds.append((first, day - dt.timedelta(days=1)))
            first, count = day, 0
        count += per_day[day]
        day += dt.timedelta(days=1)
    bounds.append((first, end))
    # Each window keeps the caller's order: Haldor's "earlier in the body" (a duplicate) depends on it.
    windows = [Window(low, high, [p for p in positions
                                  if low <= p.date <= high or (low == start and not start <= p.date <= end)])
               for low, high in bounds]
    if len(windows[0].positions) > MAX_POSITIONS:
        raise ValueError(f"{outside} positions dated outside {start.isoformat()}–{end.isoformat()} and those "
                         f"on {start.isoformat()} exceed {MAX_POSITIONS} in one call")
    return windows


def _ranges(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    """[start, end] cut into consecutive ranges of at most 93 days, for reading."""
    return [(w.start, w.end) for w in plan_windows(start, end, [])]


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float  # time.monotonic()


class HaldorClient:
    """Reads who Haldor knows at a school and replaces the school's schedule positions by date range.

    ``async with HaldorClient(url, client_id, secret) as haldor: await haldor.replace_schedule(...)``
    """

    def __init__(self, base_url: str, client_id: str, client_secret: str, http: HttpSettings | None = None):
        self._client_id = client_id
        self._client_secret = client_secret
        self._settings = http or HttpSettings()
        self._http = build_client(base_url, self._settings, headers={"Accept": "application/json"})
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()

    async def __aenter__(self) -> HaldorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @staticmethod
    def _school_path(school_id: str, resource: str) -> str:
        return f"/api/schools/{quote(school_id, safe='')}/{resource}"

    async def users(self, school_id: str) -> list[User]:
        """Everyone Haldor knows at the school, every page followed."""
        path = self._school_path(school_id, "users")
        users: list[User] = []
        params: dict[str, str] = {}
        seen: set[str] = set()
        while True:
            response = await self._call("GET", path, params=params)
            page = _parse(UsersPage, response, "GET", path)
            users.extend(page.users)
            token = page.next_page_token
            if not token:
                return users
            if token in seen:
                raise RemoteError(SYSTEM, response.status_code, f"repeated nextPageToken {token!r}", method="GET",
                                  url=path)
            seen.add(token)
            params = {"pageToken": token}

    async def replace_schedule(
        self, school_id: str, start: dt.date, end: dt.date, positions: list[Position]
    ) -> ScheduleResult:
        """Make the school's positions within [start, end] exactly ``positions``; one merged answer.

        Sent as several calls when needed (:func:`plan_windows`), one after another; should one fail,
        the windows before it are already replaced, and sending the same replace again completes it
        (a replace is idempotent). Raises ValueError before sending anything if a day alone holds
        more than 2,000 positions.
        """
        windows = plan_windows(start, end, positions)
        path = self._school_path(school_id, "schedule")
        results = []
        for window in windows:
            body = ScheduleRequest(positions=window.positions).to_wire()
            response = await self._call("PUT", path, params=_range(window.start, window.end), json=body)
            results.append(_parse(ScheduleResult, response, "PUT", path))
        return ScheduleResult.combine(results)

    async def schedule(self, school_id: str, start: dt.date, end: dt.date) -> list[Position]:
        """The positions Haldor holds for the school within [start, end] (read in ≤ 93-day ranges)."""
        path = self._school_path(school_id, "schedule")
        positions: list[Position] = []
        for first, last in _ranges(start, end):
            response = await self._call("GET", path, params=_range(first, last))
            positions.extend(_parse(SchedulePage, response, "GET", path).positions)
        return positions

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call with a bearer token; on a 401 the token is fetched anew and the call made once more.

        Errors are re-raised with the remote body masked; the chained original is suppressed, since
        its ``body`` is not.
        """
        for attempt in range(2):
            used: list[str] = []
            try:
                return await request(self._http, SYSTEM, method, path, retry=self._settings.retry,
                                     prepare=self._bearer(used), **kwargs)
            except RemoteError as exc:
                if exc.url == TOKEN_PATH:  # Haldor refused our credentials: nothing to retry
                    raise
                if exc.status_code == 401 and attempt == 0 and not isinstance(exc, TransientError):
                    self._forget(used[-1] if used else None)
                    continue
                raise type(exc)(SYSTEM, exc.status_code, mask_text(exc.body), method=method, url=path) from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _bearer(self, used: list[str]) -> Callable[[], Awaitable[Mapping[str, str]]]:
        """A ``prepare`` hook for :func:`request` that remembers which token each attempt carried."""

        async def prepare() -> Mapping[str, str]:
            token = await self._access_token()
            used.append(token)
            return {"Authorization": f"Bearer {token}"}

        return prepare

    def _forget(self, token: str | None) -> None:
        """Drop a token Haldor refused, unless a concurrent call has already replaced it."""
        if self._token is not None and self._token.value == token:
            self._token = None

    async def _access_token(self) -> str:
        async with self._token_lock:
            token = self._token
            if token is None or time.monotonic() >= token.refresh_at:
                token = self._token = await self._fetch_token()
            return token.value

    async def _fetch_token(self) -> _Token:
        data = {"grant_type": "client_credentials", "client_id": self._client_id,
                "client_secret": self._client_secret}
        response = await request(self._http, SYSTEM, "POST", TOKEN_PATH, retry=self._settings.retry, data=data)
        answer = _parse(TokenResponse, response, "POST", TOKEN_PATH)
        margin = min(REFRESH_MARGIN_SECONDS, answer.expires_in / 10)
        return _Token(answer.access_token, time.monotonic() + answer.expires_in - margin)


def _range(start: dt.date, end: dt.date) -> dict[str, str]:
    return {"from": start.isoformat(), "to": end.isoformat()}
