"""The school's intended exam registrations, read from a CSV or JSON file and checked before sending.

The file format is skolflow's own (README § Udir eksamen): one row per candidate and fagkode, the
candidate group and its responsible teachers on the row. Every problem is found at once and tied to
the candidate (masked) and fagkode it concerns; a row with a problem is left out, the others go on.
The checks are the service's own rules (:mod:`skolflow.connectors.udir.rules`), so a file that passes
here is not refused by Udir for the same reasons.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skolflow.connectors.udir import rules
from skolflow.connectors.udir.models import (
    Kandidat,
    Kandidatgruppe,
    Kandidatgruppeansvarlig,
    Opplaeringsniva,
    Pamelding,
)
from skolflow.identity import InvalidIdentity, mask, mask_text, validate_norwegian_fodselsnummer

COLUMNS = ("fodselsnummer", "fornavn", "etternavn", "malform", "kandidattype", "fagkode", "variant",
           "kandidatgruppe", "ansvarlig_fodselsnummer", "ansvarlig_fornavn", "ansvarlig_etternavn",
           "ansvarlig_epost")
REQUIRED = ("fodselsnummer", "fornavn", "etternavn", "malform", "kandidattype", "fagkode", "kandidatgruppe")
TEACHER_SEPARATOR = "|"  # several responsible teachers in one CSV cell, position by position
MALFORM = {"bokmal": "Bokmal", "bokmål": "Bokmal", "nb": "Bokmal", "nynorsk": "Nynorsk", "nn": "Nynorsk"}
KANDIDATTYPE = {"elev": "Elev", "privatist": "Privatist"}

RULE_FILE = "fil"
RULE_MISSING = "mangler-felt"
RULE_MALFORM = "malform"
RULE_KANDIDATTYPE = "kandidattype"
RULE_DUPLICATE = "dobbel-rad"
RULE_TEACHER = "ansvarlig"
NOR_PAIR = rules.NOR_PAIR


@dataclass(frozen=True)
class Teacher:
    fodselsnr: str
    fornavn: str
    etternavn: str
    epost: str | None = None


@dataclass(frozen=True)
class CandidateRow:
    """One candidate in one fagkode, as the school intends it; ``row`` is the line in the file."""

    row: int
    fodselsnr: str
    fornavn: str
    etternavn: str
    malform: str
    kandidattype: str
    fagkode: str
    variant: str | None
    kandidatgruppe: str
    ansvarlige: tuple[Teacher, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return self.fodselsnr, self.fagkode

    @property
    def shown(self) -> str:
        return mask(self.fodselsnr)


@dataclass(frozen=True)
class CandidateProblem:
    """One broken rule. ``fodselsnr`` (full) is for keying the ledger; it is never part of :meth:`as_dict`."""

    candidate: str  # masked fødselsnummer, "" for a problem of the whole file or run
    code: str  # fagkode, "" where none applies
    rule: str
    message: str
    row: int = 0
    fodselsnr: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"candidate": self.candidate, "code": self.code, "rule": self.rule, "message": self.message}


@dataclass
class Checked:
    """What may be sent, and everything that may not, with the reason."""

    rows: list[CandidateRow] = field(default_factory=list)
    problems: list[CandidateProblem] = field(default_factory=list)

    @property
    def blocking(self) -> list[CandidateProblem]:
        """Problems of the whole registration (period code, e-mail for errors): nothing can be sent."""
        return [p for p in self.problems if not p.candidate and p.rule in (rules.RULE_PERIOD, rules.RULE_EMAIL)]


class CandidateFileError(ValueError):
    """The file cannot be read at all (not CSV or JSON, no header, unknown columns)."""


def _clean(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line or item number, record) from a JSON list of objects or a CSV with a header line."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CandidateFileError(f"{path.name}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise CandidateFileError(f"{path.name}: a JSON file must be a list of candidate objects")
        return [(index, item) for index, item in enumerate(items, start=1)]
    try:
        dialect = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;\t")
    except csv.Error:
        raise CandidateFileError(f"{path.name}: not a CSV file with a header line ({', '.join(REQUIRED)}, …)") \
            from None
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    header = [(name or "").strip().lower() for name in reader.fieldnames or []]
    unknown = sorted(set(header) - set(COLUMNS))
    if unknown:
        raise CandidateFileError(f"{path.name}: unknown column(s) {', '.join(unknown)}; "
                                 f"the columns are {', '.join(COLUMNS)}")
    reader.fieldnames = header
    return [(reader.line_num, row) for row in reader]


def _teachers(record: dict[str, Any]) -> list[dict[str, str]]:
    if isinstance(record.get("ansvarlige"), list):
        return [{k: _clean(v) for k, v in t.items()} for t in record["ansvarlige"] if isinstance(t, dict)]
    columns = [_clean(record.get(f"ansvarlig_{name}")).split(TEACHER_SEPARATOR)
               for name in ("fodselsnummer", "fornavn", "etternavn", "epost")]
    if not columns[0] or columns[0] == [""]:
        return []
    width = max(len(c) for c in columns)
    padded = [c + [""] * (width - len(c)) for c in columns]
    return [{"fodselsnummer": a.strip(), "fornavn": b.strip(), "etternavn": c.strip(), "epost": d.strip()}
            for a, b, c, d in zip(*padded, strict=True)]


def _row(number: int, record: dict[str, Any], problems: list[CandidateProblem]) -> CandidateRow | None:
    values = {name: _clean(record.get(name)) for name in COLUMNS}
    raw = values["fodselsnummer"]
    fagkode = values["fagkode"].upper()
    where = f"rad {number}"

    def problem(rule: str, message: str) -> None:
        problems.append(CandidateProblem(mask(raw) if raw else "", fagkode, rule, f"{where}: {message}", number, raw))

    missing = [name for name in REQUIRED if not values[name]]
    if missing:
        problem(RULE_MISSING, f"mangler {', '.join(missing)}")
        return None
    try:
        fodselsnr = validate_norwegian_fodselsnummer(raw)
    except InvalidIdentity:
        problem(rules.RULE_FODSELSNUMMER, f"fødselsnummeret {mask(raw)} er ikke gyldig (fødselsnummer eller "
                                          "D-nummer)")
        return None
    malform = MALFORM.get(values["malform"].casefold())
    kandidattype = KANDIDATTYPE.get(values["kandidattype"].casefold())
    if malform is None:
        problem(RULE_MALFORM, f"målform '{values['malform']}' er ikke Bokmal eller Nynorsk")
    if kandidattype is None:
        problem(RULE_KANDIDATTYPE, f"kandidattype '{values['kandidattype']}' er ikke Elev eller Privatist")
    if malform is None or kandidattype is None:
        return None
    teachers = []
    for t in _teachers(record):
        try:
            teacher_nr = validate_norwegian_fodselsnummer(t.get("fodselsnummer", ""))
        except InvalidIdentity:
            problem(RULE_TEACHER, f"ansvarlig lærer {mask(t.get('fodselsnummer'))} har ugyldig fødselsnummer og "
                                  "er utelatt fra kandidatgruppen")
            continue
        if not (t.get("fornavn") and t.get("etternavn")):
            problem(RULE_TEACHER, f"ansvarlig lærer {mask(teacher_nr)} mangler navn og er utelatt")
            continue
        email = t.get("epost") or None
        if email and not rules.EMAIL.fullmatch(email):
            problem(RULE_TEACHER, f"ansvarlig lærer {mask(teacher_nr)} har ugyldig e-post; e-posten er utelatt")
            email = None
        teachers.append(Teacher(teacher_nr, t["fornavn"], t["etternavn"], email))
    return CandidateRow(number, fodselsnr, values["fornavn"], values["etternavn"], malform, kandidattype, fagkode,
                        values["variant"].upper() or None, values["kandidatgruppe"], tuple(teachers))


def read_candidates(path: Path) -> Checked:
    """Every row the file holds, and each row's format problem; a duplicate row is reported once."""
    checked = Checked()
    seen: dict[tuple[str, str], int] = {}
    for number, record in _records(path):
        row = _row(number, record, checked.problems)
        if row is None:
            continue
        if row.key in seen:
            checked.problems.append(CandidateProblem(row.shown, row.fagkode, RULE_DUPLICATE,
                                                     f"rad {number}: kandidaten er allerede oppført i "
                                                     f"{row.fagkode} på rad {seen[row.key]}", number, row.fodselsnr))
            continue
        seen[row.key] = number
        checked.rows.append(row)
    return checked


def _from_rule(problem: rules.Problem, row: CandidateRow | None) -> CandidateProblem:
    return CandidateProblem(row.shown if row else "", problem.fagkode or (row.fagkode if row else ""), problem.rule,
                            (f"rad {row.row}: " if row else "") + mask_text(problem.message),
                            row.row if row else 0, row.fodselsnr if row else "")


def groups_of(rows: Iterable[CandidateRow]) -> list[Kandidatgruppe]:
    """One Kandidatgruppe per (fagkode, variant, group name); teachers are the union over its rows."""
    members: dict[tuple[str, str | None, str], list[CandidateRow]] = defaultdict(list)
    for row in rows:
        members[(row.fagkode, row.variant, row.kandidatgruppe)].append(row)
    groups = []
    for (fagkode, variant, name), group_rows in members.items():
        teachers = {t.fodselsnr: t for r in group_rows for t in r.ansvarlige}
        groups.append(Kandidatgruppe(
            navn=name, fagkode=fagkode, variant=variant,
            kandidatgruppeansvarlige=[Kandidatgruppeansvarlig(fodselsnr=t.fodselsnr, fornavn=t.fornavn,
                                                              etternavn=t.etternavn, epostadresse=t.epost)
                                      for t in teachers.values()],
            kandidater=[Kandidat(fodselsnr=r.fodselsnr, fornavn=r.fornavn, etternavn=r.etternavn, malform=r.malform,
                                 kandidattype=r.kandidattype) for r in group_rows]))
    return groups


@dataclass(frozen=True)
class School:
    """Who registers: the school and the PAS user the registration is made in the name of."""

    orgnr: str
    skolenavn: str
    brukernavn_pas: str
    periodekode: str
    opplaeringsniva: Opplaeringsniva | None = None
    epost_ved_feil: str | None = None


def pamelding(school: School, rows: Iterable[CandidateRow]) -> Pamelding:
    return Pamelding(brukernavn_pas=school.brukernavn_pas, eksamens_periode_kode=school.periodekode,
                     orgnr=school.orgnr, skolenavn=school.skolenavn, kandidatgrupper=groups_of(rows),
                     opplaeringsniva=school.opplaeringsniva, epostadresse_ved_feil=school.epost_ved_feil)


def check(read: Checked, school: School, fagkoder: Collection[str] | None) -> Checked:
    """Udir's rules over the rows that were read: request rules, then the special subject rules.

    ``fagkoder``: those of the active eksamensplan available to the school (None: not checked).
    """
    result = Checked(problems=list(read.problems))
    by_key = {row.key: row for row in read.rows}
    refused: set[tuple[str, str]] = set()
    candidate_problems = rules.request_problems(pamelding(school, read.rows), fagkoder)
    bad_groups = {(p.fagkode, (p.gruppe or "").strip().casefold())
                  for p in candidate_problems if p.rule == rules.RULE_GROUP_NAME}
    for problem in candidate_problems:
        if problem.rule == rules.RULE_FODSELSNUMMER:  # already refused while reading
            continue
        if problem.rule == rules.RULE_PERIOD and not school.periodekode:  # validating without a period
            continue
        if problem.rule in (rules.RULE_PERIOD, rules.RULE_EMAIL):
            result.problems.append(_from_rule(problem, None))
        elif problem.rule == rules.RULE_FAGKODE:
            for row in (r for r in read.rows if r.fagkode == problem.fagkode):
                result.problems.append(_from_rule(problem, row))
                refused.add(row.key)
    for row in read.rows:
        if (row.fagkode, row.kandidatgruppe.casefold()) in bad_groups:
            message = (f"Kandidatgruppenavnet '{row.kandidatgruppe}' er brukt for flere grupper i {row.fagkode} "
                       "(ulik variant); gi gruppene ulike navn.")
            result.problems.append(_from_rule(rules.Problem(rules.RULE_GROUP_NAME, message), row))
            refused.add(row.key)
    remaining = [row for row in read.rows if row.key not in refused]
    for problem in rules.subject_rule_breaks(rules.Registration(r.fodselsnr, r.fagkode, r.variant)
                                             for r in remaining):
        row = by_key[(problem.fodselsnr or "", problem.fagkode or "")]
        result.problems.append(_from_rule(problem, row))
        refused.add(row.key)
    result.rows = [row for row in read.rows if row.key not in refused]
    result.problems.sort(key=lambda p: (p.row, p.code, p.rule))
    return result


def to_send(rows: Iterable[CandidateRow], held: Collection[tuple[str, str]]) -> list[CandidateRow]:
    """Rows Udir does not hold yet; a NOR0214/NOR0215 row goes with its pair (Udir wants both in one registration)."""
    rows = list(rows)
    missing = {row.key for row in rows if row.key not in held}
    pair_needed = {fnr for fnr, fagkode in missing if fagkode in NOR_PAIR}
    return [row for row in rows if row.key in missing or (row.fodselsnr in pair_needed and row.fagkode in NOR_PAIR)]


def by_candidate(rows: Iterable[CandidateRow], size: int) -> Iterable[list[CandidateRow]]:
    """Registrations of at most ``size`` candidates, each candidate's subjects in one (the subject rules span them)."""
    mine: dict[str, list[CandidateRow]] = defaultdict(list)
    for row in rows:
        mine[row.fodselsnr].append(row)
    batch: list[CandidateRow] = []
    count = 0
    for candidate_rows in mine.values():
        batch += candidate_rows
        count += 1
        if count >= size:
            yield batch
            batch, count = [], 0
    if batch:
        yield batch


def write_csv(path: Path, records: Iterable[dict[str, str]]) -> Path:
    """A candidates file in skolflow's CSV format (the sandbox's sample; a template for schools)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows({name: record.get(name, "") for name in COLUMNS} for record in records)
    return path
