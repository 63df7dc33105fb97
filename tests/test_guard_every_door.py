"""The production guard has no side door: every command, every flow, every helper request passes it.

Each command is run as an administrator types it, with every system (and the failure webhook) pointed at a place
the profile may not reach. Connection attempts are counted, never made to anything real:

- profile ``sandbox`` with targets on ``*.invalid`` hosts (never resolvable), and every proxy variable pointing at a
  loopback recorder, so that a request that slipped through would arrive there and be counted;
- profile ``production`` without ``--confirm-production``, with every target *being* the loopback recorder.

A refused command exits 1 with the guard's reason, and the recorder has seen no connection at all.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from skolflow.flows.cli import app
from skolflow.sandbox import udir_data
from skolflow.tasks.udir_candidates import write_csv

pytestmark = pytest.mark.usefixtures("prefect_harness")

SYSTEM_URLS = ("BETYG", "SS12000", "BEDA", "SKOLA24", "HALDOR", "UDIR", "DNP", "DNP_OPENDATA")
SECRETS = {"SKOLFLOW_SS12000_TOKEN": "t", "SKOLFLOW_BETYG_TOKEN": "t", "SKOLFLOW_BEDA_CLIENT_ID": "c",
           "SKOLFLOW_BEDA_CLIENT_SECRET": "s", "SKOLFLOW_SKOLA24_API_KEY": "k", "SKOLFLOW_HALDOR_CLIENT_ID": "c",
           "SKOLFLOW_HALDOR_CLIENT_SECRET": "s", "SKOLFLOW_UDIR_CLIENT_ID": "c", "SKOLFLOW_UDIR_CLIENT_SECRET": "s",
           "SKOLFLOW_DNP_TOKEN": "t"}
SKOLFLOW = str(Path(sys.executable).with_name("skolflow"))
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@dataclass
class Recorder:
    """A loopback TCP listener that counts every connection made to it (as a proxy or as a target)."""

    server: socket.socket
    connections: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def serve(self) -> None:
        self.server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            conn.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    rec = Recorder(server)
    thread = threading.Thread(target=rec.serve, daemon=True)
    thread.start()
    yield rec
    rec._stop.set()
    thread.join()
    server.close()


def _commands(tmp_path: Path) -> dict[str, list[str]]:
    data = udir_data.generate()
    orgnr, period = data.schools[0].orgnr, data.current_period
    candidates = tmp_path / "kandidater.csv"
    udir = ["--skole", orgnr, "--periode", period]
    registration = [str(candidates), *udir, "--skolenavn", "Skolen", "--brukernavn-pas", "pas.bruker"]
    return {
        "betyg-to-beda": ["run", "betyg-to-beda", "--anslutningspart", "2120000142"],
        "betyg-to-beda --dry-run": ["run", "betyg-to-beda", "--anslutningspart", "2120000142", "--dry-run"],
        # The lookup that turns a personnummer into an SS 12000 id happens before the flow: it was the side door.
        "betyg-to-beda --personnummer": ["run", "betyg-to-beda", "--anslutningspart", "2120000142",
                                         "--personnummer", "19121212-1212"],
        "skola24-to-haldor": ["run", "skola24-to-haldor"],
        "dnp-provisioning": ["run", "dnp-provisioning", "--huvudman", "2120000142"],
        "dnp-provisioning --dry-run": ["run", "dnp-provisioning", "--huvudman", "2120000142", "--dry-run"],
        "udir-registration": ["run", "udir-registration", *registration],
        "udir-reconcile": ["run", "udir-reconcile", *registration],
        "udir-results": ["run", "udir-results", *udir, "--sas-bruker", "sas.bruker"],
        "validate udir --periode": ["validate", "udir", str(candidates), "--periode", period],
    }


def _configure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, profile: str, target: str) -> None:
    monkeypatch.setenv("SKOLFLOW_PROFILE", profile)
    for name in SYSTEM_URLS:
        monkeypatch.setenv(f"SKOLFLOW_{name}_URL", target.format(system=name.lower().replace("_", "-")))
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SKOLFLOW_WEBHOOK_URL", target.format(system="webhook") + "/notices")
    schools = tmp_path / "schools.toml"
    schools.write_text('[[school]]\nname = "Norra"\ndomain = "kommun.skola24.se"\nschool_guid = "g"\n'
                       'haldor_school = "h"\n')
    monkeypatch.setenv("SKOLFLOW_SKOLA24_SCHOOLS", str(schools))


@pytest.mark.parametrize("command", list(_commands(Path("kandidater"))))
@pytest.mark.parametrize("profile", ["sandbox", "production"])
def test_every_command_is_refused_before_any_connection(command: str, profile: str, recorder: Recorder,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if profile == "sandbox":
        # Nothing may leave this machine: anything that tried would reach the recorder through the proxy.
        _configure(monkeypatch, tmp_path, profile, "https://{system}.kommun.invalid")
        for variable in PROXY_VARIABLES:
            monkeypatch.setenv(variable, recorder.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # Prefect's own API stays direct
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    else:
        # Production without --confirm-production: not even a loopback target is contacted.
        _configure(monkeypatch, tmp_path, profile, recorder.url + "/{system}")
    data = udir_data.generate()
    write_csv(tmp_path / "kandidater.csv", udir_data.sample_candidates(data, data.schools[0].orgnr))
    result = CliRunner().invoke(app, _commands(tmp_path)[command])
    assert result.exit_code == 1, result.output
    assert recorder.connections == 0
    said = " ".join(result.output.split())
    assert ("only talks to sandboxes on this machine" if profile == "sandbox" else "confirm_production") in said


@pytest.mark.parametrize("debug", [False, True])
def test_a_refusal_reads_as_one_paragraph_on_the_console(debug: bool, recorder: Recorder, tmp_path: Path) -> None:
    """As a user's terminal shows it (a real process): the reason, no traceback, unless --debug asks for one."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SKOLFLOW_")}
    env |= {"SKOLFLOW_PROFILE": "sandbox", "SKOLFLOW_DATA_DIR": str(tmp_path / "data"),
            "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_HOME": str(tmp_path / "prefect"), **SECRETS}
    env |= {f"SKOLFLOW_{name}_URL": f"https://{name.lower()}.kommun.invalid" for name in SYSTEM_URLS}
    command = [SKOLFLOW, *(["--debug"] if debug else []), "run", "betyg-to-beda", "--anslutningspart", "2120000142"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    shown = done.stdout + done.stderr
    assert done.returncode == 1, shown
    assert "profile 'sandbox' only talks to sandboxes on this machine" in " ".join(shown.split())
    assert ("Traceback" in shown) is debug
    assert recorder.connections == 0
