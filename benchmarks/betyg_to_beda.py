"""Throughput and peak memory of the Betyg → Beda flow beside a floor, its tasks without Prefect, and the naive way.

A script, not a test: performance is never asserted in tests. Run it with

    uv run python benchmarks/betyg_to_beda.py [--students 10000] [--naive-students 2000] [--latency-ms 20]
                                              [--concurrency 4] [--batch-size 200] [--variants …] [--json]

The sandboxes run in a process of their own (multiprocessing, 'spawn'), since they would otherwise
share the measured process and its memory with the whole synthetic data set; ``--latency-ms`` is added
there to every platform, SS 12000 and Beda request (the sandboxes' own fault middleware), as a
municipality reaching them over the internet would see. Each variant runs in a fresh subprocess (this
script again, with ``--variant``) that prints one JSON line at the end with its wall time and its peak
RSS (``VmHWM``, see :func:`peak_rss_mib`), so every memory figure is that variant's own. Imports live
inside the variants for the same reason: the floor and naive processes load no Prefect.

Variants (see benchmarks/README.md):
  floor          the least a program can do: the same exports streamed once with lxml (no XSD, no ledger),
                 the same SS 12000 lookups and Beda batches over one pooled client per system;
  plain          the flow's own task functions in a plain asyncio loop: the flow minus Prefect;
  skolflow       the real flow ``betyg_to_beda``, first run (every student sent), fresh SQLite ledger;
  skolflow-again the same flow, same window, same ledger: every student 'unchanged' (steady state);
  skolflow-nightly the next night: 2 % of the students changed since, read from the first run's end;
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
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from prefect_warm import warm_up_prefect  # beside this script
from spawned import first_answer  # benchmarks/spawned.py, beside this script

RESULT_PREFIX = "BENCHMARK-RESULT "
SEED = 2026
WINDOW = dt.timedelta(days=14)  # the flow's default window on a first run
SANDBOX_START_TIMEOUT = 180.0
VARIANTS = ("floor", "plain", "skolflow", "skolflow-again", "skolflow-nightly", "naive")
NIGHTLY_SHARE = 0.02  # students changed between the first run and the nightly one
DELAYED = ("platform", "ss12000", "beda")  # the systems ``--latency-ms`` puts far away


def mistakes_for(students: int) -> int:
    """As many off-scale grades as the demo has, so both variants meet rejections too."""
    return max(2, students // 100)


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mib() -> float:
    """Current resident set size of this process."""
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    """The highest resident set size of this process's own memory since it started (``VmHWM``).

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries the parent's high-water mark into a child across
    fork/vfork and exec, so every variant reported at least what this script's own process had ever held (the
    data set it generates to count the valid students, Beda's whole state it reads after each variant): a
    14 MiB child of a 414 MiB parent reports 414 MiB. ``VmHWM`` belongs to the process's address space, which
    exec replaces.
    """
    return _status_mib("VmHWM")


def cpu_seconds() -> float:
    """CPU time of this process so far, every thread, user and system: steadier than wall time on a shared machine."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# Sandboxes, in their own process


def _serve_sandboxes(students: int, seed: int, ready: Any, stop: Event, schools: int = 6,
                     latency_ms: int = 0) -> None:
    """Entry point of the sandbox process: serve the seeded data set until told to stop.

    ``latency_ms`` is slept by the sandboxes' fault middleware before each request to the platform, SS 12000
    and Beda is handled (never on ``/_sandbox`` paths), so concurrent requests each wait it, as on a network.
    """
    from skolflow.sandbox import dataset as ds
    from skolflow.sandbox import systems
    from skolflow.sandbox.faults import FaultConfig

    data = ds.generate(students=students, schools=schools, mistakes=mistakes_for(students), seed=seed)
    sandboxes = systems.start(data, {name: FaultConfig(latency_ms=latency_ms if name in DELAYED else 0)
                                     for name in systems.SYSTEMS})
    try:
        ready.put({"environment": sandboxes.environment(), "urls": sandboxes.urls})
        stop.wait()
    finally:
        sandboxes.stop()


@contextlib.contextmanager
def sandbox_process(students: int, seed: int, schools: int = 6, latency_ms: int = 0) -> Iterator[dict[str, Any]]:
    """Start the sandboxes of a platform of ``students`` in a spawned process; stop it on leaving."""
    context = mp.get_context("spawn")
    ready = context.Queue()
    stop = context.Event()
    process = context.Process(target=_serve_sandboxes, args=(students, seed, ready, stop, schools, latency_ms),
                              name=f"sandboxes-{students}", daemon=True)
    process.start()
    try:
        started = first_answer(process, ready, f"{students} students", SANDBOX_START_TIMEOUT)
        yield started
    finally:
        stop.set()
        process.join(timeout=15)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
        ready.close()


def valid_students(students: int, seed: int) -> tuple[int, list[str]]:
    """How many students Beda must hold afterwards (the same seeded data set, minus off-scale grades), and
    the valid students the nightly variant changes: every 50th with two grades or more, whose first grade it
    removes (the student stays valid, and Beda's list changes)."""
    from skolflow.connectors.beda.grade_scales import check_grade
    from skolflow.sandbox import dataset as ds

    data = ds.generate(students=students, mistakes=mistakes_for(students), seed=seed)
    valid = [student_id for student_id, record in data.records.items()
             if not any(check_grade(g.school_form, g.code, g.value, g.assessment) for g in record.grades)]
    changeable = [student_id for student_id in valid if len(data.records[student_id].grades) > 1]
    return len(valid), changeable[::round(1 / NIGHTLY_SHARE)]


def beda_holds(beda_url: str) -> tuple[int, str, int]:
    """How many students Beda holds, a digest of everything it holds (to compare variants to the student),
    and how many tokens it issued."""
    import hashlib

    import httpx

    state = httpx.get(f"{beda_url}/_sandbox/state", timeout=120).json()
    held = {key: student["meriter"] for key, student in state["students"].items() if student["meriter"] is not None}
    digest = hashlib.sha256(json.dumps(held, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return len(held), digest[:12], state.get("tokens_issued", 0)


def change_students(platform_url: str, student_ids: list[str]) -> None:
    """A night's work at the schools: remove the first grade of each of these students, dated now."""
    import httpx

    with httpx.Client(base_url=platform_url, timeout=60) as client:
        for student_id in student_ids:
            client.post(f"/_sandbox/students/{student_id}/grades",
                        json={"action": "remove", "index": 0}).raise_for_status()


def reset_beda(beda_url: str) -> None:
    import httpx

    httpx.delete(f"{beda_url}/_sandbox/state", timeout=60).raise_for_status()


# The variants, each run in its own subprocess


async def skolflow_variant(args: argparse.Namespace) -> dict[str, Any]:
    """One run of the real flow; the Prefect server is started (and migrated) and warmed before the clock starts."""
    from prefect.client.orchestration import get_client

    from skolflow.flows.betyg_to_beda import PIPELINE, betyg_to_beda
    from skolflow.ledger import Ledger
    from skolflow.sandbox.dataset import HUVUDMAN_ORGNR

    async with get_client() as client:
        await client.api_healthcheck()
        api = str(client.api_url)
    warm_up = await warm_up_prefect()
    before, cpu_before = rss_mib(), cpu_seconds()
    started = time.perf_counter()
    state = await betyg_to_beda(anslutningspart=HUVUDMAN_ORGNR, start=dt.datetime.fromisoformat(args.start),
                                end=dt.datetime.fromisoformat(args.end), batch_size=args.batch_size,
                                concurrency=args.concurrency, return_state=True)
    seconds = time.perf_counter() - started
    summary = Ledger.shared(os.environ["SKOLFLOW_DATABASE_URL"]).runs(PIPELINE, limit=1)[0].summary
    return {"seconds": seconds, "students": summary["students"], "rss_start_mib": before,
            "peak_rss_mib": peak_rss_mib(), "cpu_seconds": cpu_seconds() - cpu_before,
            "accepted": summary["accepted"], "unchanged": summary["unchanged"],
            "rejected": summary["rejected"], "failed": summary["failed"], "state": state.type.value,
            "message": state.message or "", "prefect_api": api, "prefect_warm_up_seconds": warm_up}


@contextlib.asynccontextmanager
async def reporting_clients(http: Any) -> AsyncIterator[tuple[Any, Any, dict[str, Any], frozenset[str]]]:
    """A variant without the flow: its SS 12000 and Beda clients, the school units and the ones the party reports."""
    from skolflow.connectors.beda.client import BedaClient
    from skolflow.connectors.ss12000.client import SS12000Client
    from skolflow.sandbox.dataset import HUVUDMAN_ORGNR
    from skolflow.tasks.identities import read_units, same_orgnr

    env = os.environ
    async with (SS12000Client(env["SKOLFLOW_SS12000_URL"], env["SKOLFLOW_SS12000_TOKEN"], http) as ss,
                BedaClient(env["SKOLFLOW_BEDA_URL"], env["SKOLFLOW_BEDA_CLIENT_ID"],
                           env["SKOLFLOW_BEDA_CLIENT_SECRET"], HUVUDMAN_ORGNR, http) as beda):
        units = await read_units(ss)
        yield ss, beda, units, frozenset(u.code for u in units.values()
                                         if u.code and same_orgnr(u.huvudman_orgnr, HUVUDMAN_ORGNR))


async def floor_variant(args: argparse.Namespace) -> dict[str, Any]:
    """The least any program can do for the same result: what the flow does minus the flow's own duties.

    The two exports streamed to disk and read once with lxml, without the XSD; the same SS 12000 lookups
    (one per batch), the same decisions (``prepare_batch`` with nothing sent before, so every valid student
    is sent) and the same Beda batches, ``--concurrency`` in flight, over one pooled client per system and
    one Beda token. No ledger, no Prefect, no per-student validation: what is left is I/O and the merits.
    """
    from collections import defaultdict

    from skolflow.connectors.beda.models import MAX_BATCH
    from skolflow.connectors.betyg import codec as betyg_codec
    from skolflow.connectors.betyg.client import BetygClient
    from skolflow.connectors.betygsdokument import codec as dokument_codec
    from skolflow.connectors.betygsdokument.client import BetygsdokumentClient
    from skolflow.connectors.betygsdokument.models import GradeDocument
    from skolflow.connectors.http import HttpSettings
    from skolflow.tasks.batching import batched
    from skolflow.tasks.beda_report import Selection, StudentInput, What, prepare_batch
    from skolflow.tasks.grades import platform_id
    from skolflow.tasks.identities import resolve_persons

    env = os.environ
    http = HttpSettings()
    start, end = dt.datetime.fromisoformat(args.start), dt.datetime.fromisoformat(args.end)
    before, cpu_before = rss_mib(), cpu_seconds()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="skolflow-floor-") as tmp:
        async with BetygClient(env["SKOLFLOW_BETYG_URL"], env["SKOLFLOW_BETYG_TOKEN"], http) as platform:
            grades_path = await platform.fetch(start, end, dest=Path(tmp) / "betyg.xml")
        async with BetygsdokumentClient(env["SKOLFLOW_BETYG_URL"], env["SKOLFLOW_BETYG_TOKEN"], http) as platform:
            documents_path = await platform.fetch(start, end, dest=Path(tmp) / "betygsdokument.xml")
        documents: dict[str, list[GradeDocument]] = defaultdict(list)
        for document in dokument_codec.iter_documents(documents_path):
            documents[platform_id(document.elev)].append(document)

        def students() -> Iterator[StudentInput]:
            for element in betyg_codec.elev_elements(grades_path):
                grades = betyg_codec.student_from_element(element)
                yield StudentInput(grades.student_id, grades=grades,
                                   documents=documents.pop(platform_id(grades.student_id), []))
            for docs in documents.values():
                yield StudentInput(docs[0].elev, documents=docs)

        counts = {"students": 0, "accepted": 0, "rejected": 0, "skipped": 0}
        async with reporting_clients(http) as (ss, beda, units, authorised):

            async def one(batch: list[StudentInput]) -> None:
                persons = await resolve_persons(ss, (platform_id(s.student_id) for s in batch))
                prepared = prepare_batch(batch, persons, units, authorised, {}, Selection(), What.BOTH)
                results = await beda.send_batch([p.merits for p in prepared.to_send])
                counts["students"] += len(batch)
                counts["skipped"] += prepared.skipped
                counts["rejected"] += len(prepared.rejected) + sum(1 for r in results if not r.accepted)
                counts["accepted"] += sum(1 for r in results if r.accepted)

            running: set[asyncio.Task[None]] = set()
            for batch in batched(students(), min(args.batch_size, MAX_BATCH)):
                running.add(asyncio.create_task(one(batch)))
                if len(running) >= args.concurrency:
                    done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()
            for task in (await asyncio.wait(running))[0] if running else ():
                task.result()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_start_mib": before, "peak_rss_mib": peak_rss_mib(),
            "cpu_seconds": cpu_seconds() - cpu_before, "unchanged": 0,
            "failed": 0, "state": "COMPLETED", "message": "", **counts}


async def plain_variant(args: argparse.Namespace) -> dict[str, Any]:
    """The flow's own task functions (``Task.fn``) in a plain asyncio loop, on a fresh ledger: the flow minus Prefect.

    Same fetch, same reading, same batches and concurrency, same ledger writes; no task runs, no Prefect
    logs (``disable_run_logger``), no artifacts. The flow's wall time minus this one is Prefect's share.
    """
    from collections import defaultdict

    from prefect.logging import disable_run_logger

    from skolflow.blocks import BedaCredentials, BetygApiCredentials, SS12000Credentials
    from skolflow.concurrency import all_of
    from skolflow.flows import betyg_to_beda as flow
    from skolflow.gcpolicy import fewer_collections
    from skolflow.ledger import Ledger
    from skolflow.sandbox.dataset import HUVUDMAN_ORGNR
    from skolflow.settings import Settings
    from skolflow.tasks.batching import Whole, batched
    from skolflow.tasks.beda_report import Selection, What
    from skolflow.tasks.betyg_documents import read_documents
    from skolflow.tasks.grades import platform_id

    start, end = dt.datetime.fromisoformat(args.start), dt.datetime.fromisoformat(args.end)
    before, cpu_before = rss_mib(), cpu_seconds()
    started = time.perf_counter()
    # What the flow does inside its clock too: its settings, its credentials, the ledger (created on first use).
    settings = Settings.from_env()
    systems = flow.Systems(BetygApiCredentials.resolve(), SS12000Credentials.resolve(), BedaCredentials.resolve(),
                           settings.http())
    ledger = Ledger.shared(settings.database_url)
    run_id = ledger.start_run(flow.PIPELINE, HUVUDMAN_ORGNR, dry_run=False, parameters={})
    totals = flow.BatchReport()
    with disable_run_logger(), fewer_collections(), \
            tempfile.TemporaryDirectory(prefix="skolflow-plain-") as workdir:
        (grades_path, documents_path), units = await all_of(
            flow.fetch_exports.fn(systems, start, end, What.BOTH, Path(workdir)), flow.school_units_task.fn(systems))
        documents: dict[str, list[Any]] = defaultdict(list)
        for document in read_documents(documents_path) if documents_path else ():
            documents[platform_id(document.elev)].append(document)
        waiting = flow._read_waiting(ledger, HUVUDMAN_ORGNR)
        if grades_path is not None:
            flow.check_document(grades_path)
        running: set[asyncio.Task[flow.BatchReport]] = set()
        async with flow.open_clients(systems, HUVUDMAN_ORGNR, False) as clients:
            for batch in batched(flow._Students(grades_path, documents, waiting), args.batch_size):
                running.add(asyncio.create_task(flow.report_batch.fn(
                    Whole(batch), systems, Whole(units), HUVUDMAN_ORGNR, Selection(), What.BOTH, run_id,
                    settings.database_url, False, (start, end), clients=Whole(clients))))
                if len(running) >= args.concurrency:
                    done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        totals.add(task.result())
            for task in (await asyncio.wait(running))[0] if running else ():
                totals.add(task.result())
    ledger.finish_run(run_id, "completed", {})
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_start_mib": before, "peak_rss_mib": peak_rss_mib(),
            "cpu_seconds": cpu_seconds() - cpu_before, "state": "COMPLETED",
            "message": "", "students": totals.outcomes, "accepted": totals.accepted, "unchanged": totals.unchanged,
            "rejected": totals.rejected, "failed": totals.failed}


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
    from skolflow.connectors.betyg import codec as betyg_codec
    from skolflow.connectors.betyg.client import format_window
    from skolflow.connectors.betygsdokument import codec as dokument_codec
    from skolflow.connectors.betygsdokument.models import GradeDocument
    from skolflow.connectors.http import HttpSettings, RemoteError, build_client, request
    from skolflow.tasks.beda_report import Selection, StudentInput, What, prepare_batch
    from skolflow.tasks.grades import platform_id
    from skolflow.tasks.identities import ResolvedPerson

    env = os.environ
    http = HttpSettings()
    before, cpu_before = rss_mib(), cpu_seconds()
    started = time.perf_counter()
    start_text, end_text = format_window(dt.datetime.fromisoformat(args.start), dt.datetime.fromisoformat(args.end))
    query = urlencode({"from": start_text, "tom": end_text}, safe=":")
    async with build_client(env["SKOLFLOW_BETYG_URL"], http, system="betyg",
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
    async with reporting_clients(http) as (ss, beda, units, authorised):

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
    return {"seconds": seconds, "rss_start_mib": before, "peak_rss_mib": peak_rss_mib(),
            "cpu_seconds": cpu_seconds() - cpu_before, "unchanged": 0,
            "failed": 0, "state": "COMPLETED", "message": "", **counts}


def run_variant(variant: str, args: argparse.Namespace, environment: dict[str, str], *, students: int,
                database_url: str = "", data_dir: Path | None = None,
                window: tuple[str, str] | None = None) -> dict[str, Any]:
    """Run one variant in a subprocess of its own session; kill that session on timeout or when done."""
    start, end = window or (args.start, args.end)
    command = [sys.executable, str(Path(__file__).resolve()), "--variant", variant, "--students", str(students),
               "--batch-size", str(args.batch_size), "--concurrency", str(args.concurrency),
               "--start", start, "--end", end, "--prefect", args.prefect]
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
    plain_variants = {"naive": naive_variant, "floor": floor_variant, "plain": plain_variant}
    if args.variant in plain_variants:
        result = asyncio.run(plain_variants[args.variant](args))
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

    # A table pasted from a pipe stays whole; with --json, stdout holds the JSON alone.
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() and not args.json else 200)
    end = platform_now()
    args.start, args.end = (end - WINDOW).isoformat(), end.isoformat()
    wanted = set(args.variants)
    rows: list[dict[str, Any]] = []
    database = ("PostgreSQL" if os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL", "").startswith("postgresql")
                else "SQLite")
    prefect_mode = "prefect_test_harness()" if args.prefect == "harness" else (
        f"server at {os.environ['PREFECT_API_URL']}" if os.environ.get("PREFECT_API_URL")
        else f"embedded (ephemeral) server on {database}")
    console.print(f"Betyg → Beda benchmark: {os.cpu_count()} CPUs, latency {args.latency_ms} ms, batch size "
                  f"{args.batch_size}, concurrency {args.concurrency}, Prefect {prefect_mode}; "
                  f"window {args.start} – {args.end}")

    with tempfile.TemporaryDirectory(prefix="skolflow-bench-") as tmp:
        sizes = [args.students] + ([args.naive_students] if args.naive_students != args.students else [])
        for size in sizes:
            expected, nightly = valid_students(size, SEED)
            console.print(f"[bold]{size:,} students[/]: starting the sandboxes ({expected:,} valid students)…")
            with sandbox_process(size, SEED, latency_ms=args.latency_ms) as sandboxes:
                beda, platform = sandboxes["urls"]["beda"], sandboxes["urls"]["platform"]
                environment = sandboxes["environment"]
                # The order matters: the nightly variant changes the data set, so it runs last but naive.
                runs = [label for label in VARIANTS if label in wanted and (
                    (size == args.students and label != "naive")
                    or (size == args.naive_students and label in ("floor", "skolflow", "naive")))]
                floor_digest = ""
                for label in runs:
                    window = None
                    if label in ("floor", "plain", "skolflow", "naive"):
                        reset_beda(beda)
                    if label == "skolflow-nightly":
                        change_students(platform, nightly)
                        night = platform_now() + dt.timedelta(minutes=1)
                        window = (args.end, night.isoformat())
                    kind = label.split("-")[0]  # skolflow-again and -nightly: the flow, on the first run's ledger
                    ledger = f"sqlite:///{Path(tmp) / f'ledger-{size}-{kind}.db'}"
                    console.print(f"  running {label}… (load {os.getloadavg()[0]:.2f})")
                    result = run_variant(kind, args, environment, students=size, database_url=ledger,
                                         data_dir=Path(tmp) / "data", window=window)
                    held, digest, tokens = beda_holds(beda)
                    floor_digest = floor_digest or (digest if label == "floor" else "")
                    rows.append({"variant": label, "platform_students": size, "latency_ms": args.latency_ms,
                                 **result, "beda_holds": held, "expected": expected, "beda_digest": digest,
                                 "same_as_floor": None if label == "skolflow-nightly" or not floor_digest
                                 else digest == floor_digest,
                                 "beda_tokens": tokens, "load_1min": round(os.getloadavg()[0], 2),
                                 "changed": len(nightly) if label == "skolflow-nightly" else None})
    ratios = derived(rows)
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "latency_ms": args.latency_ms, "batch_size": args.batch_size,
                          "concurrency": args.concurrency, "prefect": prefect_mode, "rows": rows,
                          "ratios": ratios}, indent=1))
        return
    table = Table(title=f"Betyg → Beda on this machine ({os.cpu_count()} CPUs, {args.latency_ms} ms latency)")
    for column in ("variant", "students", "seconds", "CPU s", "students/s", "RSS at start MiB", "peak RSS MiB",
                   "accepted/unchanged/rejected", "Beda holds (expected)", "= floor", "load"):
        table.add_column(column, justify="left" if column == "variant" else "right", no_wrap=True)
    for row in rows:
        rate = row["students"] / row["seconds"] if row["seconds"] else 0.0
        same = {None: "–", True: "yes", False: "NO"}[row["same_as_floor"]]
        table.add_row(row["variant"], f"{row['students']:,}", f"{row['seconds']:.1f}", f"{row['cpu_seconds']:.1f}",
                      f"{rate:,.0f}",
                      f"{row['rss_start_mib']:.0f}", f"{row['peak_rss_mib']:.0f}",
                      f"{row['accepted']:,}/{row['unchanged']:,}/{row['rejected']:,}",
                      f"{row['beda_holds']:,} ({row['expected']:,})", same, f"{row['load_1min']:.2f}")
    console.print(table)
    for name, value in ratios.items():
        console.print(f"{name}: {value}")
    for row in rows:
        if "prefect_warm_up_seconds" in row:
            console.print(f"{row['variant']} at {row['platform_students']:,}: Prefect's first flow run in the process "
                          f"(before the clock) took {row['prefect_warm_up_seconds']:.2f} s")
    for row in rows:
        if row["state"] != "COMPLETED" or row["failed"]:
            console.print(f"[red]{row['variant']}: {row['state']} {row['message']}[/]")
    console.print("Peak RSS is the variant process's own: the sandboxes and Prefect's server run in other processes.")


def derived(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The ratios the goals are stated in, from rows measured side by side at the same platform size."""
    seconds = {(row["variant"], row["platform_students"]): row["seconds"] for row in rows}
    cpu = {(row["variant"], row["platform_students"]): row["cpu_seconds"] for row in rows}
    ratios: dict[str, float] = {}
    for (variant, size), flow_seconds in seconds.items():
        if variant != "skolflow":
            continue
        if (floor := seconds.get(("floor", size))) is not None:
            ratios[f"skolflow / floor at {size:,}"] = round(flow_seconds / floor, 2)
        if (plain := seconds.get(("plain", size))) is not None:
            ratios[f"Prefect's share at {size:,} (1 - plain / skolflow)"] = round(1 - plain / flow_seconds, 3)
            ratios[f"Prefect's share of CPU at {size:,}"] = round(1 - cpu[("plain", size)] / cpu[(variant, size)], 3)
        if (naive := seconds.get(("naive", size))) is not None:
            ratios[f"naive / skolflow at {size:,}"] = round(naive / flow_seconds, 1)
        if (nightly := seconds.get(("skolflow-nightly", size))) is not None:
            ratios[f"nightly / first run at {size:,}"] = round(nightly / flow_seconds, 3)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=10_000, help="platform size for skolflow (default 10,000)")
    parser.add_argument("--naive-students", type=int, default=2_000,
                        help="platform size for the naive variant (default 2,000; its own N, nothing extrapolated)")
    parser.add_argument("--concurrency", type=int, default=4, help="batches in flight in the flow (default 4)")
    parser.add_argument("--batch-size", type=int, default=1000, help="students per batch in the flow (default 1,000)")
    parser.add_argument("--prefect", choices=("ephemeral", "harness"), default="ephemeral",
                        help="Prefect's embedded server (default, faster to start) or prefect_test_harness()")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per variant (default 1800)")
    parser.add_argument("--latency-ms", type=int, default=0,
                        help="added by the sandboxes to every platform, SS 12000 and Beda request (default 0)")
    parser.add_argument("--variants", type=lambda text: [v for v in text.split(",") if v], default=list(VARIANTS),
                        help=f"comma-separated, of {','.join(VARIANTS)} (default all)")
    parser.add_argument("--json", action="store_true", help="print the rows and ratios as JSON instead of a table")
    parser.add_argument("--variant", choices=("skolflow", "naive", "floor", "plain"), help=argparse.SUPPRESS)
    parser.add_argument("--start", default="", help=argparse.SUPPRESS)
    parser.add_argument("--end", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        variant_main(args)
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
