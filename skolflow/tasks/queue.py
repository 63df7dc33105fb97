"""One run at a time per key (a huvudman, an anslutningspart): a Prefect global concurrency limit of 1.

A second run for the same key waits until the first has finished; runs for other keys go on. The
limit is created on first use, so no one has to set it up by hand; it shows in the Prefect UI under
Concurrency as ``skolflow-<pipeline>-<key>``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.asyncio import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from skolflow.tasks.artifacts import artifact_key


def limit_name(pipeline: str, key: str) -> str:
    return artifact_key("skolflow", pipeline, key)


async def _ensure_limit(name: str) -> None:
    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            # Another run may create it between our read and create: that one is as good.
            with suppress(ObjectAlreadyExists):
                await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


@asynccontextmanager
async def one_at_a_time(pipeline: str, key: str) -> AsyncIterator[str]:
    """Hold the key's single slot for the body; waits (without limit) while another run holds it."""
    name = limit_name(pipeline, key)
    await _ensure_limit(name)
    async with concurrency(name, occupy=1, strict=True):
        yield name
