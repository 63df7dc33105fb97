"""Every sandbox built so far, started together over one synthetic data set.

The sandbox credentials below are public test values of the sandboxes themselves, not secrets: they
open nothing but a process on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from skolflow.connectors.beda import sandbox as beda_sandbox
from skolflow.connectors.betyg import sandbox as betyg_sandbox
from skolflow.connectors.betygsdokument import sandbox as betygsdokument_sandbox
from skolflow.connectors.ss12000 import sandbox as ss12000_sandbox
from skolflow.sandbox.dataset import Dataset
from skolflow.sandbox.faults import FaultConfig
from skolflow.sandbox.runner import SandboxServer, with_faults

PLATFORM_TOKEN = "sandbox-platform-token"
SS12000_TOKEN = "sandbox-ss12000-token"
BEDA_CLIENT_ID = "sandbox-client"
BEDA_CLIENT_SECRET = "sandbox-secret"

SYSTEMS = ("platform", "ss12000", "beda")


def platform_app(dataset: Dataset) -> FastAPI:
    """The school platform serves the Betyg and Betygsdokument APIs from one base URL, as PING PONG does."""
    app = FastAPI(title="School platform sandbox (Betyg API 1.1.1, Betygsdokument API 2.0)")
    seen = {route.path for route in app.router.routes}
    for part in (betyg_sandbox.create_app(dataset, PLATFORM_TOKEN),
                 betygsdokument_sandbox.create_app(dataset, PLATFORM_TOKEN)):
        for route in part.router.routes:
            if route.path not in seen:
                app.router.routes.append(route)
                seen.add(route.path)
    return app


def apps(dataset: Dataset) -> dict[str, FastAPI]:
    return {
        "platform": platform_app(dataset),
        "ss12000": ss12000_sandbox.create_app(dataset, SS12000_TOKEN),
        "beda": beda_sandbox.create_app_for(dataset, BEDA_CLIENT_ID, BEDA_CLIENT_SECRET),
    }


@dataclass
class Sandboxes:
    server: SandboxServer
    dataset: Dataset

    @property
    def urls(self) -> dict[str, str]:
        return {name: running.url for name, running in self.server.running.items()}

    def environment(self) -> dict[str, str]:
        """What skolflow's pipelines read to reach these sandboxes (see skolflow.blocks)."""
        urls = self.urls
        return {
            "SKOLFLOW_BETYG_URL": urls["platform"],
            "SKOLFLOW_BETYG_TOKEN": PLATFORM_TOKEN,
            "SKOLFLOW_SS12000_URL": urls["ss12000"],
            "SKOLFLOW_SS12000_TOKEN": SS12000_TOKEN,
            "SKOLFLOW_BEDA_URL": urls["beda"],
            "SKOLFLOW_BEDA_CLIENT_ID": BEDA_CLIENT_ID,
            "SKOLFLOW_BEDA_CLIENT_SECRET": BEDA_CLIENT_SECRET,
        }

    def stop(self) -> None:
        self.server.stop()


def start(dataset: Dataset, faults: dict[str, FaultConfig] | None = None, *, host: str = "127.0.0.1",
          ports: dict[str, int] | None = None) -> Sandboxes:
    """Start every sandbox on its own port; faults per system default to the environment's."""
    server = SandboxServer(host=host)
    try:
        for name, app in apps(dataset).items():
            config = (faults or {}).get(name) or FaultConfig.from_env(name)
            server.start(name, with_faults(app, name, config), (ports or {}).get(name))
    except BaseException:
        server.stop()
        raise
    return Sandboxes(server, dataset)
