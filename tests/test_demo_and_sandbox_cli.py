"""`skolflow demo` and `skolflow sandbox` as a user runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from skolflow.flows.demo import run_demo


@pytest.mark.usefixtures("prefect_harness")
def test_demo_reports_sent_rejected_and_lost(tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    result = run_demo(students=40, console=console)
    first, second = result["first"], result["second"]
    assert first["students"] == 40 and first["lost"] == 0
    assert first["rejected"] == 2  # the data set's planted mistakes, with Beda's reasons
    assert first["waiting"] == 1 and first["waiting_because"] == {"identity join": 1}  # not yet in SS 12000
    assert first["accepted"] == 37
    # The second run's window holds the two changed students; the waiting one comes from the ledger.
    assert second["accepted"] == 3 and second["waiting"] == 0 and second["lost"] == 0
    assert result["waiting_reached"] == 1 and result["beda_students"] == 38
    timetable = result["skola24_to_haldor"]
    statuses = [school["status"] for school in timetable.values()]
    assert statuses.count("not published") == 1 and statuses.count("synced") == len(statuses) - 1
    assert all(s["positions"] > 0 for s in timetable.values() if s["status"] == "synced")
    udir = result["udir"]
    assert udir["registration"]["registered"] > 0 and udir["registration"]["rejected_before_sending"] == 2
    assert udir["registration"]["rejected_by_udir"] > 0  # candidates registered at another school
    assert udir["registration"]["failed"] == udir["registration"]["unfinished"] == 0
    assert udir["results"]["results"] > 0 and udir["results"]["status_EA"] >= 1
    dnp = result["dnp"]
    assert [step["status"] for step in dnp.values()] == ["completed"] * 4
    assert all(step["accepted"] > 0 and step["failed"] == 0 for step in dnp.values())
    output = console.export_text()
    assert "PameldtAnnenSkole" in output or "annen skole" in output
    assert not re.search(r"(?<!\d)\d{11}(?!\d)", output)  # only masked fødselsnummer
    assert "BETYG_OGILTIGT" in output and "Where to see the runs" in output
    assert "ELEV_OKAND" in output and "1 waiting student from the first run reached Beda on the second" in output
    assert "är schemat publicerat i Skola24?" in output
    assert not re.search(r"\d{8}-\d{4}", output)  # only masked personnummer
    assert not os.environ.get("SKOLFLOW_BEDA_URL")  # the demo leaves the environment as it found it


def test_sandbox_command_serves_every_system_until_stopped(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "skolflow.flows.cli", "sandbox", "--students", "20", "--fault-5xx", "0.5",
         "--system", "beda"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200", "SKOLFLOW_DATA_DIR": str(tmp_path)})
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("Ctrl-C" in line for line in lines):
            line = process.stdout.readline() if process.stdout else ""
            if line:
                lines.append(line)
        text = "".join(lines)
        systems_pattern = (r"^\s+(platform|ss12000|beda|skola24|haldor|udir|dnp|dnp-opendata|webhook)\s+"
                           r"(http://127\.0\.0\.1:\d+)")
        urls = dict(re.findall(systems_pattern, text, re.M))
        assert set(urls) == {"platform", "ss12000", "beda", "skola24", "haldor", "udir", "dnp",
                             "dnp-opendata", "webhook"}, text
        assert f"export SKOLFLOW_WEBHOOK_URL={urls['webhook']}/notices" in text
        assert "[[school]]" in text and 'match = "email"' in text
        assert "export SKOLFLOW_BEDA_CLIENT_ID=" in text
        faults = httpx.get(f"{urls['beda']}/_sandbox/faults").json()["config"]
        assert faults["server_error"] == 0.5
        assert httpx.get(f"{urls['ss12000']}/_sandbox/faults").json()["config"]["server_error"] == 0.0
    finally:
        process.terminate()
        process.wait(timeout=20)
