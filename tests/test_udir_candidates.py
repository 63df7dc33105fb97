"""Reading and checking a school's candidates file, and `skolflow validate udir FILE [--json]`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from skolflow.connectors.udir import rules
from skolflow.connectors.udir import sandbox as udir_sandbox
from skolflow.connectors.udir.models import (
    Eksamen,
    Eksamensperiode,
    Eksamensplan,
    EksamensplanResponse,
    Opplaeringsniva,
)
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
    read_text,
    to_send,
    write_csv,
)

DATA = udir_data.generate()
SCHOOL = DATA.schools[0]
A, B, C = (c.fodselsnr for c in udir_data.candidates_at(DATA.candidates, SCHOOL.orgnr)[2:5])
TEACHER = udir_data.teacher_fodselsnr()
PLAN = frozenset({"NOR1211", "NOR0214", "NOR0215", "NOR1415", "REA3015", "ENG1002", "SAM3073"})
GS_PLAN = frozenset({"MAT0010", "NOR0011"})
runner = CliRunner()


def row(fnr: str = A, fagkode: str = "NOR1211", **changes: str) -> dict[str, str]:
    base = {"fodselsnummer": fnr, "fornavn": "Nora", "etternavn": "Hansen", "malform": "Bokmal",
            "kandidattype": "Elev", "fagkode": fagkode, "variant": "", "kandidatgruppe": "3STA"}
    return {**base, **changes}


def school(period: str = "V-2026", email: str | None = None, level: Opplaeringsniva | None = None) -> School:
    return School(SCHOOL.orgnr, SCHOOL.name, "sas.bruker", period, level, email)


def eksamensplan(vgs: frozenset[str], gs: frozenset[str] = GS_PLAN, period: str = "V-2026") -> EksamensplanResponse:
    """Udir's answer for a period: a plan per level."""
    day = dt.datetime(2026, 5, 15, 9)
    periode = Eksamensperiode(kode=period, pamelding_start=day, pamelding_stopp=day, gjennomforing_start=day,
                              gjennomforing_stopp=day)
    return EksamensplanResponse(eksamensplaner=[
        Eksamensplan(opplaeringsniva=level, eksamensperiode=periode, eksamener=[Eksamen(fagkode=c) for c in codes])
        for level, codes in (("GS", gs), ("VGS", vgs))])


def checked(tmp_path: Path, rows: list[dict[str, str]], plan: frozenset[str] | None = PLAN,
            **kw: Any) -> Checked:
    """``plan``: the VGS plan's fagkoder (the GS plan is GS_PLAN); None: no plan was read."""
    return check(read_candidates(write_csv(tmp_path / "k.csv", rows)), school(**kw),
                 None if plan is None else eksamensplan(plan))


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


def test_a_candidate_in_two_rea3015_variants_is_sent_in_neither(tmp_path: Path) -> None:
    """Seed 001: a candidate may be registered in one REA3015 variant only; the school must say which."""
    rows = [row(A, "REA3015", variant="JAV", kandidatgruppe="IT2 Java"),
            row(A, "REA3015", variant="CS", kandidatgruppe="IT2 C#"), row(A, "ENG1002"), row(B, "REA3015",
                                                                                             variant="JAV")]
    result = checked(tmp_path, rows)
    assert sorted((p.row, p.code, p.rule) for p in result.problems) == [(2, "REA3015", rules.RULE_REA3015),
                                                                        (3, "REA3015", rules.RULE_REA3015)]
    assert "JAV, CS" in result.problems[0].message
    assert [r.key for r in result.rows] == [(A, "ENG1002"), (B, "REA3015")]


def test_a_candidate_in_two_variants_of_another_fagkode_is_sent_in_neither(tmp_path: Path) -> None:
    rows = [row(A, "SAM3073", variant="LOKAL"), row(A, "SAM3073", kandidatgruppe="3STB"),
            row(B, "SAM3073", kandidatgruppe="3STB")]
    result = checked(tmp_path, rows)
    assert sorted((p.row, p.rule) for p in result.problems) == [(2, RULE_DUPLICATE), (3, RULE_DUPLICATE)]
    assert "LOKAL på rad 2, (ingen) på rad 3" in result.problems[0].message
    assert [r.key for r in result.rows] == [(B, "SAM3073")]


def test_a_row_repeated_with_the_same_variant_is_a_duplicate_and_the_first_goes_on(tmp_path: Path) -> None:
    result = checked(tmp_path, [row(A, "REA3015", variant="JAV"), row(A, "REA3015", variant="jav")])
    assert [(p.row, p.rule) for p in result.problems] == [(3, RULE_DUPLICATE)]
    assert [(r.key, r.variant) for r in result.rows] == [((A, "REA3015"), "JAV")]


def test_a_gs_exam_in_a_file_of_vgs_exams_is_refused_naming_its_level(tmp_path: Path) -> None:
    """The registration names no level, so Udir judges it at the school's: the level most rows are at."""
    result = checked(tmp_path, [row(A), row(B), row(B, "ENG1002"), row(C, "MAT0010")])
    assert rules_of(result) == {(mask(C), "MAT0010", rules.RULE_LEVEL)}
    (problem,) = result.problems
    assert "eksamensplanen for videregående (VGS)" in problem.message and "grunnskolen (GS)" in problem.message
    assert "3 av 4 kandidatfag er VGS" in problem.message
    assert [r.key for r in result.rows] == [(A, "NOR1211"), (B, "NOR1211"), (B, "ENG1002")]
    assert result.blocking == []


def test_the_level_given_goes_before_the_files(tmp_path: Path) -> None:
    result = checked(tmp_path, [row(A), row(B), row(C, "MAT0010")], level="GS")
    assert rules_of(result) == {(mask(A), "NOR1211", rules.RULE_LEVEL), (mask(B), "NOR1211", rules.RULE_LEVEL)}
    assert "av filen" not in result.problems[0].message  # the level was given, not read off the file
    assert [r.key for r in result.rows] == [(C, "MAT0010")]


def test_a_file_split_evenly_between_the_levels_stops_the_registration(tmp_path: Path) -> None:
    result = checked(tmp_path, [row(A), row(C, "MAT0010")])
    assert [(p.candidate, p.rule) for p in result.blocking] == [("", rules.RULE_LEVEL)]
    assert "oppgi opplæringsnivå" in result.blocking[0].message
    assert checked(tmp_path, [row(A), row(C, "MAT0010")], level="VGS").blocking == []


def test_a_period_udir_answers_no_plan_for_stops_the_registration(tmp_path: Path) -> None:
    read = read_candidates(write_csv(tmp_path / "k.csv", [row(A), row(B)]))
    result = check(read, school("V-2031"), eksamensplan(PLAN))
    assert [(p.rule, p.message) for p in result.blocking] == [
        (rules.RULE_PERIOD, "Eksamensperioden V-2031 finnes ikke i Udirs eksamensplaner.")]
    assert result.problems == result.blocking  # the rows are not judged against another period's plan


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


def csv_bytes(rows: list[dict[str, str]], encoding: str, *, header: bool = True) -> bytes:
    lines = [";".join(COLUMNS)] if header else []
    lines += [";".join(r.get(c, "") for c in COLUMNS) for r in rows]
    return "\r\n".join(lines).encode(encoding)


NORWEGIAN = {"fornavn": "Åse Sigrid", "etternavn": "Ødegård Sæther", "ansvarlig_fodselsnummer": TEACHER,
             "ansvarlig_fornavn": "Bjørn", "ansvarlig_etternavn": "Lærer", "ansvarlig_epost": "bjorn.laerer@skole.no"}


@pytest.mark.parametrize(("encoding", "apostrophe", "detected"), [
    ("utf-8", "’", "UTF-8"), ("utf-8-sig", "’", "UTF-8"), ("cp1252", "’", "Windows-1252"),
    ("latin-1", "'", "ISO-8859-1")])
def test_a_file_in_any_encoding_schools_export_reads_with_its_letters_intact(tmp_path: Path, encoding: str,
                                                                            apostrophe: str, detected: str) -> None:
    family = f"O{apostrophe}Neill Ødegård"  # ’ is in Windows-1252 (0x92) and UTF-8, not in ISO-8859-1
    path = tmp_path / "kandidater.csv"
    path.write_bytes(csv_bytes([row(A, **{**NORWEGIAN, "etternavn": family}), row(B, **NORWEGIAN)], encoding))

    result = read_candidates(path)

    assert read_text(path)[1] == detected
    assert result.problems == []
    assert [(r.fornavn, r.etternavn) for r in result.rows] == [("Åse Sigrid", family), ("Åse Sigrid", "Ødegård Sæther")]
    assert [(t.fornavn, t.etternavn, t.epost) for t in result.rows[0].ansvarlige] == [
        ("Bjørn", "Lærer", "bjorn.laerer@skole.no")]


@pytest.mark.parametrize("content", ["utf-16", "undefined"])
def test_a_file_in_none_of_them_is_refused_naming_encoding_and_byte_never_its_content(tmp_path: Path,
                                                                                      content: str) -> None:
    rows = [row(A, **NORWEGIAN), row(B, **NORWEGIAN)]
    if content == "utf-16":  # a spreadsheet saved as "Unicode text": a BOM UTF-8 refuses, then NUL bytes
        data = csv_bytes(rows, "utf-16")
        utf8_at, other_at = 0, 3
    else:  # 0x81: in neither UTF-8 nor Windows-1252, a control code in ISO-8859-1
        data = csv_bytes(rows, "cp1252").replace(b"Sigrid", b"Sig\x81rid", 1)
        utf8_at, other_at = data.index("Å".encode("cp1252")), data.index(b"\x81")
    path = tmp_path / "kandidater.csv"
    path.write_bytes(data)

    with pytest.raises(CandidateFileError) as raised:
        read_candidates(path)

    assert str(raised.value) == (f"kandidater.csv: not readable as UTF-8 (at byte {utf8_at}), Windows-1252 or "
                                 f"ISO-8859-1 (at byte {other_at}); save it as UTF-8 text")
    for value in (A, B, TEACHER, "Sigrid", "Ødegård", "Bjørn", "bjorn.laerer"):
        assert value not in repr(raised.value)


def test_a_file_without_its_header_line_is_refused_without_quoting_the_first_row(tmp_path: Path) -> None:
    path = tmp_path / "kandidater.csv"
    path.write_bytes(csv_bytes([row(A, **NORWEGIAN), row(B)], "utf-8", header=False))
    misspelt = tmp_path / "stavefeil.csv"
    misspelt.write_text(";".join(["fodselsnumer", *COLUMNS[1:]]) + "\n", encoding="utf-8")

    with pytest.raises(CandidateFileError, match="unknown column") as raised:
        read_candidates(path)
    with pytest.raises(CandidateFileError, match=r"column 1 \('fodselsnumer': fodselsnummer\?\)"):
        read_candidates(misspelt)

    assert "column 1, column 2" in str(raised.value)
    for value in (A, TEACHER, "Åse", "Ødegård", "Bjørn", "bjorn.laerer", "Bokmal"):
        assert value not in str(raised.value)


def test_a_refused_value_is_not_quoted_it_may_be_a_name_in_a_row_whose_columns_slipped(tmp_path: Path) -> None:
    result = checked(tmp_path, [row(A, malform="Ødegård", kandidattype="Sæther")])
    assert rules_of(result) == {(mask(A), "NOR1211", RULE_MALFORM), (mask(A), "NOR1211", RULE_KANDIDATTYPE)}
    assert not [p for p in result.problems if "Ødegård" in p.message or "Sæther" in p.message]


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


def test_validate_udir_refuses_a_gs_exam_in_a_vgs_schools_file(tmp_path: Path, udir_url: str) -> None:
    path = write_csv(tmp_path / "k.csv", [row(A), row(B), row(C, "MAT0010")])
    code, out, _ = validate(path, "--periode", "V-2026", "--skole", SCHOOL.orgnr, "--json")
    assert code == 1
    assert [(p["candidate"], p["code"], p["rule"]) for p in json.loads(out)] == [
        (mask(C), "MAT0010", rules.RULE_LEVEL)]

    code, out, _ = validate(path, "--periode", "V-2026", "--skole", SCHOOL.orgnr, "--opplaeringsniva", "GS", "--json")
    assert code == 1 and {p["code"] for p in json.loads(out)} == {"NOR1211"}
    code, out, _ = validate(path, "--periode", "V-2026", "--opplaeringsniva", "VGS3")
    assert code == 1 and "Opplæringsnivået 'VGS3' er ikke gyldig" in out


def test_validate_udir_flags_every_row_of_a_candidate_in_two_rea3015_variants(tmp_path: Path, udir_url: str) -> None:
    rows = [row(A, "REA3015", variant="JAV", kandidatgruppe="IT2 Java"),
            row(A, "REA3015", variant="CS", kandidatgruppe="IT2 C#")]
    code, out, _ = validate(write_csv(tmp_path / "k.csv", rows), "--periode", "V-2026", "--json")
    assert code == 1
    assert [(p["code"], p["rule"]) for p in json.loads(out)] == [("REA3015", rules.RULE_REA3015)] * 2


def test_validate_udir_with_a_period_udir_has_no_plan_for_fails(tmp_path: Path, udir_url: str) -> None:
    path = write_csv(tmp_path / "k.csv", [row(A), row(B, "NOR0214"), row(B, "NOR0215")])
    code, out, err = validate(path, "--periode", "V-2031", "--skole", SCHOOL.orgnr, "--json")
    assert code == 1
    (problem,) = json.loads(out)
    assert problem["candidate"] == "" and "V-2031" in problem["message"] and "finnes ikke" in problem["message"]
    assert "not checked" not in err


def test_validate_udir_leaves_fagkoder_unchecked_when_udir_cannot_be_reached(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKOLFLOW_UDIR_URL", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("SKOLFLOW_HTTP_ATTEMPTS", "1")
    code, out, err = validate(write_csv(tmp_path / "k.csv", [row(A)]), "--periode", "V-2031")
    assert code == 0 and "fagkoder not checked: the eksamensplan could not be read" in err
