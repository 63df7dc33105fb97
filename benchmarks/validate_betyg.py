"""Peak memory and wall time of ``skolflow validate betyg`` on Betyg API documents of growing size.

A script, not a test: performance is never asserted in tests. Run it with

    uv run python benchmarks/validate_betyg.py [--sizes 10,50,100] [--mistakes 0.01] [--dir DIR]

It writes one Betyg API document per size (MB) with the sandbox's own encoder, then runs the real command,
``skolflow validate betyg FILE`` and ``… --json``, each in a fresh subprocess whose peak RSS is read from
``os.wait4`` (that child's own ``ru_maxrss``, so a larger earlier run cannot mask a smaller later one). A
tiny document gives the command's floor: what its imports cost before it reads anything. Flat memory
means the peak stays near that floor however large the document grows.

The documents are the sandbox data set's students (``skolflow.sandbox.dataset.generate``, seed 2026)
repeated under fresh GUIDs until the size is reached, so they are what the platform would send; a share of
them (``--mistakes``) carry an off-scale grade, so the command has problems to keep as it goes.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import io
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SEED = 2026
BASE_STUDENTS = 500  # the data set that is repeated: large enough to hold every school form's grades
WINDOW = (dt.datetime(2025, 6, 1, 8, 0), dt.datetime(2025, 6, 15, 8, 0))
FLOOR_STUDENTS = 10
MIB = 1024 * 1024


def base_students(mistakes: float) -> list[Any]:
    """The sandbox's students as the Betyg API sends them, ``mistakes`` of them with an off-scale grade."""
    from skolflow.connectors.betyg.sandbox import select_students
    from skolflow.sandbox.dataset import generate

    data = generate(students=BASE_STUDENTS, schools=6, mistakes=round(BASE_STUDENTS * mistakes), seed=SEED)
    return list(select_students(data, dt.datetime(1900, 1, 1), dt.datetime(2100, 1, 1)))


def repeated(students: list[Any], count: int) -> Iterator[Any]:
    """``count`` students cycling through ``students``, each under a GUID of its own (stable across runs)."""
    for n, student in zip(range(count), itertools.cycle(students), strict=False):
        guid = uuid.uuid5(uuid.NAMESPACE_URL, f"skolflow-benchmark/{n}")
        yield dataclasses.replace(student, student_id="{" + str(guid) + "}")


def students_for(students: list[Any], megabytes: float) -> int:
    """How many students (cycling through ``students``) make a document of about ``megabytes`` MB."""
    from skolflow.connectors.betyg.codec import encode

    sample = io.BytesIO()
    encode(sample, students, *WINDOW)
    return max(1, round(megabytes * 1_000_000 * len(students) / len(sample.getvalue())))


def run_command(path: Path, as_json: bool, output: Path) -> dict[str, Any]:
    """``skolflow validate betyg`` on ``path`` in a child process: its wall time, peak RSS and problems."""
    command = [str(Path(sys.executable).with_name("skolflow")), "validate", "betyg", str(path)]
    if as_json:
        command.append("--json")
    started = time.perf_counter()
    with output.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    text = output.read_text(encoding="utf-8")
    if as_json:
        problems = len(json.loads(text)) if text.strip() else -1
    else:
        problems = sum(1 for line in text.splitlines() if "\t" in line)
    return {"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024, "problems": problems,
            "exit": process.returncode, "stderr": stderr.strip()[-300:]}


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from skolflow.connectors.betyg.codec import encode

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50,100", help="document sizes in MB, comma-separated")
    parser.add_argument("--mistakes", type=float, default=0.01, help="share of students with an off-scale grade")
    parser.add_argument("--dir", type=Path, help="write the documents here and keep them (default: a temporary "
                                                 "directory, each document deleted once measured)")
    args = parser.parse_args()
    sizes = [float(size) for size in args.sizes.split(",")]

    console = Console(width=120)
    students = base_students(args.mistakes)
    table = Table(title=f"skolflow validate betyg on this machine ({os.cpu_count()} CPUs)")
    columns = ("document", "MiB on disk", "students", "output", "seconds", "peak RSS MiB", "problems listed", "exit")
    for column in columns:
        table.add_column(column, justify="left" if column in ("document", "output") else "right")
    with tempfile.TemporaryDirectory(prefix="skolflow-validate-bench-") as scratch:
        where = args.dir or Path(scratch)
        where.mkdir(parents=True, exist_ok=True)
        cases = [("floor", FLOOR_STUDENTS), *((f"{size:g} MB", students_for(students, size)) for size in sizes)]
        for label, count in cases:
            path = where / f"betyg-{label.replace(' ', '')}.xml"
            encode(path, repeated(students, count), *WINDOW)
            on_disk = f"{path.stat().st_size / MIB:.1f}"
            for as_json in (False, True):
                result = run_command(path, as_json, where / "output.txt")
                if result["exit"] not in (0, 1):
                    console.print(f"[red]{label} {'--json' if as_json else 'plain'} failed:[/] {result['stderr']}")
                table.add_row(label, on_disk, f"{count:,}", "--json" if as_json else "plain",
                              f"{result['seconds']:.1f}", f"{result['peak_rss_mib']:.0f}", f"{result['problems']:,}",
                              str(result["exit"]))
            if args.dir is None:
                path.unlink()
    console.print(table)


if __name__ == "__main__":
    main()
