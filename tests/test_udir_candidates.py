"""Reading and checking a school's candidates file, and `skolflow validate udir FILE [--json]`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from skolflow.connectors.udir import rules
from skolflow.connectors.udir import sandbox as udir_sandbox
from skolflow.flows.cli import app
from skolflow.identity import mask
from skolflow.sandbox import udir_data
from skolflow.sandbox.runner import SandboxServer, with_faults
from skolflow.tasks.udir_candidates import (
    COLUMNS,
    RULE_DUPLICATE,
    RULE_KANDIDATTYPE,
    RULE_MALFORM,
    RULE_MISSING,
    RULE_TEACHER,
    CandidateFileError,
    CandidateRow,
    Checked,
    School,
    by_candidate,
    check,
    pamelding,
    read_candidates,
    to_send,
    write_csv,
)

DATA = udir_data.generate()
SCHOOL = DATA.schools[0]
A, B, C = (c.fodselsnr for c in udir_data.candidates_at(DATA.candidates, SCHOOL.orgnr)[2:5])
TEACHER = udir_data.teacher_fodselsnr()
PLAN = frozenset({"NOR1211", "NOR0214", "NOR0215", "NOR1415", "REA3015", "ENG1002"})
runner = CliRunner()


def row(fnr: str = A, fagkode: str = "NOR1211", **changes: str) -> dict[str, str]:
    base = {"fodselsnummer": fnr, "fornavn": "Nora", "etternavn": "Hansen", "malform": "Bokmal",
            "kandidattype": "Elev", "fagkode": fagkode, "variant": "", "kandidatgruppe": "3STA"}
    return {**base, **changes}


def school(period: str = "V-2026", email: str | None = None) -> School:
    return School(SCHOOL.orgnr, SCHOOL.name, "sas.bruker", period, None, email)


def checked(tmp_path: Path, rows: list[dict[str, str]], plan: frozenset[str] | None = PLAN,
            **kw: str | None) -> Checked:
    return check(read_candidates(write_csv(tmp_path / "k.csv", rows)), school(**kw), plan)


def rules_of(result: Checked) -> set[tuple[str, str, str]]:
    return {(p.candidate, p.code, p.rule) for p in result.problems}


def test_a_clean_file_passes_and_builds_an_xsd_valid_registration(tmp_path: Path) -> None:
    from skolflow.connectors.udir import codec
    from skolflow.connectors.udir.models import Pamelding

    rows = [row(A, ansvarlig_fodselsnummer=TEACHER, ansvarlig_fornavn="Turid", ansvarlig_etternavn="Lærer",
                ansvarlig_epost="t@skole.no"), row(B)]
    result = checked(tmp_path, rows)
    assert result.problems == []
    document = pamelding(school(), result.rows)
    assert codec.validate(Pamelding, codec.encode(document)) == []
    (group,) = document.kandidatgrupper
    assert [k.fodselsnr for k in group.kandidater] == [A, B]
    assert [t.fodselsnr for t in group.kandidatgruppeansvarlige] == [TEACHER]


def test_semicolon_csv_with_a_bom_and_json_read_the_same(tmp_path: Path) -> None:
    rows = [row(A, malform="nynorsk", kandidattype="privatist"), row(B, fagkode="rea3015", variant="jav")]
    header = ";".join(COLUMNS)
    lines = [";".join(r.get(c, "") for c in COLUMNS) for r in rows]
    semicolon = tmp_path / "excel.csv"
    semicolon.write_text("\n".join([header, *lines]), encoding="utf-8-sig")
    as_json = tmp_path / "k.json"
    teachers = [{"fodselsnummer": TEACHER, "fornavn": "Turid", "etternavn": "Lærer"}]
    as_json.write_text(json.dumps([{**rows[0], "ansvarlige": teachers}, rows[1]]), encoding="utf-8")

    from_csv, from_json = read_candidates(semicolon), read_candidates(as_json)

    assert [(r.fodselsnr, r.malform, r.kandidattype, r.fagkode, r.variant) for r in from_csv.rows] == [
        (A, "Nynorsk", "Privatist", "NOR1211", None), (B, "Bokmal", "Elev", "REA3015", "JAV")]
    assert [r.key for r in from_json.rows] == [r.key for r in from_csv.rows]
    assert from_json.rows[0].ansvarlige[0].fodselsnr == TEACHER


def test_several_teachers_in_one_csv_cell(tmp_path: Path) -> None:
    other = udir_data.teacher_fodselsnr(1)
    rows = [row(A, ansvarlig_fodselsnummer=f"{TEACHER}|{other}", ansvarlig_fornavn="Turid|Per",
                ansvarlig_etternavn="Lærer|Lektor")]
    (read,) = read_candidates(write_csv(tmp_path / "k.csv", rows)).rows
    assert [(t.fodselsnr, t.fornavn) for t in read.ansvarlige] == [(TEACHER, "Turid"), (other, "Per")]


def test_every_format_problem_is_reported_at_once_naming_row_candidate_and_rule(tmp_path: Path) -> None:
    rows = [row(A, malform="engelsk"), row(B, kandidattype="lærer"), row("12345678901"), row(C, fornavn=""),
            row(A, "ENG1002", ansvarlig_fodselsnummer="01010112345", ansvarlig_fornavn="X", ansvarlig_etternavn="Y"),
            row(A, "ENG1002")]
    result = checked(tmp_path, rows)
    assert rules_of(result) == {
        (mask(A), "NOR1211", RULE_MALFORM), (mask(B), "NOR1211", RULE_KANDIDATTYPE),
        (mask("12345678901"), "NOR1211", rules.RULE_FODSELSNUMMER), (mask(C), "NOR1211", RULE_MISSING),
        (mask(A), "ENG1002", RULE_TEACHER), (mask(A), "ENG1002", RULE_DUPLICATE)}
    assert mask("01010112345") in next(p.message for p in result.problems if p.rule == RULE_TEACHER)
    assert [r.key for r in result.rows] == [(A, "ENG1002")]  # the teacher is left out, the candidate goes on
    assert all(A not in p.message and "12345678901" not in p.message for p in result.problems)
    assert {p.row for p in result.problems} == {2, 3, 4, 5, 6, 7}


def test_a_fagkode_not_in_the_plan_refuses_only_its_rows(tmp_path: Path) -> None:
    result = checked(tmp_path, [row(A, "ABC1234"), row(B)])
    assert rules_of(result) == {(mask(A), "ABC1234", rules.RULE_FAGKODE)}
    assert [r.key for r in result.rows] == [(B, "NOR1211")]


def test_without_a_plan_fagkoder_are_not_checked(tmp_path: Path) -> None:
    assert checked(tmp_path, [row(A, "ABC1234")], plan=None).problems == []


def test_a_group_name_used_for_two_variants_refuses_both_groups(tmp_path: Path) -> None:
    rows = [row(A, "REA3015", variant="JAV", kandidatgruppe="IT2"), row(B, "REA3015", variant="CS",
                                                                        kandidatgruppe="it2")]
    result = checked(tmp_path, rows)
    assert rules_of(result) == {(mask(A), "REA3015", rules.RULE_GROUP_NAME),
                                (mask(B), "REA3015", rules.RULE_GROUP_NAME)}
    assert result.rows == []


@pytest.mark.parametrize(("rows", "refused"), [
    ([row(A, "NOR0214")], {(A, "NOR0214", rules.RULE_NOR0214_NOR0215)}),
    ([row(A, "NOR0214"), row(A, "NOR0215")], set()),
    ([row(A, "NOR0214"), row(A, "NOR0215"), row(A, "NOR1415")], {(A, "NOR1415", rules.RULE_NOR1415)}),
    ([row(A, "REA3015")], {(A, "REA3015", rules.RULE_REA3015)}),
    ([row(A, "REA3015", variant="PY")], {(A, "REA3015", rules.RULE_REA3015)}),
    ([row(A, "REA3015", variant="AS")], set()),
])
def test_special_subject_rules_refuse_the_subject_not_the_candidate(tmp_path: Path, rows: list[dict[str, str]],
                                                                    refused: set[tuple[str, str, str]]) -> None:
    result = checked(tmp_path, [*rows, row(A, "ENG1002")])
    assert rules_of(result) == {(mask(f), code, rule) for f, code, rule in refused}
    assert (A, "ENG1002") in {r.key for r in result.rows}


def test_a_fagkode_refused_by_the_plan_can_leave_its_pair_alone(tmp_path: Path) -> None:
    """NOR0215 missing from the plan leaves NOR0214 without its pair: both are refused, each for its own rule."""
    result = checked(tmp_path, [row(A, "NOR0214"), row(A, "NOR0215")], plan=PLAN - {"NOR0215"})
    assert rules_of(result) == {(mask(A), "NOR0215", rules.RULE_FAGKODE),
                                (mask(A), "NOR0214", rules.RULE_NOR0214_NOR0215)}


@pytest.mark.parametrize(("period", "email", "rule"), [("2026V", None, rules.RULE_PERIOD),
                                                       ("V-2026", "ikke en adresse", rules.RULE_EMAIL)])
def test_period_and_email_problems_block_the_whole_registration(tmp_path: Path, period: str, email: str | None,
                                                                rule: str) -> None:
    result = checked(tmp_path, [row(A)], period=period, email=email)
    assert [p.rule for p in result.blocking] == [rule]


def test_unreadable_files_are_refused_with_a_reason(tmp_path: Path) -> None:
    bad_json = tmp_path / "k.json"
    bad_json.write_text('{"fodselsnummer": 1}')
    with pytest.raises(CandidateFileError, match="list of candidate objects"):
        read_candidates(bad_json)
    unknown = tmp_path / "k.csv"
    unknown.write_text("personnummer,fornavn\n1,2\n")
    with pytest.raises(CandidateFileError, match="unknown column"):
        read_candidates(unknown)


def candidate_row(fnr: str, fagkode: str) -> CandidateRow:
    return CandidateRow(1, fnr, "N", "H", "Bokmal", "Elev", fagkode, None, "G")


def test_to_send_skips_what_udir_holds_but_keeps_the_nor_pair_together() -> None:
    rows = [candidate_row(A, "NOR1211"), candidate_row(A, "NOR0214"), candidate_row(A, "NOR0215"),
            candidate_row(B, "NOR1211")]
    held = {(A, "NOR1211"), (A, "NOR0214"), (B, "NOR1211")}
    assert [r.key for r in to_send(rows, held)] == [(A, "NOR0214"), (A, "NOR0215")]
    assert to_send(rows, {r.key for r in rows}) == []


def test_batches_keep_each_candidates_subjects_together() -> None:
    rows = [candidate_row(A, "NOR0214"), candidate_row(B, "NOR1211"), candidate_row(A, "NOR0215"),
            candidate_row(C, "NOR1211")]
    batches = list(by_candidate(rows, 2))
    assert [[r.key for r in b] for b in batches] == [[(A, "NOR0214"), (A, "NOR0215"), (B, "NOR1211")],
                                                     [(C, "NOR1211")]]


# --- skolflow validate udir ------------------------------------------------------------------------------------------


@pytest.fixture
def udir_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with SandboxServer() as server:
        url = server.start("udir", with_faults(udir_sandbox.create_app(DATA), "udir"))
        monkeypatch.setenv("SKOLFLOW_UDIR_URL", url)
        yield url


def validate(path: Path, *options: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["validate", "udir", str(path), *options])
    return result.exit_code, result.stdout, result.stderr


def test_validate_udir_lists_every_problem_with_masked_candidates(tmp_path: Path, udir_url: str) -> None:
    path = write_csv(tmp_path / "k.csv", udir_data.sample_candidates(DATA, SCHOOL.orgnr))
    code, out, _ = validate(path, "--periode", "V-2026", "--skole", SCHOOL.orgnr, "--json")
    assert code == 1
    found = json.loads(out)
    assert {(p["code"], p["rule"]) for p in found} == {("NOR0214", rules.RULE_NOR0214_NOR0215),
                                                       ("ABC1234", rules.RULE_FAGKODE)}
    assert all(set(p) == {"candidate", "code", "rule", "message"} for p in found)
    assert all(c.fodselsnr not in out for c in DATA.candidates)

    code, text, _ = validate(path, "--periode", "V-2026", "--skole", SCHOOL.orgnr)
    assert code == 1 and len(text.strip().splitlines()) == 2
    assert all(line.split("\t")[0].endswith("*****") for line in text.strip().splitlines())


def test_validate_udir_without_a_period_skips_the_plan_and_says_so(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "k.csv", [row(A, "ABC1234")])
    code, out, err = validate(path)
    assert code == 0 and "no problems" in out
    assert "fagkoder not checked" in err


def test_validate_udir_of_a_clean_file_exits_0(tmp_path: Path, udir_url: str) -> None:
    path = write_csv(tmp_path / "k.csv", [row(A), row(B, "NOR0214"), row(B, "NOR0215")])
    code, out, _ = validate(path, "--periode", "V-2026")
    assert code == 0 and "no problems" in out
