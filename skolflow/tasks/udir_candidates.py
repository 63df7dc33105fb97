"""The school's intended exam registrations, read from a CSV or JSON file and checked before sending.

The file format is skolflow's own (README § Udir eksamen): one row per candidate and fagkode, the
candidate group and its responsible teachers on the row. Every problem is found at once and tied to
the candidate (masked) and fagkode it concerns; a row with a problem is left out, the others go on.
The checks are the service's own rules (:mod:`skolflow.connectors.udir.rules`), so a file that passes
here is not refused by Udir for the same reasons.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from skolflow.connectors.udir import rules
from skolflow.connectors.udir.models import (
    EksamensplanResponse,
    Kandidat,
    Kandidatgruppe,
    Kandidatgruppeansvarlig,
    Opplaeringsniva,
    Pamelding,
)
from skolflow.errors import SafeError
from skolflow.identity import InvalidIdentity, mask, mask_text, validate_norwegian_fodselsnummer

COLUMNS = ("fodselsnummer", "fornavn", "etternavn", "malform", "kandidattype", "fagkode", "variant",
           "kandidatgruppe", "ansvarlig_fodselsnummer", "ansvarlig_fornavn", "ansvarlig_etternavn",
           "ansvarlig_epost")
REQUIRED = ("fodselsnummer", "fornavn", "etternavn", "malform", "kandidattype", "fagkode", "kandidatgruppe")
TEACHER_SEPARATOR = "|"  # several responsible teachers in one CSV cell, position by position
MALFORM = {"bokmal": "Bokmal", "bokmål": "Bokmal", "nb": "Bokmal", "nynorsk": "Nynorsk", "nn": "Nynorsk"}
KANDIDATTYPE = {"elev": "Elev", "privatist": "Privatist"}
C1_BYTES = re.compile(rb"[\x80-\x9f]")  # where Windows-1252 and ISO-8859-1 differ
SINGLE_BYTE_NAMES = {"cp1252": "Windows-1252", "latin-1": "ISO-8859-1"}

RULE_FILE = "fil"
RULE_MISSING = "mangler-felt"
RULE_MALFORM = "malform"
RULE_KANDIDATTYPE = "kandidattype"
RULE_DUPLICATE = "dobbel-rad"
RULE_TEACHER = "ansvarlig"
NOR_PAIR = rules.NOR_PAIR
BLOCKING = frozenset({rules.RULE_PERIOD, rules.RULE_EMAIL, rules.RULE_LEVEL})


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
        """Problems of the whole registration (period, e-mail for errors, its level): nothing can be sent."""
        return [p for p in self.problems if not p.candidate and p.rule in BLOCKING]


class CandidateFileError(ValueError, SafeError):
    """The file cannot be read at all (not text, not CSV or JSON, no header, unknown columns).

    The message names the file, the place and the rule, never the file's content: it reaches Prefect.
    """


def _clean(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _first_control(text: str) -> int | None:
    """Where the first control character other than a tab or line end is: no text file holds one."""
    return next((i for i, char in enumerate(text) if unicodedata.category(char) == "Cc" and char not in "\t\n\r"),
                None)


def read_text(path: Path) -> tuple[str, str]:
    """The file's text and encoding: UTF-8 (with or without BOM), Windows-1252 or ISO-8859-1.

    Norwegian school systems export all four. UTF-8 is tried strictly first: an æ, ø or å in either
    single-byte encoding is never valid UTF-8. Windows-1252 and ISO-8859-1 differ only in 0x80–0x9F,
    where Windows-1252 has letters and punctuation (€, ‚, “, …) and ISO-8859-1 control codes no text
    holds: a file with such bytes is Windows-1252, one without is ISO-8859-1 (and reads the same as
    either). A file with control characters (UTF-16, a spreadsheet, a binary) is none of them, and is
    refused with where each reading failed, never with what the file holds.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_fails_at = exc.start
    else:
        control = _first_control(text)
        if control is None:
            return text, "UTF-8"
        utf8_fails_at = len(data) - len(text[control:].encode("utf-8"))
    encoding = "cp1252" if C1_BYTES.search(data) else "latin-1"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:  # one of the five bytes Windows-1252 leaves undefined
        fails_at: int | None = exc.start
    else:
        fails_at = _first_control(text)
        if fails_at is None:
            return text, SINGLE_BYTE_NAMES[encoding]
    raise CandidateFileError(f"{path.name}: not readable as UTF-8 (at byte {utf8_fails_at}), Windows-1252 or "
                             f"ISO-8859-1 (at byte {fails_at}); save it as UTF-8 text")


def _unknown_column(position: int, name: str) -> str:
    """An unknown header cell by its position; its text only when it is a misspelt column (else it may be data)."""
    close = difflib.get_close_matches(name, COLUMNS, n=1, cutoff=0.8)
    return f"column {position} ('{name}': {close[0]}?)" if close else f"column {position}"


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line or item number, record) from a JSON list of objects or a CSV with a header line."""
    text, _ = read_text(path)
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
    unknown = [_unknown_column(position, name) for position, name in enumerate(header, start=1) if name not in COLUMNS]
    if unknown:
        raise CandidateFileError(f"{path.name}: unknown column(s) in the header line: {', '.join(unknown)}; "
                                 f"the first line names the columns, of {', '.join(COLUMNS)}")
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
    # The value is not quoted: in a row whose columns slipped it is a name.
    if malform is None:
        problem(RULE_MALFORM, "målform er ikke Bokmal eller Nynorsk")
    if kandidattype is None:
        problem(RULE_KANDIDATTYPE, "kandidattype er ikke Elev eller Privatist")
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
    """Every row the file holds, and each row's format problem; a duplicate row is reported once.

    A duplicate repeats a candidate, fagkode and variant, so dropping it loses nothing. Rows that differ
    in the variant are both kept: which one the school means is not for reading to guess (:func:`check`).
    """
    checked = Checked()
    seen: dict[tuple[str, str, str | None], int] = {}
    for number, record in _records(path):
        row = _row(number, record, checked.problems)
        if row is None:
            continue
        key = (*row.key, row.variant)
        if key in seen:
            checked.problems.append(CandidateProblem(row.shown, row.fagkode, RULE_DUPLICATE,
                                                     f"rad {number}: kandidaten er allerede oppført i "
                                                     f"{row.fagkode} på rad {seen[key]}", number, row.fodselsnr))
            continue
        seen[key] = number
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


def check(read: Checked, school: School, plan: EksamensplanResponse | None) -> Checked:
    """Udir's rules over the rows that were read: request rules, then the special subject rules.

    ``plan``: the period's eksamensplan available to the school, every level of it (None: fagkoder not
    checked). What is left to send holds each candidate and fagkode once: a candidate listed in a
    fagkode in two variants is sent in neither, since only the school knows which one it means (seed
    001 says so of REA3015).
    """
    result = Checked(problems=list(read.problems))
    by_key: dict[tuple[str, str], list[CandidateRow]] = defaultdict(list)
    for row in read.rows:
        by_key[row.key].append(row)
    refused: set[tuple[str, str]] = set()
    level, inferred = school.opplaeringsniva, ""
    if plan is not None and level is None:
        level, inferred = _level_of_file(read.rows, plan, result.problems)
    candidate_problems = rules.request_problems(pamelding(school, read.rows), plan, level)
    bad_groups = {(p.fagkode, (p.gruppe or "").strip().casefold())
                  for p in candidate_problems if p.rule == rules.RULE_GROUP_NAME}
    for problem in candidate_problems:
        if problem.rule == rules.RULE_FODSELSNUMMER:  # already refused while reading
            continue
        if problem.rule == rules.RULE_PERIOD and not school.periodekode:  # validating without a period
            continue
        if problem.rule in (rules.RULE_PERIOD, rules.RULE_EMAIL):
            result.problems.append(_from_rule(problem, None))
        elif problem.rule in (rules.RULE_FAGKODE, rules.RULE_LEVEL):
            # One problem per group: a fagkode in two groups is refused once per row all the same.
            if problem.rule == rules.RULE_LEVEL and inferred:
                problem = replace(problem, message=f"{problem.message} {inferred}")
            for row in (r for r in read.rows if r.fagkode == problem.fagkode and r.key not in refused):
                result.problems.append(_from_rule(problem, row))
            refused |= {key for key in by_key if key[1] == problem.fagkode}
    for row in read.rows:
        if (row.fagkode, row.kandidatgruppe.casefold()) in bad_groups:
            message = (f"Kandidatgruppenavnet '{row.kandidatgruppe}' er brukt for flere grupper i {row.fagkode} "
                       "(ulik variant); gi gruppene ulike navn.")
            result.problems.append(_from_rule(rules.Problem(rules.RULE_GROUP_NAME, message), row))
            refused.add(row.key)
    remaining = [row for row in read.rows if row.key not in refused]
    for problem in rules.subject_rule_breaks(rules.Registration(r.fodselsnr, r.fagkode, r.variant)
                                             for r in remaining):
        key = (problem.fodselsnr or "", problem.fagkode or "")
        result.problems += [_from_rule(problem, row) for row in by_key[key]]
        refused.add(key)
    for key, rows in by_key.items():
        if key not in refused and len(rows) > 1:
            variants = ", ".join(f"{r.variant or '(ingen)'} på rad {r.row}" for r in rows)
            result.problems += [CandidateProblem(r.shown, r.fagkode, RULE_DUPLICATE,
                                                 f"rad {r.row}: kandidaten er oppført i {r.fagkode} i flere "
                                                 f"varianter ({variants}); ingen av dem sendes", r.row, r.fodselsnr)
                                for r in rows]
            refused.add(key)
    result.rows = [row for row in read.rows if row.key not in refused]
    result.problems.sort(key=lambda p: (p.row, p.code, p.rule))
    return result


def _level_of_file(rows: Sequence[CandidateRow], plan: EksamensplanResponse,
                   problems: list[CandidateProblem]) -> tuple[Opplaeringsniva | None, str]:
    """The level to judge the rows at when none is given, and the note that says where it came from.

    Udir judges a registration without an Opplaeringsniva at the school's own level, which skolflow cannot
    read; the level most of the file's candidate-subjects are at stands in for it. When the file is split
    evenly between the levels there is nothing to go by, and that is a problem of the whole registration.
    """
    counts = Counter(level for row in rows for level in plan.levels(row.fagkode))
    ranked = counts.most_common()
    if len(ranked) < 2:
        return (ranked[0][0] if ranked else None), ""
    (level, most), (_, next_most) = ranked[:2]
    if most == next_most:
        levels = " og ".join(map(rules.level_name, sorted(counts)))
        problems.append(CandidateProblem("", "", rules.RULE_LEVEL, (
            f"Filen har like mange kandidatfag i eksamensplanen for {levels} ({most} hver). En påmelding gjelder "
            "ett opplæringsnivå, og uten et oppgitt nivå bruker Udir skolens eget: oppgi opplæringsnivå.")))
        return None, ""
    return level, (f"(Udir bruker skolens eget opplæringsnivå når påmeldingen ikke oppgir noe; skolflow leser det "
                   f"av filen, der {most} av {sum(counts.values())} kandidatfag er {level}. Oppgi opplæringsnivå "
                   "hvis det er feil.)")


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
