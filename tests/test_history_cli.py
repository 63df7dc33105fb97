"""`skolflow history beda`: runs, one run's students and one student's history, identity numbers masked."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from click.testing import Result
from rich.console import Console
from stdnum import luhn
from typer.testing import CliRunner

from skolflow.connectors.beda.models import Fel, StudentResult
from skolflow.flows import cli
from skolflow.ledger import Ledger, Outcome, RecordOutcome

PIPELINE = "betyg_to_beda"
PARTY = "212000-0142"


def civic_number(date: str, serial: str) -> str:
    return date + serial + luhn.calc_check_digit(date[2:] + serial)


ACCEPTED = civic_number("20080412", "238")
REJECTED = civic_number("20080830", "114")
CHECKED = civic_number("20121103", "552")  # rejected by skolflow's own checks: never reached Beda
BEDA_SAYS = "betyget 'VG' är inte tillåtet för skolform GY (MATMAT01a); tillåtna: -/A/B/C/D/E/F"

runner = CliRunner()


def forms_of(civic: str) -> list[str]:
    """Every way the full number could be printed."""
    return [civic, f"{civic[:8]}-{civic[8:]}", civic[2:], f"{civic[2:8]}-{civic[8:]}"]


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Two runs in a SQLite ledger, recorded as the flow records them; returns their ids (older, newer)."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("SKOLFLOW_DATABASE_URL", url)
    monkeypatch.setattr(cli, "console", Console(width=400))  # wide enough that no cell is wrapped
    ledger = Ledger(url)
    fel = Fel(kod="BETYG_OGILTIGT", falt="kursbetyg[0].betyg", meddelande=BEDA_SAYS)

    def outcome(run_id: str, civic: str, result: StudentResult) -> RecordOutcome:
        return RecordOutcome(
            run_id=run_id, pipeline=PIPELINE, scope=PARTY, record_key=civic, source_key="{d7b3374b-…}",
            unit="12345678", content_hash="h", outcome=Outcome.ACCEPTED if result.accepted else Outcome.REJECTED,
            errors=[f.model_dump() for f in result.fel], response_body=result.model_dump_json(by_alias=True))

    first = ledger.start_run(PIPELINE, PARTY, parameters={"what": "both"}, dry_run=False)
    ledger.record([
        outcome(first, ACCEPTED, StudentResult(personnummer=ACCEPTED, status="GODKAND")),
        outcome(first, REJECTED, StudentResult(personnummer=REJECTED, status="AVVISAD", fel=[fel])),
    ])
    ledger.finish_run(first, "completed", {"accepted": 1, "unchanged": 0, "rejected": 1, "failed": 0})
    second = ledger.start_run(PIPELINE, PARTY, parameters={"what": "both"}, dry_run=False)
    ledger.record([outcome(second, REJECTED, StudentResult(personnummer=REJECTED, status="GODKAND"))])
    ledger.record([RecordOutcome(run_id=second, pipeline=PIPELINE, scope=PARTY, record_key=CHECKED,
                                 source_key="{96ab211c-…}", outcome=Outcome.REJECTED,
                                 errors=[{"kod": "SKOLENHET_OKAND", "falt": "kursbetyg[0].skola",
                                          "meddelande": "skolan {abc} finns inte som skolenhet i SS 12000-källan"}])])
    ledger.finish_run(second, "completed", {"accepted": 1, "unchanged": 0, "rejected": 1, "failed": 0})
    ledger.engine.dispose()
    return first, second


def show(*options: str) -> str:
    result = runner.invoke(cli.app, ["history", "beda", *options])
    assert result.exit_code == 0, result.output
    return result.output


def assert_masked(out: str) -> None:
    for civic in (ACCEPTED, REJECTED, CHECKED):
        assert all(form not in out for form in forms_of(civic)), civic


def test_runs_are_listed_with_their_summary(history: tuple[str, str]) -> None:
    first, second = history

    out = show()

    rows = [line for line in out.splitlines() if first in line or second in line]
    assert len(rows) == 2 and second in rows[0]  # newest first
    assert all(PARTY in row and "completed" in row for row in rows)
    assert [cell.strip() for cell in rows[1].split("│")[6:10]] == ["1", "0", "1", "0"]


def test_a_runs_students_are_shown_masked_with_bedas_message(history: tuple[str, str]) -> None:
    first, second = history

    out = show("--run", first)

    assert f"{ACCEPTED[:8]}-****" in out and f"{REJECTED[:8]}-****" in out
    assert f"BETYG_OGILTIGT kursbetyg[0].betyg: {BEDA_SAYS}" in out
    assert "accepted" in out and "rejected" in out
    assert second[:8] not in out


def test_one_students_history_spans_runs_and_no_one_else(history: tuple[str, str]) -> None:
    first, second = history

    out = show("--personnummer", f"{REJECTED[2:8]}-{REJECTED[8:]}")

    assert f"Beda history {REJECTED[:8]}-****" in out
    rows = [line for line in out.splitlines() if f"{REJECTED[:8]}-****" in line and "│" in line]
    assert len(rows) == 2
    assert [second[:8] in rows[0], first[:8] in rows[1]] == [True, True]
    assert "rejected" in rows[1] and BEDA_SAYS in rows[1]
    assert f"{ACCEPTED[:8]}-****" not in out


def test_a_student_rejected_before_sending_is_shown_masked_with_skolflows_reason(history: tuple[str, str]) -> None:
    out = show("--personnummer", CHECKED)

    assert_masked(out)
    assert f"{CHECKED[:8]}-****" in out and "SKOLENHET_OKAND kursbetyg[0].skola" in out


@pytest.mark.parametrize("options", [
    pytest.param([], id="runs"),
    pytest.param(["--run", "FIRST"], id="run"),
    pytest.param(["--personnummer", ACCEPTED], id="student"),
])
def test_no_full_personnummer_is_ever_printed(history: tuple[str, str], options: list[str]) -> None:
    first, _ = history

    assert_masked(show(*[first if o == "FIRST" else o for o in options]))


UNKNOWN_STUDENT = "66d22876-72fd-4202-aa96-fb1a14a0f9e7"  # SS 12000 does not hold them: no personnummer known
KNOWN_STUDENT = "254b0c4e-010c-4759-882c-9cbc43435cc5"  # held, but one grade's school unit is unknown
WAITING = civic_number("20150916", "123")


@pytest.fixture
def pending(history: tuple[str, str]) -> str:
    """Two students waiting at PARTY, as the flow keeps them; one for 3 days 4 hours. Returns the ledger URL."""
    from sqlmodel import Session, select

    from skolflow.ledger.models import Waiting

    url = os.environ["SKOLFLOW_DATABASE_URL"]
    ledger = Ledger(url)
    first, second = history

    def row(key: str, civic: str, kod: str, falt: str, meddelande: str) -> Waiting:
        return Waiting(pipeline=PIPELINE, scope=PARTY, record_key=key, personnummer=civic, unit="12345678",
                       payload={"betyg": "<betyg/>"}, errors=[{"kod": kod, "falt": falt, "meddelande": meddelande}])

    ledger.wait(PIPELINE, PARTY, first, [
        row(UNKNOWN_STUDENT, "", "ELEV_OKAND", "elev", f"eleven {{{UNKNOWN_STUDENT}}} finns inte i SS 12000-källan"),
        row(KNOWN_STUDENT, WAITING, "SKOLENHET_OKAND", "kursbetyg[0].skola",
            "skolan {abc} finns inte som skolenhet i SS 12000-källan")])
    ledger.wait(PIPELINE, PARTY, second, [row(UNKNOWN_STUDENT, "", "ELEV_OKAND", "elev", "fortfarande okänd")])
    with Session(ledger.engine) as session:
        known = session.exec(select(Waiting).where(Waiting.record_key == KNOWN_STUDENT)).one()
        known.first_seen = dt.datetime.now(dt.UTC) - dt.timedelta(days=3, hours=4, minutes=1)
        session.add(known)
        session.commit()
    ledger.engine.dispose()
    return url


def dismiss(*options: str) -> Result:
    return runner.invoke(cli.app, ["pending", "dismiss", "beda", *options])


def test_pending_lists_each_waiting_student_with_why_and_how_long(pending: str) -> None:
    out = show("--pending")

    rows = {key: line for line in out.splitlines() for key in (UNKNOWN_STUDENT, f"{WAITING[:8]}-****") if key in line}
    assert set(rows) == {UNKNOWN_STUDENT, f"{WAITING[:8]}-****"}  # masked when the join found a personnummer
    assert "3 d 4 h" in rows[f"{WAITING[:8]}-****"] and "SKOLENHET_OKAND kursbetyg[0].skola" in rows[
        f"{WAITING[:8]}-****"]
    unknown = [cell.strip() for cell in rows[UNKNOWN_STUDENT].split("│")]
    assert unknown[2:4] == [PARTY, "12345678"] and unknown[4] == "ELEV_OKAND elev: fortfarande okänd"
    assert unknown[6:8] == ["0 min", "2"]  # waited, tries: every run that met them counts
    assert "students waiting (2)" in out and "pending dismiss beda" in out
    assert all(form not in out for form in forms_of(WAITING))


def test_a_dismissed_student_leaves_the_pending_list_and_is_shown_with_who_and_why(pending: str) -> None:
    result = dismiss(f"{WAITING[2:8]}-{WAITING[8:]}", "--reason", "flyttat utomlands", "--by", "admin")

    assert result.exit_code == 0, result.output
    assert f"dismissed {WAITING[:8]}-**** ({KNOWN_STUDENT}) at {PARTY}" in result.output
    assert UNKNOWN_STUDENT in show("--pending") and KNOWN_STUDENT not in show("--pending")
    dismissed = show("--dismissed")
    [line] = [line for line in dismissed.splitlines() if f"{WAITING[:8]}-****" in line]
    assert "admin" in line and "flyttat utomlands" in line and "3 d 4 h" in line
    by_platform_id = dismiss("{" + UNKNOWN_STUDENT.upper() + "}", "--reason", "dubblett", "--anslutningspart",
                             PARTY.replace("-", ""))
    assert by_platform_id.exit_code == 0, by_platform_id.output
    assert "students waiting (0)" in show("--pending")
    for out in (result.output, dismissed, by_platform_id.output):
        assert all(form not in out for form in forms_of(WAITING))


@pytest.mark.parametrize("student, message", [
    pytest.param(ACCEPTED, "is waiting", id="not waiting"),
    pytest.param("{00000000-0000-4000-8000-000000000001}", "is waiting", id="unknown platform id"),
    pytest.param("nobody", "neither a personnummer nor a platform id", id="neither"),
])
def test_dismissing_a_student_who_is_not_waiting_says_so(pending: str, student: str, message: str) -> None:
    result = dismiss(student, "--reason", "x")

    said = " ".join(result.output.replace("│", " ").split())  # typer wraps its error box
    assert result.exit_code == 2 and message in said
    assert all(form not in result.output for form in forms_of(ACCEPTED))


def test_the_runs_show_how_many_students_waited(history: tuple[str, str]) -> None:
    ledger = Ledger(os.environ["SKOLFLOW_DATABASE_URL"])
    third = ledger.start_run(PIPELINE, PARTY, parameters={"what": "both"}, dry_run=False)
    ledger.finish_run(third, "completed", {"accepted": 5, "unchanged": 0, "rejected": 0, "failed": 0, "waiting": 3})
    ledger.engine.dispose()

    [row] = [line for line in show().splitlines() if third in line]

    assert [cell.strip() for cell in row.split("│")][6:11] == ["5", "0", "0", "0", "3"]
