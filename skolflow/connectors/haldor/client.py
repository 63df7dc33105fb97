"""Async client for Haldor's schedule import, as skolflow models it (DESIGN §4).

OAuth2 client credentials through skolflow.connectors.oauth2, as for Beda. A replace of more positions
than one call takes (2,000) or of a longer range than one call covers (93 days) is split into
consecutive date windows, each a complete replace of its own range, so the union of the calls means
exactly what one call would have meant.

Personnummer travel only in bodies, but Haldor may quote them back: every error this client raises
has the remote body masked.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
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
    User,
    UsersPage,
)
from skolflow.connectors.http import HttpSettings, RemoteError, build_client
from skolflow.connectors.oauth2 import BearerSession
from skolflow.identity import mask_text

SYSTEM = "haldor"

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



class HaldorClient:
    """Reads who Haldor knows at a school and replaces the school's schedule positions by date range.

    ``async with HaldorClient(url, client_id, secret) as haldor: await haldor.replace_schedule(...)``
    """

    def __init__(self, base_url: str, client_id: str, client_secret: str, http: HttpSettings | None = None):
        self._settings = http or HttpSettings()
        self._http = build_client(base_url, self._settings, system=SYSTEM, headers={"Accept": "application/json"})
        self._auth = BearerSession(SYSTEM, self._http, self._settings.retry, client_id, client_secret)

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
        return await self._auth.call(method, path, path, **kwargs)


def _range(start: dt.date, end: dt.date) -> dict[str, str]:
    return {"from": start.isoformat(), "to": end.isoformat()}
