"""Fault injection, over real HTTP: each fault looks to a client as the real failure would."""

import httpx
import pytest
from fastapi import FastAPI

from skolflow.sandbox.faults import FaultConfig
from skolflow.sandbox.runner import SandboxServer, with_faults


@pytest.fixture
def served() -> tuple[str, list[int]]:
    hits: list[int] = []
    app = FastAPI()

    @app.put("/thing")
    def thing() -> dict[str, int]:
        hits.append(1)
        return {"ok": 1}

    with SandboxServer() as server:
        yield server.start("demo", with_faults(app, "demo", FaultConfig())), hits


def _set(url: str, **faults: float) -> None:
    httpx.put(f"{url}/_sandbox/faults", json=faults).raise_for_status()


def test_each_fault_kind(served: tuple[str, list[int]]) -> None:
    url, hits = served
    with httpx.Client(base_url=url, timeout=0.5) as client:
        _set(url, server_error=1.0)
        assert client.put("/thing").status_code == 503
        _set(url, rate_limit=1.0, retry_after_seconds=3)
        response = client.put("/thing")
        assert response.status_code == 429 and response.headers["retry-after"] == "3"
        assert hits == []
        _set(url, timeout=1.0, timeout_hold_seconds=2)
        with pytest.raises(httpx.ReadTimeout):
            client.put("/thing")
        _set(url, drop=1.0)
        with pytest.raises(httpx.RemoteProtocolError):
            client.put("/thing")
        assert len(hits) == 2  # timeouts and drops happen after the work was done: the hard case for clients
        _set(url)
        assert client.put("/thing").status_code == 200
    state = httpx.get(f"{url}/_sandbox/faults").json()
    assert state["injected"] == {"server_error": 1, "timeout": 1, "rate_limit": 1, "drop": 1}


def test_faults_from_environment_per_system() -> None:
    env = {"SKOLFLOW_FAULT_5XX": "0.1", "SKOLFLOW_FAULT_BEDA_5XX": "0.3", "SKOLFLOW_FAULT_TIMEOUT": "0.1"}
    assert FaultConfig.from_env("beda", env).server_error == 0.3
    assert FaultConfig.from_env("betyg", env).server_error == 0.1
    assert FaultConfig.from_env("betyg", env).timeout == 0.1


def test_a_system_with_a_dash_in_its_name_reads_underscored_variables() -> None:
    assert FaultConfig.from_env("dnp-opendata", {"SKOLFLOW_FAULT_DNP_OPENDATA_DROP": "0.2"}).drop == 0.2
