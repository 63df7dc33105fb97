"""Client of skolflow's Skola24 export contract (``schemas/skola24/``): Export Organisation and Export Lektion.

Every call carries ``Authorization: ApiKey <key>``. Export Lektion covers at most 93 days per call, so
:meth:`Skola24Client.lessons` splits a longer range into consecutive calls and joins the answers. A
refusal (4xx) is raised as :class:`Skola24Error` with the code and message of Skola24's ``<error>``
body; transient faults are retried by :func:`skolflow.connectors.http.request`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from types import TracebackType
from typing import Self
from urllib.parse import quote

import httpx

from skolflow.connectors import xmlsafe
from skolflow.connectors.http import HttpSettings, RemoteError, TransientError, build_client, request
from skolflow.connectors.skola24.codec import decode_error, decode_lessons, decode_organisation
from skolflow.connectors.skola24.models import MAX_RANGE_DAYS, V1, V3, LessonExport, Organisation

SYSTEM = "skola24"


class Skola24Error(RemoteError):
    """Skola24 refused a request. ``code`` is the ``<error>`` code (None when the body was not one)."""

    def __init__(self, refused: RemoteError, code: str | None, message: str):
        super().__init__(refused.system, refused.status_code, refused.body, method=refused.method, url=refused.url)
        self.code = code
        self.message = message


def _refusal(refused: RemoteError) -> Skola24Error:
    try:
        error = decode_error(refused.body.encode("utf-8"))
    except xmlsafe.XmlDocumentError:
        return Skola24Error(refused, None, refused.body.strip())
    return Skola24Error(refused, error.code, error.message)


def date_ranges(start: dt.date, end: dt.date, days: int = MAX_RANGE_DAYS) -> Iterator[tuple[dt.date, dt.date]]:
    """[start, end] cut into consecutive ranges of at most ``days`` days, both ends included."""
    if start > end:
        raise ValueError(f"the range starts after it ends: {start} > {end}")
    while start <= end:
        last = min(end, start + dt.timedelta(days=days - 1))
        yield start, last
        start = last + dt.timedelta(days=1)


class Skola24Client:
    """``async with Skola24Client(url, api_key) as client: export = await client.lessons(domain, guid, a, b)``."""

    def __init__(self, base_url: str, api_key: str, http: HttpSettings | None = None):
        self.base_url = base_url
        self.http = http or HttpSettings()
        self._api_key = api_key
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        self._client = build_client(self.base_url, self.http, system=SYSTEM,
                                    headers={"Authorization": f"ApiKey {self._api_key}"})
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _get(self, path: str, params: dict[str, str] | None = None) -> bytes:
        if self._client is None:
            raise RuntimeError("use Skola24Client as 'async with Skola24Client(...) as client'")
        try:
            response = await request(self._client, SYSTEM, "GET", path, retry=self.http.retry, params=params)
        except TransientError:
            raise
        except RemoteError as refused:
            raise _refusal(refused) from None
        return response.content

    @staticmethod
    def _domain_path(domain: str) -> str:
        return f"/api/{quote(domain, safe='')}/export"

    async def organisation(self, domain: str) -> Organisation:
        """Export Organisation: the schools the key may read, their persons and groups."""
        return decode_organisation(await self._get(f"{self._domain_path(domain)}/organisation"))

    async def lessons(self, domain: str, school_guid: str, start: dt.date, end: dt.date,
                      v3: bool = True) -> LessonExport:
        """Export Lektion (V3 by default, V1 with ``v3=False``): the school's lessons in [start, end].

        A range over 93 days is fetched in several calls. ``published`` is false when Skola24 said, for
        any part of the range, that the school's schedule is not published; lessons are then empty.
        """
        path = f"{self._domain_path(domain)}/lektion" + ("/v3" if v3 else "")
        parts = [decode_lessons(await self._get(path, {"school": school_guid, "from": first.isoformat(),
                                                       "to": last.isoformat()}))
                 for first, last in date_ranges(start, end)]
        published = all(part.published for part in parts)
        return LessonExport(
            domain=domain,
            school=school_guid,
            start=start,
            end=end,
            published=published,
            version=V3 if v3 else V1,
            lessons=tuple(lesson for part in parts for lesson in part.lessons) if published else (),
        )
