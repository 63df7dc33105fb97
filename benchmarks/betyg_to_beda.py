"""Throughput and peak memory of the Betyg → Beda flow, next to the naive one-request-per-student way.

A script, not a test: performance is never asserted in tests. Run it with

    uv run python benchmarks/betyg_to_beda.py [--students 10000] [--naive-students 2000]
                                              [--concurrency 4] [--batch-size 200]

The sandboxes run in a process of their own (multiprocessing, 'spawn'), since they would otherwise
share the measured process and its memory with the whole synthetic data set. Each variant runs in a
fresh subprocess (this script again, with ``--variant``) that prints one JSON line at the end with its
wall time and its peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``), so every memory figure is that
variant's own. Imports live inside the variants for the same reason: the naive process loads no Prefect.

Variants (see benchmarks/README.md):
  skolflow       the real flow ``betyg_to_beda``, first run (every student sent), fresh SQLite ledger;
  skolflow-again the same flow, same window, same ledger: every student 'unchanged' (steady state);
  naive          whole XML bodies in memory, whole trees, one SS 12000 GET and one Beda PUT per student.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import queue
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

RESULT_PREFIX = "BENCHMARK-RESULT "
SEED = 2026
WINDOW = dt.timedelta(days=14)  # the flow's default window on a first run
SANDBOX_START_TIMEOUT = 180.0


def mistakes_for(students: int) -> int:
    """As many off-scale grades as the demo has, so both variants meet rejections too."""
    return max(2, students // 100)


def rss_mib() -> float:
    """Current resident set size of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# Sandboxes, in their own process


def _serve_sandboxes(students: int, seed: int, ready: Any, stop: Event, schools: int = 6) -> None:
    """Entry point of the sandbox process: serve the seeded data set until told to stop."""
    from skolflow.sandbox import dataset as ds
    from skolflow.sandbox import systems
    from skolflow.sandbox.faults import FaultConfig

    data = ds.generate(students=students, schools=schools, mistakes=mistakes_for(students), seed=seed)
    sandboxes = systems.start(data, {name: FaultConfig() for name in systems.SYSTEMS})
    try:
        ready.put({"environment": sandboxes.environment(), "urls": sandboxes.urls})
        stop.wait()
    finally:
        sandboxes.stop()


@contextlib.contextmanager
def sandbox_process(students: int, seed: int, schools: int = 6) -> Iterator[dict[str, Any]]:
    """Start the sandboxes of a platform of ``students`` in a spawned process; stop it on leaving."""
    context = mp.get_context("spawn")
    ready = context.Queue()
    stop = context.Event()
    process = context.Process(target=_serve_sandboxes, args=(students, seed, ready, stop, schools),
                              name=f"sandboxes-{students}", daemon=True)
    process.start()
    try:
        deadline = time.monotonic() + SANDBOX_START_TIMEOUT
        while True:
            try:
                started = ready.get(timeout=0.5)
                break
            except queue.Empty:
                if not process.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the sandboxes for {students} students did not start") from None
        yield started
    finally:
        stop.set()
        process.join(timeout=15)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
        ready.close()


def valid_students(students: int, seed: int) -> int:
    """How many students Beda must hold afterwards: the same seeded data set, minus off-scale grades."""
    from skolflow.connectors.beda.grade_scales import check_grade
    from skolflow.sandbox import dataset as ds

    data = ds.generate(students=students, mistakes=mistakes_for(students), seed=seed)
    return sum(1 for record in data.records.values()
               if not any(check_grade(g.school_form, g.code, g.value, g.assessment) for g in record.grades))


def beda_holds(beda_url: str) -> int:
    import httpx

    state = httpx.get(f"{beda_url}/_sandbox/state", timeout=60).json()
    return sum(1 for student in state["students"].values() if student["meriter"] is not None)


def reset_beda(beda_url: str) -> None:
    import httpx

    httpx.delete(f"{beda_url}/_sandbox/state", timeout=60).raise_for_status()


# The variants, each run in its own subprocess


async def skolflow_variant(args: argparse.Namespace) -> dict[str, Any]:
    """One run of the real flow; the Prefect server is started (and migrated) before the clock starts."""
    from prefect.client.orchestration import get_client

    from skolflow.flows.betyg_to_beda import PIPELINE, betyg_to_beda
    from skolflow.ledger import Ledger
    from skolflow.sandbox.dataset import HUVUDMAN_ORGNR

    async with get_client() as client:
        await client.api_healthcheck()
        api = str(client.api_url)
    before = rss_mib()
    started = time.perf_counter()
    state = await betyg_to_beda(anslutningspart=HUVUDMAN_ORGNR, start=dt.datetime.fromisoformat(args.start),
                                end=dt.datetime.fromisoformat(args.end), batch_size=args.batch_size,
                                concurrency=args.concurrency, return_state=True)
    seconds = time.perf_counter() - started
    summary = Ledger.shared(os.environ["SKOLFLOW_DATABASE_URL"]).runs(PIPELINE, limit=1)[0].summary
    return {"seconds": seconds, "students": summary["students"], "rss_start_mib": before,
            "peak_rss_mib": peak_rss_mib(), "accepted": summary["accepted"], "unchanged": summary["unchanged"],
            "rejected": summary["rejected"], "failed": summary["failed"], "state": state.type.value,
            "message": state.message or "", "prefect_api": api}


async def naive_variant(args: argparse.Namespace) -> dict[str, Any]:
    """The same work, the naive way: whole bodies, whole trees, one request per student, in sequence.

    Students are prepared exactly as the flow prepares them (``prepare_batch`` on a batch of one, no
    ledger), so the two variants make the same decisions and Beda receives the same merits; only the
    way the data travels differs. Both XML bodies are parsed through xmlsafe (the project's rule for
    remote XML): the Betyg answer as one whole tree, validated at once against the XSD (a schema error
    anywhere rejects every student, as a whole-document check does), the Betygsdokument answer read
    into one list.
    """
    import io
    from collections import defaultdict
    from urllib.parse import urlencode

    from skolflow.connectors import xmlsafe
    from skolflow.connectors.beda.client import BedaClient
    from skolflow.connectors.betyg import codec as betyg_codec
    from skolflow.connectors.betyg.client import format_window
    from skolflow.connectors.betygsdokument import codec as dokument_codec
    from skolflow.connectors.betygsdokument.models import GradeDocument
    from skolflow.connectors.http import HttpSettings, RemoteError, build_client, request
    from skolflow.connectors.ss12000.client import SS12000Client
    from skolflow.sandbox.dataset import HUVUDMAN_ORGNR
    from skolflow.tasks.beda_report import Selection, StudentInput, What, prepare_batch
    from skolflow.tasks.grades import platform_id
    from skolflow.tasks.identities import ResolvedPerson, read_units, same_orgnr

    env = os.environ
    http = HttpSettings()
    before = rss_mib()
    started = time.perf_counter()
    start_text, end_text = format_window(dt.datetime.fromisoformat(args.start), dt.datetime.fromisoformat(args.end))
    query = urlencode({"from": start_text, "tom": end_text}, safe=":")
    async with build_client(env["SKOLFLOW_BETYG_URL"], http,
                            headers={"Authorization": f"Bearer {env['SKOLFLOW_BETYG_TOKEN']}"}) as platform:
        grades_body = (await request(platform, "betyg", "GET", f"/api/skolplattform/betyg?{query}",
                                     retry=http.retry)).content
        documents_body = (await request(platform, "betygsdokument", "GET",
                                        f"/api/skolplattform/betygsdokument?{query}", retry=http.retry)).content
    root = xmlsafe.parse(grades_body)
    schema = xmlsafe.load_schema(betyg_codec.SCHEMA_PATH)
    schema_errors = [] if schema.validate(root) else [f"XSD: {e.message}" for e in schema.error_log]
    documents: dict[str, list[GradeDocument]] = defaultdict(list)
    for document in list(dokument_codec.iter_documents(io.BytesIO(documents_body))):
        documents[platform_id(document.elev)].append(document)

    counts = {"students": 0, "accepted": 0, "rejected": 0, "skipped": 0}
    async with (SS12000Client(env["SKOLFLOW_SS12000_URL"], env["SKOLFLOW_SS12000_TOKEN"], http) as ss,
                BedaClient(env["SKOLFLOW_BEDA_URL"], env["SKOLFLOW_BEDA_CLIENT_ID"],
                           env["SKOLFLOW_BEDA_CLIENT_SECRET"], HUVUDMAN_ORGNR, http) as beda):
        units = await read_units(ss)
        authorised = frozenset(u.code for u in units.values()
                               if u.code and same_orgnr(u.huvudman_orgnr, HUVUDMAN_ORGNR))

        async def one(student: StudentInput) -> None:
            key = platform_id(student.student_id)
            try:
                person = await ss.person(key)
                persons = {key: ResolvedPerson(key, person.civicNo.value if person.civicNo else None,
                                               person.securityMarking)}
            except RemoteError as exc:
                if exc.status_code != 404:
                    raise
                persons = {}
            prepared = prepare_batch([student], persons, units, authorised, {}, Selection(), What.BOTH)
            counts["students"] += 1
            counts["rejected"] += len(prepared.rejected)
            counts["skipped"] += prepared.skipped
            for item in prepared.to_send:
                result = await beda.put_student(item.merits)
                counts["accepted" if result.accepted else "rejected"] += 1

        for element in root.iter(f"{{{betyg_codec.NAMESPACE}}}elev"):
            grades = betyg_codec.student_from_element(element)
            await one(StudentInput(grades.student_id, grades=grades, schema_errors=schema_errors,
                                   documents=documents.pop(platform_id(grades.student_id), [])))
        for docs in documents.values():  # students with a new document and no grade in the window
            await one(StudentInput(docs[0].elev, documents=docs))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_start_mib": before, "peak_rss_mib": peak_rss_mib(), "unchanged": 0,
            "failed": 0, "state": "COMPLETED", "message": "", **counts}


def run_variant(variant: str, args: argparse.Namespace, environment: dict[str, str], *, students: int,
                database_url: str = "", data_dir: Path | None = None) -> dict[str, Any]:
    """Run one variant in a subprocess of its own session; kill that session on timeout or when done."""
    command = [sys.executable, str(Path(__file__).resolve()), "--variant", variant, "--students", str(students),
               "--batch-size", str(args.batch_size), "--concurrency", str(args.concurrency),
               "--start", args.start, "--end", args.end, "--prefect", args.prefect]
    env = {**os.environ, **environment, "SKOLFLOW_PROFILE": "sandbox"}
    if database_url:
        env["SKOLFLOW_DATABASE_URL"] = database_url
    if data_dir is not None:
        env["SKOLFLOW_DATA_DIR"] = str(data_dir)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, start_new_session=True)
        try:
            process.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"variant {variant} did not finish within {args.timeout:.0f} s") from None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the variant and anything it left (Prefect's server)
            process.wait()
        out.seek(0)
        err.seek(0)
        lines = [line for line in out.read().decode(errors="replace").splitlines() if line.startswith(RESULT_PREFIX)]
        if process.returncode != 0 or not lines:
            tail = err.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"variant {variant} failed (exit {process.returncode}):\n{tail}")
    return json.loads(lines[-1].removeprefix(RESULT_PREFIX))


def variant_main(args: argparse.Namespace) -> None:
    if args.variant == "naive":
        result = asyncio.run(naive_variant(args))
    elif args.prefect == "harness":
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=180):
            result = asyncio.run(skolflow_variant(args))
    else:
        result = asyncio.run(skolflow_variant(args))
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# The benchmark itself


def benchmark(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from skolflow.flows.betyg_to_beda import platform_now

    console = Console() if sys.stdout.isatty() else Console(width=140)  # a table pasted from a pipe stays whole
    end = platform_now()
    args.start, args.end = (end - WINDOW).isoformat(), end.isoformat()
    rows: list[tuple[str, dict[str, Any], int, int]] = []  # label, result, Beda holds, expected
    prefect_mode = "prefect_test_harness()" if args.prefect == "harness" else (
        f"server at {os.environ['PREFECT_API_URL']}" if os.environ.get("PREFECT_API_URL")
        else "embedded (ephemeral) server")
    console.print(f"Betyg → Beda benchmark: {os.cpu_count()} CPUs, batch size {args.batch_size}, concurrency "
                  f"{args.concurrency}, Prefect {prefect_mode}; window {args.start} – {args.end}")

    with tempfile.TemporaryDirectory(prefix="skolflow-bench-") as tmp:
        sizes = [args.students] + ([args.naive_students] if args.naive_students != args.students else [])
        for size in sizes:
            expected = valid_students(size, SEED)
            console.print(f"[bold]{size:,} students[/]: starting the sandboxes ({expected:,} valid students)…")
            with sandbox_process(size, SEED) as sandboxes:
                beda = sandboxes["urls"]["beda"]
                environment = sandboxes["environment"]
                ledger = f"sqlite:///{Path(tmp) / f'ledger-{size}.db'}"
                runs = [("skolflow", "skolflow")]
                if size == args.students:
                    runs.append(("skolflow-again", "skolflow"))
                if size == args.naive_students:
                    runs.append(("naive", "naive"))
                for label, variant in runs:
                    if variant == "naive":
                        reset_beda(beda)
                    console.print(f"  running {label}…")
                    result = run_variant(variant, args, environment, students=size, database_url=ledger,
                                         data_dir=Path(tmp) / "data")
                    rows.append((label, result, beda_holds(beda), expected))

    table = Table(title=f"Betyg → Beda on this machine ({os.cpu_count()} CPUs)")
    for column in ("variant", "students", "seconds", "students/s", "RSS at start MiB", "peak RSS MiB",
                   "accepted/unchanged/rejected", "Beda holds (expected)"):
        table.add_column(column, justify="left" if column == "variant" else "right", no_wrap=True)
    for label, result, held, expected in rows:
        rate = result["students"] / result["seconds"] if result["seconds"] else 0.0
        table.add_row(label, f"{result['students']:,}", f"{result['seconds']:.1f}", f"{rate:,.0f}",
                      f"{result['rss_start_mib']:.0f}", f"{result['peak_rss_mib']:.0f}",
                      f"{result['accepted']:,}/{result['unchanged']:,}/{result['rejected']:,}",
                      f"{held:,} ({expected:,})")
    console.print(table)
    for label, result, _held, _expected in rows:
        if result["state"] != "COMPLETED" or result["failed"]:
            console.print(f"[red]{label}: {result['state']} {result['message']}[/]")
    console.print("Peak RSS is the variant process's own: the sandboxes and Prefect's server run in other processes.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=10_000, help="platform size for skolflow (default 10,000)")
    parser.add_argument("--naive-students", type=int, default=2_000,
                        help="platform size for the naive variant (default 2,000; its own N, nothing extrapolated)")
    parser.add_argument("--concurrency", type=int, default=4, help="batches in flight in the flow (default 4)")
    parser.add_argument("--batch-size", type=int, default=200, help="students per batch in the flow (default 200)")
    parser.add_argument("--prefect", choices=("ephemeral", "harness"), default="ephemeral",
                        help="Prefect's embedded server (default, faster to start) or prefect_test_harness()")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per variant (default 1800)")
    parser.add_argument("--variant", choices=("skolflow", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--start", default="", help=argparse.SUPPRESS)
    parser.add_argument("--end", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        variant_main(args)
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
