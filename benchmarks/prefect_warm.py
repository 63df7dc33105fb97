"""What the benchmarks do with Prefect before a clock starts: one small flow run, then a pause."""

from __future__ import annotations

import asyncio
import time

# After a flow run, Prefect's log worker sends its batch every 2 s and the server's services record the run's
# events. A run started inside that tail met it on an SQLite server: "database is locked", a 503 to the new flow
# run, and Prefect's client retried after 2 s (benchmarks/README.md, Betyg → Beda round 3).
SETTLE_SECONDS = 3.0


async def settle() -> None:
    """Let the server finish with the runs before, as a server in production has long done."""
    await asyncio.sleep(SETTLE_SECONDS)


async def warm_up_prefect() -> float:
    """Run a flow with one task and one artifact, then :func:`settle`; return how long the run took.

    The first flow run of a process against a server that has just started pays for what both do once: the
    server's first flow run, task run and artifact (about 0.3 s of its CPU here) and the client's first use of
    Prefect's engine (its result storage, its lazy imports). A server in production has long been running, so
    the measured run starts after this. What the warm-up took is reported beside the figures.
    """
    from prefect import flow, task
    from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
    from prefect.cache_policies import NO_CACHE

    @task(name="warm-up-task", cache_policy=NO_CACHE, persist_result=False)
    async def nothing() -> None:
        return None

    @flow(name="benchmark-warm-up", persist_result=False)
    async def warm_up() -> None:
        await nothing()
        await aupdate_progress_artifact(await acreate_progress_artifact(progress=0.0), progress=100.0)

    started = time.perf_counter()
    await warm_up()
    seconds = time.perf_counter() - started
    await settle()
    return seconds
