"""Failure notices reach a webhook (the receiver sandbox, over real HTTP) from real Prefect runs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from pydantic import SecretStr

from skolflow.notify import WEBHOOK_BLOCK_ENV, WEBHOOK_URL_ENV, WebhookTarget, failure_notifier, notify_failure
from skolflow.sandbox.faults import FaultConfig
from skolflow.sandbox.runner import SandboxServer, free_port, with_faults
from skolflow.sandbox.webhook import NOTICES_PATH, create_app

pytestmark = pytest.mark.usefixtures("prefect_harness")

PERSONNUMMER = "191212121212"  # Skatteverket's published test personnummer (valid check digit)


class Interrupted(BaseException):
    """Not an Exception: Prefect treats it as a crash of the run, not a failure of the flow's code."""


@flow(name="notify-test", flow_run_name="notify-test · 212000-0142", on_failure=[notify_failure],
      on_crashed=[notify_failure])
async def failing_flow() -> None:
    raise ValueError(f"Beda refused elev {PERSONNUMMER[:8]}-{PERSONNUMMER[8:]}: fel betygsskala")


@flow(name="notify-crash-test", on_crashed=[notify_failure])
def crashing_flow() -> None:
    raise Interrupted(f"worker lost while reporting {PERSONNUMMER}")


@pytest.fixture
def receiver() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        server.start("webhook", with_faults(create_app(), "webhook", FaultConfig()))
        yield server


@pytest.fixture
def webhook_url(receiver: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> str:
    url = receiver.url("webhook") + NOTICES_PATH
    monkeypatch.setenv(WEBHOOK_URL_ENV, url)
    monkeypatch.delenv(WEBHOOK_BLOCK_ENV, raising=False)
    return url


def notices(receiver: SandboxServer) -> list[dict[str, Any]]:
    return httpx.get(f"{receiver.url('webhook')}/_sandbox/state").json()["notices"]


async def run_logs(flow_run_id: UUID) -> list[str]:
    await APILogHandler.aflush()
    async with get_client() as client:
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                                      limit=200, offset=0)
    return [f"{logging.getLevelName(log.level)} {log.message}" for log in logs]


@pytest.mark.usefixtures("webhook_url")
async def test_a_failed_run_notifies_with_the_personnummer_masked(receiver: SandboxServer) -> None:
    state = await failing_flow(return_state=True)
    assert state.is_failed()
    [notice] = notices(receiver)
    run_id = state.state_details.flow_run_id
    assert notice["flow"] == "notify-test" and notice["flow_run"] == "notify-test · 212000-0142"
    assert notice["flow_run_id"] == str(run_id)
    assert notice["state"] == "FAILED" and notice["state_name"] == "Failed"
    assert "ValueError: Beda refused elev 19121212-****: fel betygsskala" in notice["message"]
    assert notice["url"].endswith(f"/runs/flow-run/{run_id}") and notice["url"] in notice["text"]
    as_sent = json.dumps(notice)
    assert PERSONNUMMER not in as_sent and "19121212-1212" not in as_sent
    assert any("failure notice sent" in line for line in await run_logs(run_id))


@pytest.mark.usefixtures("webhook_url")
def test_a_crashed_run_notifies_too(receiver: SandboxServer) -> None:
    with pytest.raises(Interrupted):
        crashing_flow()
    [notice] = notices(receiver)
    assert notice["flow"] == "notify-crash-test" and notice["state"] == "CRASHED"
    assert "Interrupted: worker lost while reporting 19121212-****" in notice["message"]
    assert PERSONNUMMER not in json.dumps(notice)


async def test_a_broken_webhook_leaves_the_failure_as_it_was_and_says_so_in_the_log(
        receiver: SandboxServer, webhook_url: str) -> None:
    httpx.put(f"{receiver.url('webhook')}/_sandbox/faults", json={"server_error": 1.0}).raise_for_status()
    state = await failing_flow(return_state=True)
    assert state.is_failed() and "fel betygsskala" in (state.message or "")
    assert notices(receiver) == []
    logs = await run_logs(state.state_details.flow_run_id)
    assert "WARNING failure notice not sent: the webhook answered HTTP 503" in logs
    assert not any(webhook_url in line for line in logs)  # a webhook URL may carry its own token


@pytest.mark.parametrize(("profile", "url"), [("sandbox", "https://hooks.kommun.invalid/notices"),
                                             ("production", "receiver")])
async def test_the_webhook_is_a_target_like_any_other(profile: str, url: str, receiver: SandboxServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Profile sandbox posts to this machine only; production posts only for a run that confirmed production."""
    monkeypatch.setenv("SKOLFLOW_PROFILE", profile)
    monkeypatch.setenv(WEBHOOK_URL_ENV, receiver.url("webhook") + NOTICES_PATH if url == "receiver" else url)
    state = await failing_flow(return_state=True)
    assert state.is_failed() and notices(receiver) == []
    logs = await run_logs(state.state_details.flow_run_id)
    reason = "profile 'sandbox' only talks to sandboxes" if profile == "sandbox" else "confirm_production=True"
    assert any(line.startswith("WARNING failure notice not sent: webhook:") and reason in line for line in logs)


async def test_an_unreachable_webhook_is_a_warning_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOK_URL_ENV, f"http://127.0.0.1:{free_port()}{NOTICES_PATH}")
    state = await failing_flow(return_state=True)
    assert state.is_failed() and "fel betygsskala" in (state.message or "")
    logs = await run_logs(state.state_details.flow_run_id)
    assert any(line.startswith("WARNING failure notice not sent: the webhook could not be reached") for line in logs)
    assert not any(line.startswith("ERROR") and "notify_failure" in line for line in logs)


async def test_the_webhook_can_be_a_block(receiver: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WEBHOOK_URL_ENV, raising=False)
    await WebhookTarget(url=SecretStr(receiver.url("webhook") + NOTICES_PATH)).save("skolflow-test-webhook",
                                                                                      overwrite=True)
    monkeypatch.setenv(WEBHOOK_BLOCK_ENV, "skolflow-test-webhook")
    await failing_flow(return_state=True)
    assert [n["flow"] for n in notices(receiver)] == ["notify-test"]


async def test_a_notifier_bound_to_one_webhook_ignores_the_environment(
        receiver: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOK_URL_ENV, f"http://127.0.0.1:{free_port()}{NOTICES_PATH}")
    bound = failing_flow.with_options(on_failure=[failure_notifier(url=receiver.url("webhook") + NOTICES_PATH)])
    await bound(return_state=True)
    assert [n["state"] for n in notices(receiver)] == ["FAILED"]


async def test_without_a_webhook_the_log_says_no_notice_was_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WEBHOOK_URL_ENV, raising=False)
    monkeypatch.delenv(WEBHOOK_BLOCK_ENV, raising=False)
    state = await failing_flow(return_state=True)
    assert state.is_failed()
    logs = await run_logs(state.state_details.flow_run_id)
    assert f"INFO no failure notice sent: neither {WEBHOOK_URL_ENV} nor {WEBHOOK_BLOCK_ENV} is set" in logs


def test_the_receiver_refuses_what_is_not_a_json_object(receiver: SandboxServer) -> None:
    url = receiver.url("webhook") + NOTICES_PATH
    assert httpx.post(url, content=b"not json").status_code == 400
    assert httpx.post(url, json=["a", "list"]).status_code == 400
    assert httpx.post(url, json={"flow": "x"}).status_code == 202
    httpx.delete(f"{receiver.url('webhook')}/_sandbox/state").raise_for_status()
    assert notices(receiver) == []


def test_the_receiver_runs_standalone_and_prints_what_to_export() -> None:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "skolflow.sandbox.webhook", "--port", str(port)],
                               stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        first = process.stdout.readline() if process.stdout else ""
        export = process.stdout.readline() if process.stdout else ""
        assert export.strip() == f"export SKOLFLOW_WEBHOOK_URL=http://127.0.0.1:{port}{NOTICES_PATH}", first
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}{NOTICES_PATH}", json={"flow": "betyg-to-beda"})
                break
            except httpx.ConnectError:
                assert process.poll() is None and time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.1)
        assert answer.status_code == 202
        assert httpx.get(f"http://127.0.0.1:{port}/_sandbox/state").json() == {"notices": [{"flow": "betyg-to-beda"}]}
    finally:
        process.terminate()
        process.wait(timeout=20)
