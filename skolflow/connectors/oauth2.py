"""OAuth2 client credentials for the connectors that need them (Beda, Haldor, Udir).

One token per client, cached until shortly before it expires and fetched anew once when the system
answers 401. Errors are re-raised with the remote body masked and the URL as the caller shows it,
because both systems' paths or bodies may carry a personnummer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from skolflow.connectors.http import RemoteError, RetryPolicy, request, request_with_bearer
from skolflow.identity import mask_text

TOKEN_PATH = "/oauth2/token"
# Refresh a token this long before the system says it expires (at most a tenth of its lifetime).
REFRESH_MARGIN_SECONDS = 60.0


class TokenResponse(BaseModel):
    """OAuth2 token answer: RFC 6749 names, so snake_case on the wire too."""

    access_token: str
    token_type: str
    expires_in: int


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float  # time.monotonic()


class BearerSession:
    """Calls on ``client`` with a bearer token from ``POST /oauth2/token`` (client credentials).

    Udir's IdentityServer differs: ``token_path="/connect/token"``, the credentials as HTTP Basic
    (``basic_auth=True``) and a ``scope``; the defaults are Beda's and Haldor's form post.
    """

    def __init__(self, system: str, client: httpx.AsyncClient, retry: RetryPolicy, client_id: str,
                 client_secret: str, *, token_path: str = TOKEN_PATH, basic_auth: bool = False,
                 scope: str | None = None):
        self.system = system
        self._token_path = token_path
        self._basic_auth = basic_auth
        self._scope = scope
        self._client = client
        self._retry = retry
        self._client_id = client_id
        self._client_secret = client_secret
        self._token: _Token | None = None
        self._lock = asyncio.Lock()

    async def call(self, method: str, path: str, shown_path: str, **kwargs: Any) -> httpx.Response:
        """One API call; on a 401 the token is fetched anew and the call made once more.

        Errors are re-raised with ``shown_path`` (the caller's masked path) and the remote body
        masked. The chained original is suppressed, since its message holds both unmasked.
        """
        try:
            return await request_with_bearer(self._client, self.system, method, path, retry=self._retry,
                                              token=self._access_token, refused=self._refused, forget=self._forget,
                                              **kwargs)
        except RemoteError as exc:
            if exc.url == self._token_path:  # our credentials were refused: nothing to retry, nothing personal
                raise
            raise type(exc)(self.system, exc.status_code, mask_text(exc.body), method=method,
                            url=shown_path) from None

    @contextlib.asynccontextmanager
    async def ahead(self) -> AsyncIterator[None]:
        """Fetch the token in the background while the block runs, so that its first call need not wait for it.

        The call finds the token, or waits for the fetch under way. The fetch makes one attempt: a failure is left
        to the first call, which fetches again with the usual retries, and a block that calls nothing never
        meets it (the fetch is cancelled when the block ends).
        """
        fetch = asyncio.create_task(self.fetch_ahead())
        try:
            yield
        finally:
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetch

    async def fetch_ahead(self) -> None:
        """One attempt at a token, unless one is held; a failure is left to the next call (see :meth:`ahead`)."""
        async with self._lock:
            if self._token is None or time.monotonic() >= self._token.refresh_at:
                with contextlib.suppress(RemoteError):
                    self._token = await self._fetch_token(dataclasses.replace(self._retry, attempts=1))

    def _refused(self, exc: RemoteError) -> bool:
        """A 401 to an API call (not to the token request itself) refuses the token it carried."""
        return exc.status_code == 401 and exc.url != self._token_path

    def _forget(self, token: str | None) -> None:
        """Drop a refused token, unless a concurrent call has already replaced it."""
        if self._token is not None and self._token.value == token:
            self._token = None

    async def _access_token(self) -> str:
        async with self._lock:
            token = self._token
            if token is None or time.monotonic() >= token.refresh_at:
                token = self._token = await self._fetch_token()
            return token.value

    async def _fetch_token(self, retry: RetryPolicy | None = None) -> _Token:
        data = {"grant_type": "client_credentials"}
        auth: httpx.BasicAuth | None = None
        if self._basic_auth:
            auth = httpx.BasicAuth(self._client_id, self._client_secret)
        else:
            data |= {"client_id": self._client_id, "client_secret": self._client_secret}
        if self._scope:
            data["scope"] = self._scope
        response = await request(self._client, self.system, "POST", self._token_path, retry=retry or self._retry,
                                 data=data, **({"auth": auth} if auth else {}))
        try:
            answer = TokenResponse.model_validate_json(response.text)
        except ValidationError:
            raise RemoteError(self.system, response.status_code, f"not a token answer: {mask_text(response.text)}",
                              method="POST", url=self._token_path) from None
        margin = min(REFRESH_MARGIN_SECONDS, answer.expires_in / 10)
        return _Token(answer.access_token, time.monotonic() + answer.expires_in - margin)
