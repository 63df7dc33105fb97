"""Async client for Beda (UHR's national grade database), as skolflow models its API (DESIGN §4).

Beda has no test environment: an anslutningspart's credentials always reach production (seed 000),
so the production address is a named constant here for the guard that keeps sandbox and test
profiles away from it. This client itself sends wherever it is told; the guard is applied where
clients are built.

Personnummer travel in URL paths, so every error this client raises is rebuilt with the number
masked (``RemoteError`` would otherwise quote the URL and the remote body in full).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from skolflow.connectors.beda.models import MAX_BATCH, BatchResponse, Merits, StudentResult, TokenResponse
from skolflow.connectors.http import HttpSettings, RemoteError, TransientError, build_client, request
from skolflow.identity import mask, mask_text, validate_swedish_orgnr

PRODUCTION_HOST = "gw.api.beda.uhr.se"
PRODUCTION_URL = f"https://{PRODUCTION_HOST}"

SYSTEM = "beda"
TOKEN_PATH = "/oauth2/token"
API_PREFIX = "/api/v1/anslutningsparter"
# Refresh a token this long before Beda says it expires (at most a tenth of its lifetime).
REFRESH_MARGIN_SECONDS = 60.0


Answer = TypeVar("Answer", bound=BaseModel)


def _parse(model: type[Answer], status: int, text: str, method: str, shown_path: str) -> Answer:
    """Parse Beda's answer; one that is not the contract's shape is a RemoteError with the body masked.

    (pydantic's own error would quote the input, personnummer included.)
    """
    try:
        return model.model_validate_json(text)
    except ValidationError:
        raise RemoteError(SYSTEM, status, f"not a {model.__name__}: {mask_text(text)}", method=method,
                          url=shown_path) from None


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float  # time.monotonic()


class BedaClient:
    """Sends students' merits to Beda for one anslutningspart and reads back what Beda holds.

    ``async with BedaClient(url, client_id, secret, "212000-0142") as beda: await beda.send_batch(...)``
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        party_orgnr: str,
        http: HttpSettings | None = None,
    ):
        self.party_orgnr = validate_swedish_orgnr(party_orgnr)
        self._client_id = client_id
        self._client_secret = client_secret
        self._settings = http or HttpSettings()
        self._http = build_client(base_url, self._settings, headers={"Accept": "application/json"})
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()

    async def __aenter__(self) -> BedaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _student_path(self, personnummer: str) -> str:
        return f"{API_PREFIX}/{self.party_orgnr}/elever/{personnummer}/meriter"

    async def send_batch(self, merits: list[Merits]) -> list[StudentResult]:
        """Replace the merits of up to 200 students; one result per student, in the order sent."""
        if len(merits) > MAX_BATCH:
            raise ValueError(f"Beda takes at most {MAX_BATCH} students per batch, got {len(merits)}")
        if not merits:
            return []
        path = f"{API_PREFIX}/{self.party_orgnr}/meriter"
        response = await self._call("POST", path, path, json={"elever": [m.to_wire() for m in merits]})
        results = _parse(BatchResponse, response.status_code, response.text, "POST", path).resultat
        if len(results) != len(merits):
            raise RemoteError(SYSTEM, response.status_code,
                              f"expected {len(merits)} results, Beda answered {len(results)}", method="POST", url=path)
        return results

    async def put_student(self, merits: Merits) -> StudentResult:
        """Replace one student's merits; Beda's rejection (422) is returned as a result, not raised.

        The result names the student sent (the error body this client sees has it masked).
        """
        path = self._student_path(merits.personnummer)
        shown = self._student_path(mask(merits.personnummer))
        try:
            response = await self._call("PUT", path, shown, json=merits.to_wire())
        except RemoteError as exc:
            if exc.status_code != 422 or isinstance(exc, TransientError):
                raise
            result = _parse(StudentResult, exc.status_code, exc.body, "PUT", shown)
        else:
            result = _parse(StudentResult, response.status_code, response.text, "PUT", shown)
        return result.model_copy(update={"personnummer": merits.personnummer})

    async def get_student(self, personnummer: str) -> Merits | None:
        """What Beda holds for the student, or None if Beda holds nothing."""
        shown = self._student_path(mask(personnummer))
        try:
            response = await self._call("GET", self._student_path(personnummer), shown)
        except RemoteError as exc:
            if exc.status_code == 404 and not isinstance(exc, TransientError):
                return None
            raise
        return _parse(Merits, response.status_code, response.text, "GET", shown)

    async def _call(self, method: str, path: str, shown_path: str, **kwargs: Any) -> httpx.Response:
        """One API call with a bearer token; on a 401 the token is fetched anew and the call made once more.

        Errors are re-raised with ``shown_path`` (the masked path) and the remote body masked. The
        chained original is suppressed, since its message holds the unmasked URL.
        """
        for attempt in range(2):
            used: list[str] = []
            try:
                return await request(self._http, SYSTEM, method, path, retry=self._settings.retry,
                                     prepare=self._bearer(used), **kwargs)
            except RemoteError as exc:
                if exc.url == TOKEN_PATH:  # Beda refused our credentials: no personnummer, nothing to retry
                    raise
                if exc.status_code == 401 and attempt == 0 and not isinstance(exc, TransientError):
                    self._forget(used[-1] if used else None)
                    continue
                raise type(exc)(SYSTEM, exc.status_code, mask_text(exc.body), method=method,
                                url=shown_path) from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _bearer(self, used: list[str]) -> Callable[[], Awaitable[Mapping[str, str]]]:
        """A ``prepare`` hook for :func:`request` that remembers which token each attempt carried."""

        async def prepare() -> Mapping[str, str]:
            token = await self._access_token()
            used.append(token)
            return {"Authorization": f"Bearer {token}"}

        return prepare

    def _forget(self, token: str | None) -> None:
        """Drop a token Beda refused, unless a concurrent call has already replaced it."""
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
        answer = _parse(TokenResponse, response.status_code, response.text, "POST", TOKEN_PATH)
        margin = min(REFRESH_MARGIN_SECONDS, answer.expires_in / 10)
        return _Token(answer.access_token, time.monotonic() + answer.expires_in - margin)
