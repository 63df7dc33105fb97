"""After real runs against a real server, no full personnummer or fødselsnummer is anywhere Prefect keeps data.

Looked for in every text and JSON column of every table of the Prefect database (flow and task runs with their
parameters, names and state messages, logs, artifacts, events, block documents, …), in every file under the
skolflow processes' and the server's PREFECT_HOME and the results directory, and in what the commands printed.
Two nets: the exact numbers the sandboxes' data sets hold, in any form (12 or 10 digits, with or without a dash),
and anything shaped like an identity number that python-stdnum accepts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from skolflow.identity import InvalidIdentity, is_valid_swedish_identity, mask, validate_norwegian_fodselsnummer

from .conftest import RunsOnServer

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

# Ids and hashes are long hex runs that may hold 10-12 digits in a row by chance: taken out before looking.
HEX_RUNS = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32,}")
# 12 digits (YYYYMMDDNNNN), 10 (YYMMDDNNNN), with a dash or plus, or 11 (Norwegian); never part of a longer
# number or a decimal fraction.
NUMBER_SHAPED = re.compile(r"(?<![\d.])(?:\d{8}[-+]?\d{4}|\d{6}[-+]?\d{4}|\d{11})(?!\d)")


def _norwegian(digits: str) -> bool:
    try:
        validate_norwegian_fodselsnummer(digits)
    except InvalidIdentity:
        return False
    return True


def identity_hits(text: str, known: frozenset[str]) -> Iterator[str]:
    """Every full identity number in ``text``: one of ``known`` in any form, or any valid one by its shape."""
    known_forms = known | {number[2:] for number in known if len(number) == 12}
    for match in NUMBER_SHAPED.finditer(HEX_RUNS.sub(" ", text)):
        digits = re.sub(r"\D", "", match.group())
        if (digits in known_forms or (len(digits) in (10, 12) and is_valid_swedish_identity(match.group()))
                or (len(digits) == 11 and _norwegian(digits))):
            yield digits


def scan_database(url: str, known: frozenset[str]) -> tuple[list[str], Counter[str]]:
    """Hits as ``table.column: masked number``, and how many values of each table were looked at."""
    hits: list[str] = []
    looked_at: Counter[str] = Counter()
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
            "AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb') "
            "ORDER BY 1, 2").fetchall()
        for table, column in columns:
            query = sql.SQL("SELECT {col}::text FROM {table} WHERE {col} IS NOT NULL").format(
                col=sql.Identifier(column), table=sql.Identifier(table))
            for (value,) in conn.execute(query):
                looked_at[table] += 1
                hits += [f"{table}.{column}: {mask(hit)}" for hit in identity_hits(value, known)]
    return hits, looked_at


def scan_files(roots: Iterable[Path], known: frozenset[str]) -> tuple[list[str], int]:
    hits: list[str] = []
    files = 0
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            files += 1
            text = path.read_bytes().decode("utf-8", errors="replace")
            hits += [f"{path}: {mask(hit)}" for hit in identity_hits(text, known)]
    return hits, files


def test_the_scan_finds_identity_numbers_in_every_form_and_nothing_else() -> None:
    known = frozenset({"201509161236", "14030850069"})
    text = '{"elev": "20150916-1236"} 1509161236 "14030850069" 198112189876 d-nummer 42067510067'
    # The last two are in no data set: found by their shape and check digits.
    assert list(identity_hits(text, known)) == ["201509161236", "1509161236", "14030850069", "198112189876",
                                                "42067510067"]
    innocent = ("212000-0142 skolenhet 12345678 20150916-**** 140308***** 201509161239 (bad check digit) "
                "took 0.201509161236 s, run 3f1a2b4c-0d9e-4f8a-9b7c-201509161236, hash 201509161236" + "ab" * 16)
    assert list(identity_hits(innocent, known)) == []


def test_no_full_identity_number_in_the_prefect_database(runs_on_server: RunsOnServer) -> None:
    hits, looked_at = scan_database(runs_on_server.server.database_url, runs_on_server.identity_numbers)
    assert not hits, "full identity numbers in Prefect's database:\n" + "\n".join(sorted(set(hits)))
    # The scan saw what the runs left behind, so a clean result means something.
    assert all(looked_at[table] > 0 for table in ("flow", "flow_run", "task_run", "log", "artifact",
                                                    "artifact_collection")), looked_at


def test_no_full_identity_number_in_prefects_files_or_persisted_results(runs_on_server: RunsOnServer) -> None:
    roots = [runs_on_server.client_home, runs_on_server.results_dir, runs_on_server.server.home]
    hits, files = scan_files(roots, runs_on_server.identity_numbers)
    assert not hits, "full identity numbers in files Prefect keeps:\n" + "\n".join(sorted(set(hits)))
    assert files > 0 and runs_on_server.server.log.stat().st_size > 0


def test_no_full_identity_number_in_what_the_commands_printed(runs_on_server: RunsOnServer) -> None:
    hits = [f"{command}: {hit}" for command, output in runs_on_server.outputs.items()
            for hit in map(mask, identity_hits(output, runs_on_server.identity_numbers))]
    assert not hits, "full identity numbers on the terminal:\n" + "\n".join(hits)
    assert len(runs_on_server.outputs) == 4 and all(runs_on_server.outputs.values())
