"""Fault injection for sandboxes: the failures a real service has, at rates a test or a user sets.

Faults come from flags (``skolflow sandbox --fault-5xx 0.1``), from the environment
(``SKOLFLOW_FAULT_5XX=0.1`` for all systems, ``SKOLFLOW_FAULT_BEDA_5XX=0.1`` for one), or at run time
from ``PUT /_sandbox/faults`` on the sandbox itself. Paths under ``/_sandbox`` are never faulted, so
tests can always read a sandbox's state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import BaseModel, Field

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ADMIN_PREFIX = "/_sandbox"


class InjectedDrop(Exception):
    """Raised by the middleware to make the server drop a connection; not an error of the sandbox."""


class _HideInjectedDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], InjectedDrop))


logging.getLogger("uvicorn.error").addFilter(_HideInjectedDrops())


class FaultConfig(BaseModel):
    """Shares (0..1) of requests that fail each way, plus latency added to every request."""

    server_error: float = Field(0.0, ge=0, le=1, description="share answered 503")
    timeout: float = Field(0.0, ge=0, le=1, description="share processed, then held past the client's timeout")
    rate_limit: float = Field(0.0, ge=0, le=1, description="share answered 429 with Retry-After")
    drop: float = Field(0.0, ge=0, le=1, description="share processed, then the connection is dropped mid-answer")
    latency_ms: int = Field(0, ge=0, description="added to every request")
    timeout_hold_seconds: float = Field(5.0, ge=0, description="how long a 'timeout' holds the answer")
    retry_after_seconds: int = Field(1, ge=0, description="Retry-After sent with an injected 429")
    path_prefix: str = Field("", description="fault only requests whose path starts with this (all when empty)")
    seed: int | None = None

    @classmethod
    def from_env(cls, system: str, environ: MutableMapping[str, str] | None = None) -> FaultConfig:
        env = os.environ if environ is None else environ
        names = {
            "server_error": "5XX",
            "timeout": "TIMEOUT",
            "rate_limit": "429",
            "drop": "DROP",
            "latency_ms": "LATENCY_MS",
            "timeout_hold_seconds": "TIMEOUT_HOLD_SECONDS",
            "retry_after_seconds": "RETRY_AFTER_SECONDS",
            "path_prefix": "PATH_PREFIX",
            "seed": "SEED",
        }
        values: dict[str, str] = {}
        for field_name, suffix in names.items():
            for key in (f"SKOLFLOW_FAULT_{suffix}", f"SKOLFLOW_FAULT_{system.upper().replace('-', '_')}_{suffix}"):
                if env.get(key):
                    values[field_name] = env[key]
        return cls.model_validate(values)


class FaultInjector:
    """ASGI middleware that draws one fault per request from the current :class:`FaultConfig`."""

    def __init__(self, app: ASGIApp, config: FaultConfig | None = None):
        self.app = app
        self.config = config or FaultConfig()
        self._random = random.Random(self.config.seed)
        self.injected: dict[str, int] = {"server_error": 0, "timeout": 0, "rate_limit": 0, "drop": 0}

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self._random = random.Random(config.seed)

    def _draw(self) -> str | None:
        roll = self._random.random()
        for name in ("server_error", "rate_limit", "timeout", "drop"):
            share = getattr(self.config, name)
            if roll < share:
                return name
            roll -= share
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(ADMIN_PREFIX) or not path.startswith(self.config.path_prefix):
            await self.app(scope, receive, send)
            return
        config = self.config
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        fault = self._draw()
        if fault is None:
            await self.app(scope, receive, send)
            return
        self.injected[fault] += 1
        if fault == "server_error":
            await _plain(send, 503, b"Service Unavailable (injected fault)")
        elif fault == "rate_limit":
            await _plain(
                send, 429, b"Too Many Requests (injected fault)",
                [(b"retry-after", str(config.retry_after_seconds).encode())],
            )
        elif fault == "timeout":
            await self.app(scope, receive, _Swallow())
            await asyncio.sleep(config.timeout_hold_seconds)
            await _plain(send, 504, b"Gateway Timeout (injected fault, held past the client's timeout)")
        else:
            await self.app(scope, receive, _Swallow())
            # Promise a body and close without it: the client sees a connection dropped mid-answer.
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"1000")]})
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            # Raising mid-body makes the server close the connection: the client sees it dropped.
            raise InjectedDrop("connection dropped mid-answer (injected fault)")


class _Swallow:
    """Lets the wrapped app process a request whose answer the fault will then withhold."""

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        return None


async def _plain(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode()),
                    *(headers or [])],
    })
    await send({"type": "http.response.body", "body": body})
