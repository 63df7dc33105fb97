"""Every sandbox built so far, started together over one synthetic data set.

The sandbox credentials below are public test values of the sandboxes themselves, not secrets: they
open nothing but a process on this machine.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI

from skolflow.connectors.beda import sandbox as beda_sandbox
from skolflow.connectors.betyg import sandbox as betyg_sandbox
from skolflow.connectors.betygsdokument import sandbox as betygsdokument_sandbox
from skolflow.connectors.dnp import auth_sandbox as dnp_auth_sandbox
from skolflow.connectors.dnp import opendata_sandbox as dnp_opendata_sandbox
from skolflow.connectors.dnp import sandbox as dnp_sandbox
from skolflow.connectors.haldor import sandbox as haldor_sandbox
from skolflow.connectors.skola24 import sandbox as skola24_sandbox
from skolflow.connectors.ss12000 import client as ss12000_client
from skolflow.connectors.ss12000 import sandbox as ss12000_sandbox
from skolflow.connectors.udir import sandbox as udir_sandbox
from skolflow.sandbox import webhook
from skolflow.sandbox.dataset import TOLERATED, Dataset
from skolflow.sandbox.faults import FaultConfig
from skolflow.sandbox.runner import MutualTls, SandboxServer, with_faults
from skolflow.sandbox.timetable import DEFAULT_API_KEY as SKOLA24_API_KEY
from skolflow.sandbox.timetable import Timetable, build_timetable
from skolflow.tasks.schools import SchoolConfig
from skolflow.tasks.timetable import MatchKey

PLATFORM_TOKEN = "sandbox-platform-token"
SS12000_TOKEN = "sandbox-ss12000-token"
BEDA_CLIENT_ID = "sandbox-client"
BEDA_CLIENT_SECRET = "sandbox-secret"

HALDOR_CLIENT_ID = "sandbox-haldor-client"
HALDOR_CLIENT_SECRET = "sandbox-haldor-secret"

UDIR_CLIENT_ID, UDIR_CLIENT_SECRET = next(iter(udir_sandbox.DEFAULT_CLIENTS.items()))

# A fixed token the DNP sandbox also accepts, for tests and tools that call it directly; skolflow's runs fetch
# short-lived tokens from the authorisation server sandbox (dnp-auth) with the sandbox huvudman's certificate.
DNP_TOKEN = "sandbox-dnp-token"
DNP_AUTH_PATH = "/transaction"

SYSTEMS = ("platform", "ss12000", "beda", "skola24", "haldor", "udir", "dnp", "dnp-opendata", "webhook", "dnp-auth")


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


# What the SS 12000 sandbox does over an imperfect data set, besides the data set's defects.
IMPERFECT_SERVER = (
    "times without an offset (Swedish time)",
    'errors as {"detail": …}',
    "POST /persons/lookup answered 405",
    "/deletedEntities as a bare list of ids",
    "a pageToken that forgets the query's filters (and repeats the page's last record)",
)


def imperfections(dataset: Dataset) -> list[str]:
    """What the SS 12000 sandbox gets wrong over ``dataset``, one line each (none for a perfect one)."""
    if not dataset.imperfect:
        return []
    defects = [f"{defect} on {len(ids)} record(s), {'tolerated' if defect in TOLERATED else 'refused'}"
               for defect, ids in dataset.defects.items()]
    return [*defects, *IMPERFECT_SERVER]


def haldor_missing(dataset: Dataset) -> list[str]:
    """Persons only Skola24 knows (every 25th), so matching has someone to report."""
    return [p.id for p in dataset.persons[::25]]


def apps(dataset: Dataset, timetable: Timetable, issuer: dnp_auth_sandbox.TokenIssuer | None = None
         ) -> dict[str, FastAPI]:
    """Every sandbox app; ``issuer`` signs the authorisation server's tokens, which the DNP sandbox accepts."""
    issuer = issuer or dnp_auth_sandbox.TokenIssuer()
    return {
        "platform": platform_app(dataset),
        # Pages as large as skolflow asks for, as a server that returns "as many as possible" does.
        "ss12000": ss12000_sandbox.create_app(dataset, SS12000_TOKEN, page_size_max=ss12000_client.PAGE_SIZE),
        "beda": beda_sandbox.create_app_for(dataset, BEDA_CLIENT_ID, BEDA_CLIENT_SECRET),
        "skola24": skola24_sandbox.create_app(timetable),
        "haldor": haldor_sandbox.create_app_for(dataset, HALDOR_CLIENT_ID, HALDOR_CLIENT_SECRET,
                                                missing=haldor_missing(dataset)),
        "udir": udir_sandbox.create_app(),
        "dnp": dnp_sandbox.create_app(dataset, token=DNP_TOKEN, verify_token=issuer.valid),
        "dnp-opendata": dnp_opendata_sandbox.create_app(dataset),
        "webhook": webhook.create_app(),
        "dnp-auth": dnp_auth_sandbox.create_app(issuer),
    }


def school_configs(dataset: Dataset, timetable: Timetable) -> list[SchoolConfig]:
    """The Skola24 → Haldor configuration a school would write for the sandbox's schools."""
    configs = []
    for unit in dataset.school_units:
        school = timetable.school_of_unit(unit.id)
        configs.append(SchoolConfig(name=school.name, domain=timetable.domain, school_guid=school.guid,
                                    match=MatchKey.EMAIL, haldor_school=haldor_sandbox.school_id_for(unit)))
    return configs


@dataclass
class Sandboxes:
    server: SandboxServer
    dataset: Dataset
    timetable: Timetable
    # The authorisation server sandbox's CA and the sandbox huvudman's certificate (files in a private temporary
    # folder, gone at stop), and the issuer whose clock and tokens a test may change.
    pki: dnp_auth_sandbox.SandboxPki | None = None
    issuer: dnp_auth_sandbox.TokenIssuer = field(default_factory=dnp_auth_sandbox.TokenIssuer)
    folder: tempfile.TemporaryDirectory[str] | None = None

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
            "SKOLFLOW_SKOLA24_URL": urls["skola24"],
            "SKOLFLOW_SKOLA24_API_KEY": SKOLA24_API_KEY,
            "SKOLFLOW_HALDOR_URL": urls["haldor"],
            "SKOLFLOW_HALDOR_CLIENT_ID": HALDOR_CLIENT_ID,
            "SKOLFLOW_HALDOR_CLIENT_SECRET": HALDOR_CLIENT_SECRET,
            "SKOLFLOW_UDIR_URL": urls["udir"],
            "SKOLFLOW_UDIR_CLIENT_ID": UDIR_CLIENT_ID,
            "SKOLFLOW_UDIR_CLIENT_SECRET": UDIR_CLIENT_SECRET,
            "SKOLFLOW_DNP_URL": urls["dnp"],
            **self.dnp_auth_environment(),
            "SKOLFLOW_DNP_OPENDATA_URL": urls["dnp-opendata"],
            "SKOLFLOW_WEBHOOK_URL": urls["webhook"] + webhook.NOTICES_PATH,
        }

    def dnp_auth_environment(self) -> dict[str, str]:
        """DNP's tokens from the authorisation server sandbox over mTLS, as a huvudman configures Skolverket's."""
        if self.pki is None or "dnp-auth" not in self.urls:
            return {"SKOLFLOW_DNP_TOKEN": DNP_TOKEN}
        return {"SKOLFLOW_DNP_AUTH_URL": self.urls["dnp-auth"] + DNP_AUTH_PATH,
                "SKOLFLOW_DNP_CERTIFICATE": str(self.pki.client_certificate),
                "SKOLFLOW_DNP_PRIVATE_KEY": str(self.pki.client_key),
                "SKOLFLOW_DNP_AUTH_CA": str(self.pki.ca)}

    def stop(self) -> None:
        self.server.stop()
        if self.folder is not None:
            self.folder.cleanup()


def start(dataset: Dataset, faults: dict[str, FaultConfig] | None = None, *, host: str = "127.0.0.1",
          ports: dict[str, int] | None = None) -> Sandboxes:
    """Start every sandbox on its own port; faults per system default to the environment's."""
    server = SandboxServer(host=host)
    timetable = build_timetable(dataset)
    folder = tempfile.TemporaryDirectory(prefix="skolflow-sandbox-")
    pki = dnp_auth_sandbox.SandboxPki.create(Path(folder.name), host, f"SE{dataset.huvudman_orgnr.replace('-', '')}")
    issuer = dnp_auth_sandbox.TokenIssuer()
    mutual = MutualTls(str(pki.server_certificate), str(pki.server_key), str(pki.ca))
    try:
        for name, app in apps(dataset, timetable, issuer).items():
            config = (faults or {}).get(name) or FaultConfig.from_env(name)
            server.start(name, with_faults(app, name, config), (ports or {}).get(name),
                         tls=mutual if name == "dnp-auth" else None)
    except BaseException:
        server.stop()
        folder.cleanup()
        raise
    return Sandboxes(server, dataset, timetable, pki, issuer, folder)
