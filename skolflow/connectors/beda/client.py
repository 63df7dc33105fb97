"""Async client for Beda (UHR's national grade database), as skolflow models its API (DESIGN §4).

Beda has no test environment: an anslutningspart's credentials always reach production (seed 000),
so the production address is a named constant here for the guard that keeps sandbox and test
profiles away from it. This client itself sends wherever it is told; the guard is applied where
clients are built.

Personnummer travel in URL paths, so every error this client raises is rebuilt with the number
masked (``RemoteError`` would otherwise quote the URL and the remote body in full).
"""

from __future__ import annotations

import contextlib
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from skolflow.connectors.beda.models import MAX_BATCH, BatchResponse, Merits, StudentResult
from skolflow.connectors.http import HttpSettings, RemoteError, TransientError, build_client
from skolflow.connectors.oauth2 import BearerSession
from skolflow.identity import mask, mask_text, validate_swedish_orgnr

PRODUCTION_HOST = "gw.api.beda.uhr.se"
PRODUCTION_URL = f"https://{PRODUCTION_HOST}"

SYSTEM = "beda"
API_PREFIX = "/api/v1/anslutningsparter"


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
        self._settings = http or HttpSettings()
        self._http = build_client(base_url, self._settings, system=SYSTEM, headers={"Accept": "application/json"})
        self._auth = BearerSession(SYSTEM, self._http, self._settings.retry, client_id, client_secret)

    async def __aenter__(self) -> BedaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def token_ahead(self) -> contextlib.AbstractAsyncContextManager[None]:
        """The token fetched while the block does other work (see :meth:`BearerSession.ahead`)."""
        return self._auth.ahead()

    def _student_path(self, personnummer: str) -> str:
        return f"{API_PREFIX}/{self.party_orgnr}/elever/{personnummer}/meriter"

    async def send_batch(self, merits: list[Merits]) -> list[StudentResult]:
        """Replace the merits of up to 200 students; one result per student, in the order sent."""
        if len(merits) > MAX_BATCH:
            raise ValueError(f"Beda takes at most {MAX_BATCH} students per batch, got {len(merits)}")
        if not merits:
            return []
        path = f"{API_PREFIX}/{self.party_orgnr}/meriter"
        # Never resent blindly: after a lost answer the flow asks Beda what it holds (AnswerLost), so each
        # student's merits reach Beda once.
        response = await self._call("POST", path, path, json={"elever": [m.to_wire() for m in merits]}, replay=False)
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
        return await self._auth.call(method, path, shown_path, **kwargs)
