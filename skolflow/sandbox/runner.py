"""Serving sandboxes on localhost: in a thread for tests and the demo, or in the foreground for users."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI

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

    def start(self, system: str, injector: FaultInjector, port: int | None = None) -> str:
        port = port or free_port(self.host)
        config = uvicorn.Config(injector, host=self.host, port=port, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=1)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=f"sandbox-{system}", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {system} sandbox did not start on {self.host}:{port}")
            time.sleep(0.02)
        url = f"http://{self.host}:{port}"
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
