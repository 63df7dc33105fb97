"""Serving sandboxes on localhost: in a thread for tests and the demo, or in the foreground for users."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from skolflow.sandbox.faults import ADMIN_PREFIX, FaultConfig, FaultInjector


def with_faults(app: FastAPI, system: str, config: FaultConfig | None = None) -> FaultInjector:
    """Wrap a sandbox app in fault injection and give it ``/_sandbox/faults`` to read and change it."""
    injector = FaultInjector(app, config or FaultConfig.from_env(system))

    @app.get(f"{ADMIN_PREFIX}/faults", include_in_schema=False)
    def read_faults() -> dict[str, object]:
        return {"config": injector.config.model_dump(), "injected": injector.injected}

    @app.put(f"{ADMIN_PREFIX}/faults", include_in_schema=False)
    def set_faults(config: FaultConfig) -> dict[str, object]:
        injector.configure(config)
        return {"config": injector.config.model_dump()}

    return injector


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class MutualTls:
    """HTTPS that requires a client certificate issued by ``client_ca`` (PEM files: uvicorn loads TLS from paths)."""

    certfile: str
    keyfile: str
    client_ca: str


class ClientCertificateProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol that tells the app the client's certificate (ASGI's TLS extension).

    uvicorn verifies a client certificate (``ssl_cert_reqs``) but does not pass it on, and a sandbox of an mTLS
    server must see which certificate was presented (Skolverket's authorisation server compares it with the
    request). The handshake is over when ``connection_made`` is called, so the certificate is known for every
    request on the connection.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls_object = transport.get_extra_info("ssl_object")
        der = tls_object.getpeercert(binary_form=True) if tls_object is not None else None
        if not der:
            return
        chain = [ssl.DER_cert_to_PEM_cert(der)]
        app = self.app

        async def with_certificate(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = {"client_cert_chain": chain, "client_cert_name": None,
                                                         "client_cert_error": None, "tls_version": None,
                                                         "cipher_suite": None, "server_cert": None}
            await app(scope, receive, send)

        self.app = with_certificate


@dataclass
class RunningSandbox:
    system: str
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    injector: FaultInjector


@dataclass
class SandboxServer:
    """Runs several sandbox apps, each on its own port, in background threads."""

    host: str = "127.0.0.1"
    running: dict[str, RunningSandbox] = field(default_factory=dict)

    def start(self, system: str, injector: FaultInjector, port: int | None = None, *,
              tls: MutualTls | None = None) -> str:
        """Serve ``injector`` on ``port`` (any free one if None); over HTTPS with ``tls``, the URL ``https://…``."""
        port = port or free_port(self.host)
        secure: dict[str, Any] = {"ssl_certfile": tls.certfile, "ssl_keyfile": tls.keyfile,
                                  "ssl_ca_certs": tls.client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED,
                                  "http": ClientCertificateProtocol} if tls else {}
        config = uvicorn.Config(injector, host=self.host, port=port, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=1, **secure)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=f"sandbox-{system}", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {system} sandbox did not start on {self.host}:{port}")
            time.sleep(0.02)
        url = f"{'https' if tls else 'http'}://{self.host}:{port}"
        self.running[system] = RunningSandbox(system, url, server, thread, injector)
        return url

    def url(self, system: str) -> str:
        return self.running[system].url

    def stop(self) -> None:
        for sandbox in self.running.values():
            sandbox.server.should_exit = True
        for sandbox in self.running.values():
            sandbox.thread.join(timeout=5)
        self.running.clear()

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
