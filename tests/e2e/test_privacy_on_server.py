"""After real runs against a real server, nothing personal is anywhere Prefect keeps data.

Looked for in every text and JSON column of every table of the Prefect database (flow and task runs with their
parameters, names and state messages, logs, artifacts, events, block documents, …), in every file under the
skolflow processes' and the server's PREFECT_HOME and the results directory, and in what the commands printed,
after the demo, the production set-up's runs and the runs with files that are not UTF-8 (one unreadable).
The nets: the exact numbers the sandboxes' data sets hold, in any form (12 or 10 digits, with or without a dash),
and anything shaped like an identity number that python-stdnum accepts; every given and family name the data
sets hold, as a word of its own; every e-mail address they hold, and any address in their domains that is not
masked (``a***@skola.se`` is how skolflow shows one); every postal address they hold (SS 12000's ``addresses``):
a street of theirs with a number after it, or one of their postal codes with its locality.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from skolflow.identity import (
    InvalidIdentity,
    is_valid_swedish_identity,
    mask,
    mask_email,
    validate_norwegian_fodselsnummer,
)
from skolflow.sandbox.dataset import Address

from .conftest import RunsOnServer

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

# Ids and hashes are long hex runs that may hold 10-12 digits in a row by chance: taken out before looking.
HEX_RUNS = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32,}")
# 12 digits (YYYYMMDDNNNN), 10 (YYMMDDNNNN), with a dash or plus, or 11 (Norwegian); never part of a longer
# number or a decimal fraction.
NUMBER_SHAPED = re.compile(r"(?<![\d.])(?:\d{8}[-+]?\d{4}|\d{6}[-+]?\d{4}|\d{11})(?!\d)")
# A masked address (a***@skola.se) has no letter next to its @, so it is not shaped like one.
EMAIL_SHAPED = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


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


def name_hits(text: str, names: frozenset[str]) -> Iterator[str]:
    """Each of ``names`` found as a word of its own, case and all (``Berg``, not ``Bergsskolan`` or ``berg``)."""
    pattern = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    yield from (match.group() for match in re.finditer(rf"(?<!\w)(?:{pattern})(?!\w)", text))


def email_hits(text: str, known: frozenset[str]) -> Iterator[str]:
    """One of ``known`` in any case, or any unmasked address in their domains (an EPPN is an id: left out)."""
    lowered = {address.lower() for address in known}
    domains = {address.rsplit("@", 1)[1] for address in lowered}
    for match in EMAIL_SHAPED.finditer(HEX_RUNS.sub(" ", text)):
        address = match.group().lower()
        if address in lowered or address.rsplit("@", 1)[1] in domains:
            yield address


def address_hits(text: str, known: frozenset[Address]) -> Iterator[str]:
    """A street of ``known`` followed by a house number (any number: one address of theirs in another form is still
    theirs), or one of their postal codes (with or without its space) followed by its locality."""
    streets = {address.street.rsplit(" ", 1)[0] for address in known}
    places = {(address.postal_code.replace(" ", ""), address.locality) for address in known}
    street = "|".join(re.escape(name) for name in sorted(streets, key=len, reverse=True))
    yield from (match.group() for match in re.finditer(rf"(?<!\w)(?:{street})\s+\d+(?!\d)", text, re.IGNORECASE))
    for match in re.finditer(r"(?<!\d)(\d{3}) ?(\d{2})[\s,]+(\w+)", text):
        if (match.group(1) + match.group(2), match.group(3)) in places:
            yield match.group()


@dataclass(frozen=True)
class Net:
    """What the scan looks for: the data sets' identity numbers, names, e-mail and postal addresses."""

    numbers: frozenset[str]
    names: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    addresses: frozenset[Address] = frozenset()

    @classmethod
    def of(cls, runs: RunsOnServer) -> Net:
        return cls(runs.identity_numbers, runs.names, runs.emails, runs.addresses)

    def hits(self, text: str) -> Iterator[str]:
        """Each hit, shown so that the report itself leaks nothing real (the names are synthetic)."""
        yield from (f"number {mask(hit)}" for hit in identity_hits(text, self.numbers))
        yield from (f"name {hit}" for hit in name_hits(text, self.names) if self.names)
        yield from (f"e-mail {mask_email(hit)}" for hit in email_hits(text, self.emails) if self.emails)
        yield from (f"address {hit}" for hit in address_hits(text, self.addresses) if self.addresses)


def scan_database(url: str, net: Net) -> tuple[list[str], Counter[str]]:
    """Hits as ``table.column: what``, and how many values of each table were looked at."""
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
                hits += [f"{table}.{column}: {hit}" for hit in net.hits(value)]
    return hits, looked_at


def scan_files(roots: Iterable[Path], net: Net) -> tuple[list[str], int]:
    hits: list[str] = []
    files = 0
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            files += 1
            text = path.read_bytes().decode("utf-8", errors="replace")
            hits += [f"{path}: {hit}" for hit in net.hits(text)]
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


def test_the_scan_finds_names_and_addresses_but_not_masked_ones_or_words_containing_a_name() -> None:
    net = Net(frozenset(), frozenset({"Berg", "Ødegård"}),
              frozenset({"alva.berg0@12345678.sandvik.se", "0709160@elev.sandvik.se"}))
    text = ('{"larare": "Alva Berg", "epost": "ALVA.BERG0@12345678.sandvik.se"} Ødegård, 150916123@elev.sandvik.se '
            "someone@example.org")
    # The third address is in no data set, but in one of their domains.
    assert list(net.hits(text)) == ["name Berg", "name Ødegård", "e-mail a***@12345678.sandvik.se",
                                    "e-mail 1***@elev.sandvik.se"]
    innocent = ("Bergsskolan berg Ødegårds a***@12345678.sandvik.se 0***@elev.sandvik.se "
                "3f1a2b4c-0d9e-4f8a-9b7c-201509161236@elev.sandvik.se")
    assert list(net.hits(innocent)) == []


def test_the_scan_finds_postal_addresses_in_any_case_and_form_but_not_street_names_alone() -> None:
    net = Net(frozenset(), addresses=frozenset({Address("Storgatan 12", "123 45", "Sandvik"),
                                                Address("Lärkstigen 3", "124 10", "Norrby", None)}))
    text = '{"adress": "STORGATAN 12, 123 45 Sandvik"} Lärkstigen  7 … 12410 Norrby'
    # "Lärkstigen 7" is in no data set, but on one of their streets.
    assert list(net.hits(text)) == ["address STORGATAN 12", "address Lärkstigen  7", "address 123 45 Sandvik",
                                    "address 12410 Norrby"]
    innocent = "Storgatan, Storgatans skola 12, Storgatan12, 123 45 Norrby, postort Sandvik, 1123 45 Sandvik"
    assert list(net.hits(innocent)) == []


def test_nothing_personal_in_the_prefect_database(runs_on_server: RunsOnServer) -> None:
    hits, looked_at = scan_database(runs_on_server.server.database_url, Net.of(runs_on_server))
    assert not hits, "personal data in Prefect's database:\n" + "\n".join(sorted(set(hits)))
    # The scan saw what the runs left behind, so a clean result means something.
    assert all(looked_at[table] > 0 for table in ("flow", "flow_run", "task_run", "log", "artifact",
                                                    "artifact_collection")), looked_at


def test_nothing_personal_in_prefects_files_or_persisted_results(runs_on_server: RunsOnServer) -> None:
    roots = [runs_on_server.client_home, runs_on_server.results_dir, runs_on_server.server.home]
    hits, files = scan_files(roots, Net.of(runs_on_server))
    assert not hits, "personal data in files Prefect keeps:\n" + "\n".join(sorted(set(hits)))
    assert files > 0 and runs_on_server.server.log.stat().st_size > 0


def test_nothing_personal_in_what_the_commands_printed(runs_on_server: RunsOnServer) -> None:
    net = Net.of(runs_on_server)
    hits = [f"{command}: {hit}" for command, output in runs_on_server.outputs.items() for hit in net.hits(output)]
    assert not hits, "personal data on the terminal:\n" + "\n".join(hits)
    assert len(runs_on_server.outputs) == 6 and all(runs_on_server.outputs.values())
    unreadable = next(output for command, output in runs_on_server.outputs.items() if "ulesbar" in command)
    assert "kandidater-ulesbar.csv: not readable as UTF-8 (at byte" in unreadable
