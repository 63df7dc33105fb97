"""Failure notices: a flow hook that tells a webhook (Teams, Slack, Mattermost, an on-call bridge) a run failed.

An admin should not have to watch the UI to learn that last night's Beda report failed. Prefect Cloud's and the
server's automations can notify too, but a hook goes wherever the flow runs (the embedded server, ``skolflow
serve``, a worker) and sends only what skolflow decides is safe: names and states, and the state message with
every identity number masked — never parameters or results.

Attach it with ``@flow(on_failure=[notify_failure], on_crashed=[notify_failure])``. Where the notice goes is read
when a run fails: the block named in ``SKOLFLOW_WEBHOOK_BLOCK`` (a :class:`WebhookTarget`), else the URL in
``SKOLFLOW_WEBHOOK_URL``; with neither, the run's log says no notice was sent. :func:`failure_notifier` binds a
hook to one webhook instead. A notice that cannot be delivered is a warning in the run's log, never an error: a
broken webhook must not hide, or change, the failure it was meant to report.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx
from prefect import Flow
from prefect.blocks.core import Block
from prefect.client.schemas.objects import FlowRun, State
from prefect.logging.loggers import flow_run_logger
from prefect.utilities.urls import url_for
from pydantic import Field, SecretStr

from skolflow.connectors.http import HttpSettings, RemoteError, RetryPolicy, build_client, request
from skolflow.guard import ProductionGuardError
from skolflow.identity import mask_text
from skolflow.settings import Settings

WEBHOOK_URL_ENV = "SKOLFLOW_WEBHOOK_URL"
WEBHOOK_BLOCK_ENV = "SKOLFLOW_WEBHOOK_BLOCK"
MAX_MESSAGE = 2000  # chat systems cut long messages anyway; the full story is in the run's logs

# A notice is sent while the run is ending: a few quick tries, then give up rather than hold the run open.
NOTICE_HTTP = HttpSettings(timeout=httpx.Timeout(10.0, connect=5.0),
                           retry=RetryPolicy(attempts=3, backoff_base=0.5, backoff_max=4.0, max_retry_after=10.0))

FlowStateHook = Callable[[Flow[Any, Any], FlowRun, State[Any]], Awaitable[None]]


class WebhookTarget(Block):
    """Where failure notices are POSTed. The URL is a secret: chat webhooks carry their own token in it."""

    _block_type_name = "skolflow Webhook"

    url: SecretStr = Field(description="webhook URL receiving a JSON notice per failed or crashed run")


def build_notice(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> dict[str, Any]:
    """The JSON a webhook receives. ``text`` is one readable line, so Slack-style webhooks need no template."""
    message = mask_text(state.message or "")[:MAX_MESSAGE]
    link = url_for(flow_run) or None
    text = f"{flow.name}: run '{flow_run.name}' {state.name}" + (f": {message}" if message else "")
    return {
        "flow": flow.name,
        "flow_run": flow_run.name,
        "flow_run_id": str(flow_run.id),
        "state": state.type.value,
        "state_name": state.name,
        "message": message,
        "timestamp": state.timestamp.isoformat() if state.timestamp else None,
        "url": link,
        "text": f"{text} {link}" if link else text,
    }


async def _target(url: str | None, block: str | None) -> str | None:
    name = block or (None if url else os.environ.get(WEBHOOK_BLOCK_ENV))
    if name:
        target = await WebhookTarget.aload(name)
        return target.url.get_secret_value()
    return url or os.environ.get(WEBHOOK_URL_ENV) or None


def _notice_http(flow_run: FlowRun) -> HttpSettings:
    """The notice's quick retries behind the run's own guard: a webhook is a target like any other."""
    confirmed = bool((flow_run.parameters or {}).get("confirm_production"))
    door = Settings.from_env().http(confirmed).door
    return replace(NOTICE_HTTP, door=door)


def _why(exc: Exception) -> str:
    """Why a notice was not delivered, without the webhook's URL (which may hold its token)."""
    if isinstance(exc, RemoteError) and exc.status_code:
        return f"the webhook answered HTTP {exc.status_code}"
    if isinstance(exc, RemoteError):
        return f"the webhook could not be reached ({exc.body})"
    if isinstance(exc, ProductionGuardError):
        return str(exc)
    return f"{type(exc).__name__}: {mask_text(str(exc))}"


def failure_notifier(*, url: str | None = None, block: str | None = None) -> FlowStateHook:
    """A hook for ``on_failure``/``on_crashed`` sending to ``url`` or the :class:`WebhookTarget` block ``block``.

    Without either, the environment is read when a run fails (see the module's docstring), so one hook serves
    every deployment and the webhook can change without redeploying.
    """

    async def notify_failure(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> None:
        logger = flow_run_logger(flow_run, flow)
        try:
            target = await _target(url, block)
            if target is None:
                logger.info("no failure notice sent: neither %s nor %s is set", WEBHOOK_URL_ENV, WEBHOOK_BLOCK_ENV)
                return
            async with build_client("", _notice_http(flow_run), system="webhook") as client:
                await request(client, "webhook", "POST", target, retry=NOTICE_HTTP.retry,
                              json=build_notice(flow, flow_run, state))
        except Exception as exc:  # a broken webhook must not hide the run's own failure
            logger.warning("failure notice not sent: %s", _why(exc))
        else:
            logger.info("failure notice sent to the webhook")

    return notify_failure


notify_failure: FlowStateHook = failure_notifier()
