"""Records per second of DNP provisioning, beside the bound DNP's API itself sets, and the cost of later runs.

A script, not a test. Run it with

    uv run python benchmarks/dnp_provisioning.py [--students 40000] [--json]

The sandboxes (SS 12000, DNP, DNP open data) run in a process of their own, which generates the seeded data set
and takes commands (change a share of the students); the flow runs here on Prefect's embedded server, started
before the clock and warmed by one small flow run (``prefect_warm.py``), with a fresh SQLite ledger. Three
runs, in order, on one ledger, each after a pause that lets the server finish with the run before:

- **first load**: a full read of SS 12000, every record sent;
- **unchanged**: nothing changed in the source; read by change (``meta.modified.after``, ``/deletedEntities``);
- **nightly**: 2 % of the students changed (family name) since; read by change, only they are sent.

**The bound.** DNP allows 5 calls/s for bulk writes and job status together, and 200,000 bytes per write. A
job costs its write and at least one status read (the job status lists every record ``Pending`` until it is
processed, so one read of a finished job is enough), so no client can finish more than 5 / 2 = 2.5 jobs/s,
i.e. ``2.5 × 200,000 / (mean bytes per record)`` records/s. skolflow keeps 5 % under the 5 calls/s
(``RATE_MARGIN``), so its own ceiling is 95 % of the bound. The first load's records/s is given as a share of
the bound, and each later run's seconds as a share of the first load's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import queue
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from prefect_warm import settle, warm_up_prefect  # beside this script
from spawned import first_answer  # benchmarks/spawned.py, beside this script

from skolflow.connectors.dnp.client import MAX_PAYLOAD_BYTES, RATE_MARGIN, WRITE_CALLS_PER_SECOND

SEED = 2026
NIGHTLY_SHARE = 0.02
MIN_STATUS_READS_PER_JOB = 1  # a finished job's status, read once
SANDBOX_START_TIMEOUT = 600.0


def bound_records_per_second(bytes_per_record: float) -> float:
    """DNP's bound: 5 calls/s ÷ (1 write + 1 status read per job) × records per 200,000-byte write."""
    jobs_per_second = WRITE_CALLS_PER_SECOND / (1 + MIN_STATUS_READS_PER_JOB)
    return jobs_per_second * MAX_PAYLOAD_BYTES / bytes_per_record if bytes_per_record else 0.0


def load_average() -> str:
    """The 1-minute load average (the machine is shared: each figure is given with it)."""
    return f"{os.getloadavg()[0]:.2f}"


# Sandboxes, in their own process


def _serve(students: int, schools: int, seed: int, ready: Any, commands: Any, answers: Any, stop: Event) -> None:
    """Entry point of the sandbox process: serve the seeded data set, change it when told, until stopped."""
    from skolflow.gcpolicy import fewer_collections, long_lived
    from skolflow.sandbox import dataset as ds
    from skolflow.sandbox import systems
    from skolflow.sandbox.faults import FaultConfig

    data = ds.generate(students=students, schools=schools, mistakes=max(2, students // 100), seed=seed)
    sandboxes = systems.start(data, {name: FaultConfig() for name in systems.SYSTEMS})
    # The sandboxes hold the whole data set and, in DNP's, what it took: left alone, Python's collector stops them
    # for up to 0.6 s again and again, which shows as gaps in the flow's calls that DNP itself would not cause.
    # What they hold is frozen every half second (skolflow.gcpolicy), so collections look only at what is new.
    with fewer_collections():
        try:
            ready.put({"environment": sandboxes.environment(), "urls": sandboxes.urls})
            while not stop.is_set():
                long_lived()
                try:
                    share = commands.get(timeout=0.5)
                except queue.Empty:
                    continue
                chosen = data.students()[::round(1 / share)]
                for student in chosen:  # a family name, as a marriage or a correction changes it
                    data.change_person(student.id, family_name=f"{student.family_name}-Ändrad")
                answers.put(len(chosen))
        finally:
            sandboxes.stop()


@contextlib.contextmanager
def sandbox_process(students: int, schools: int, seed: int = SEED) -> Iterator[tuple[dict[str, Any], Any, Any]]:
    """The sandboxes in a spawned process: (what they print, a command queue, an answer queue); stopped on leaving."""
    context = mp.get_context("spawn")
    ready, commands, answers, stop = context.Queue(), context.Queue(), context.Queue(), context.Event()
    process = context.Process(target=_serve, args=(students, schools, seed, ready, commands, answers, stop),
                              name=f"dnp-sandboxes-{students}", daemon=True)
    process.start()
    try:
        started = first_answer(process, ready, f"{students} students", SANDBOX_START_TIMEOUT)
        yield started, commands, answers
    finally:
        stop.set()
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)


# One run of the flow


def rate_limited() -> int:
    """How many calls the DNP sandbox has answered 429 so far (its sliding windows, per client IP, as DNP's)."""
    import httpx

    return int(httpx.get(f"{os.environ['SKOLFLOW_DNP_URL']}/_sandbox/state", timeout=30).json()["rate_limited"])


async def run_once(huvudman: str, first: bool) -> dict[str, Any]:
    """One run of the real flow; the Prefect server is up (and migrated) before the clock starts.

    Before the first run, one small flow run (``warm_up_prefect``: what the first flow run of a process against
    a fresh server costs once, 0.4–0.5 s); before each, a pause for the server to finish with the runs before.
    """
    from prefect.client.orchestration import get_client

    from skolflow.flows.dnp_provisioning import dnp_provisioning
    from skolflow.ledger import Ledger
    from skolflow.tasks.dnp_steps import PIPELINE

    async with get_client() as client:
        await client.api_healthcheck()
    warm_up = await warm_up_prefect() if first else None
    if not first:
        await settle()
    refused_before = rate_limited()
    load = load_average()
    started = time.perf_counter()
    state = await dnp_provisioning(huvudman=huvudman, return_state=True)
    seconds = time.perf_counter() - started
    ledger = Ledger.shared(os.environ["SKOLFLOW_DATABASE_URL"])
    run = ledger.runs(PIPELINE, limit=1)[0]
    calls = ledger.calls(run.id)
    posts = [c for c in calls if c.method == "POST" and c.path.endswith("/bulk?updateIfExists=true")]
    status = [c for c in calls if c.method == "GET" and "/bulk/jobs/" in c.path]
    # From the first write to the last status read: the part of the run DNP's bound speaks of.
    sending = (calls[-1].at - calls[0].at).total_seconds() if calls else 0.0
    return {"sending_seconds": round(sending, 2),
            "state": state.name, "message": state.message, "seconds": round(seconds, 2), "steps": run.summary,
            "posts": len(posts), "status_calls": len(status), "calls": len(calls), "load_1min": load,
            "prefect_warm_up_seconds": warm_up, "rate_limited": rate_limited() - refused_before,
            "bytes": sum(len((c.request_body or "").encode()) for c in posts),
            "records": sum(s["sent"] for s in run.summary.values()),
            "held": sum(s["sent"] + s["unchanged"] for s in run.summary.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--students", type=int, default=40_000,
                        help="students in the data set (default 40,000: some 20,000 in GR and GY, whom DNP takes)")
    parser.add_argument("--schools", type=int, default=0,
                        help="school units (default: one per 700 students, so classes have a school's size)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document")
    args = parser.parse_args()
    schools = args.schools or max(6, args.students // 700)

    from rich.console import Console
    from rich.table import Table

    from skolflow.sandbox.dataset import HUVUDMAN_ORGNR

    console = Console(stderr=args.json) if sys.stdout.isatty() else Console(width=170, stderr=args.json)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    rows: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="skolflow-bench-dnp-") as tmp, \
            sandbox_process(args.students, schools) as (sandboxes, commands, answers):
        os.environ.update(sandboxes["environment"])
        os.environ.update({"SKOLFLOW_PROFILE": "sandbox", "SKOLFLOW_DATA_DIR": str(Path(tmp) / "data"),
                           "SKOLFLOW_DATABASE_URL": f"sqlite:///{Path(tmp) / 'ledger.db'}"})
        for label in ("first load", "unchanged", "nightly"):
            if label == "nightly":
                commands.put(NIGHTLY_SHARE)
                changed = answers.get(timeout=600)
                console.print(f"{changed:,} students changed in SS 12000")
            console.print(f"running DNP provisioning ({label}) for {args.students:,} students…")
            rows.append((label, asyncio.run(run_once(HUVUDMAN_ORGNR, first=not rows))))
            if rows[-1][1]["state"] != "Completed":
                console.print(f"[red]{label}: {rows[-1][1]['state']} {rows[-1][1]['message']}[/]")
                sys.exit(1)

    first = rows[0][1]
    per_record = first["bytes"] / first["records"] if first["records"] else 0.0
    bound = bound_records_per_second(per_record)
    figures: dict[str, Any] = {
        "students": args.students, "school_units": schools, "cpus": os.cpu_count(),
        "mean_bytes_per_record": round(per_record, 1), "records_per_write": round(MAX_PAYLOAD_BYTES / per_record, 1)
        if per_record else 0, "bound_records_per_second": round(bound, 1),
        "bound": f"{WRITE_CALLS_PER_SECOND:g} calls/s ÷ (1 write + {MIN_STATUS_READS_PER_JOB} status read per job) × "
                 f"{MAX_PAYLOAD_BYTES:,} bytes ÷ {per_record:,.0f} bytes per record",
        "runs": {},
    }
    for label, result in rows:
        rate = result["records"] / result["seconds"] if result["seconds"] else 0.0
        jobs = result["posts"]
        figures["runs"][label] = {
            **{k: result[k] for k in ("seconds", "sending_seconds", "records", "held", "posts", "status_calls",
                                      "calls", "load_1min", "message", "prefect_warm_up_seconds",
                                      "rate_limited")},
            "persons": result["steps"]["persons"]["sent"] + result["steps"]["persons"]["unchanged"],
            "records_per_second": round(rate, 1),
            "sending_records_per_second": round(result["records"] / result["sending_seconds"], 1)
            if result["sending_seconds"] else None,
            "sending_share_of_bound": round(result["records"] / result["sending_seconds"] / bound, 3)
            if result["sending_seconds"] and bound and label == "first load" else None,
            "status_calls_per_job": round(result["status_calls"] / jobs, 2) if jobs else None,
            "share_of_bound": round(rate / bound, 3) if bound and label == "first load" else None,
            "share_of_first_load_time": round(result["seconds"] / first["seconds"], 3),
        }
    if args.json:
        print(json.dumps(figures, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"DNP provisioning on this machine ({os.cpu_count()} CPUs), {args.students:,} students, "
                        f"{schools} school units")
    for column in ("run", "persons", "records sent", "seconds", "records/s", "share of bound", "time ÷ first load",
                   "sending s", "sending share", "bulk POSTs", "status calls", "status/job", "429s", "load (1 min)"):
        table.add_column(column, justify="left" if column == "run" else "right", no_wrap=True)
    for label, run in figures["runs"].items():
        table.add_row(label, f"{run['persons']:,}", f"{run['records']:,}", f"{run['seconds']:.1f}",
                      f"{run['records_per_second']:,.0f}",
                      f"{run['share_of_bound']:.0%}" if run["share_of_bound"] is not None else "–",
                      f"{run['share_of_first_load_time']:.0%}", f"{run['sending_seconds']:.1f}",
                      f"{run['sending_share_of_bound']:.0%}" if run["sending_share_of_bound"] is not None else "–",
                      f"{run['posts']:,}", f"{run['status_calls']:,}",
                      f"{run['status_calls_per_job']}" if run["status_calls_per_job"] is not None else "–",
                      f"{run['rate_limited']}", run["load_1min"])
    console.print(table)
    console.print(f"Bound: {figures['bound']} = {bound:,.0f} records/s (skolflow's own ceiling, {1 - RATE_MARGIN:.0%} "
                  f"under the call rate: {RATE_MARGIN * bound:,.0f}).")
    for label, run in figures["runs"].items():
        console.print(f"{label}: {run['message']}")
    console.print(f"Prefect's first flow run in the process (before the first clock) took "
                  f"{first['prefect_warm_up_seconds']:.2f} s.")


if __name__ == "__main__":
    main()
