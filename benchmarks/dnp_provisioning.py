"""Records per second of DNP provisioning, beside the bound DNP's API itself sets (5 write calls/s × 200 KB).

A script, not a test. Run it with

    uv run python benchmarks/dnp_provisioning.py [--students 40000]

The sandboxes (SS 12000, DNP, DNP open data) run in a process of their own, as in
``benchmarks/betyg_to_beda.py`` (whose ``sandbox_process`` this reuses); the flow runs here on Prefect's
embedded server with a fresh SQLite ledger. Two rows: the first run (everything sent) and a second,
unchanged run (everything read, diffed and found unchanged: no call to DNP).

The bound: DNP takes at most 5 write calls per second (bulk writes *and* job-status polls) and 200 KB
per call, so no client can send more than ``5 × 200,000 / (mean bytes per record)`` records per second;
skolflow keeps 10 % below the call rate and spends calls on polling jobs too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from betyg_to_beda import SEED, sandbox_process  # noqa: E402 - the sibling script's sandbox process

from skolflow.connectors.dnp.client import MAX_PAYLOAD_BYTES, WRITE_CALLS_PER_SECOND  # noqa: E402


async def run_once(huvudman: str) -> dict[str, Any]:
    """One run of the real flow; the Prefect server is up (and migrated) before the clock starts."""
    from prefect.client.orchestration import get_client

    from skolflow.flows.dnp_provisioning import dnp_provisioning
    from skolflow.ledger import Ledger
    from skolflow.tasks.dnp_steps import PIPELINE

    async with get_client() as client:
        await client.api_healthcheck()
    started = time.perf_counter()
    state = await dnp_provisioning(huvudman=huvudman, return_state=True)
    seconds = time.perf_counter() - started
    ledger = Ledger.shared(os.environ["SKOLFLOW_DATABASE_URL"])
    run = ledger.runs(PIPELINE, limit=1)[0]
    posts = [c for c in ledger.calls(run.id) if c.method == "POST" and c.path.endswith("/bulk?updateIfExists=true")]
    return {"state": state.name, "message": state.message, "seconds": seconds, "steps": run.summary,
            "posts": len(posts), "calls": len(ledger.calls(run.id)),
            "bytes": sum(len((c.request_body or "").encode()) for c in posts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40_000,
                        help="students in the data set (default 40,000: some 20,000 in GR and GY, whom DNP takes)")
    parser.add_argument("--schools", type=int, default=0,
                        help="school units (default: one per 700 students, so classes have a school's size)")
    args = parser.parse_args()
    schools = args.schools or max(6, args.students // 700)

    from rich.console import Console
    from rich.table import Table

    from skolflow.sandbox.dataset import HUVUDMAN_ORGNR

    console = Console() if sys.stdout.isatty() else Console(width=160)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    rows = []
    with tempfile.TemporaryDirectory(prefix="skolflow-bench-dnp-") as tmp, \
            sandbox_process(args.students, SEED, schools) as sandboxes:
        os.environ.update(sandboxes["environment"])
        os.environ.update({"SKOLFLOW_PROFILE": "sandbox", "SKOLFLOW_DATA_DIR": str(Path(tmp) / "data"),
                           "SKOLFLOW_DATABASE_URL": f"sqlite:///{Path(tmp) / 'ledger.db'}"})
        for label in ("first run", "unchanged run"):
            console.print(f"running DNP provisioning ({label}) for {args.students:,} students…")
            rows.append((label, asyncio.run(run_once(HUVUDMAN_ORGNR))))

    for label, result in rows:
        if result["state"] != "Completed":
            console.print(f"[red]{label}: {result['state']} {result['message']}[/]")
            return
    first = rows[0][1]
    sent = sum(step["sent"] for step in first["steps"].values())
    per_record = first["bytes"] / sent if sent else 0.0
    bound = WRITE_CALLS_PER_SECOND * MAX_PAYLOAD_BYTES / per_record if per_record else 0.0
    table = Table(title=f"DNP provisioning on this machine ({os.cpu_count()} CPUs), {args.students:,} students, "
                        f"{schools} school units")
    for column in ("run", "persons", "duties", "groups", "activities", "seconds", "records/s", "bulk POSTs",
                   "all calls", "API bound records/s", "share of bound"):
        table.add_column(column, justify="left" if column == "run" else "right", no_wrap=True)
    for label, result in rows:
        steps = result["steps"]
        records = sum(s["sent"] + s["unchanged"] for s in steps.values())
        rate = records / result["seconds"] if result["seconds"] else 0.0
        table.add_row(label, *(f"{steps[k]['sent'] + steps[k]['unchanged']:,}" for k in
                               ("persons", "duties", "groups", "activities")),
                      f"{result['seconds']:.1f}", f"{rate:,.0f}", f"{result['posts']:,}", f"{result['calls']:,}",
                      f"{bound:,.0f}", f"{rate / bound:.0%}" if bound and label == "first run" else "–")
    console.print(table)
    console.print(f"Mean record on the wire: {per_record:,.0f} bytes; bound = {WRITE_CALLS_PER_SECOND:g} calls/s × "
                  f"{MAX_PAYLOAD_BYTES:,} bytes / {per_record:,.0f} bytes. {schools} school units.")


if __name__ == "__main__":
    main()
