"""`skolflow validate betyg FILE [--json]`: XSD and document rules per student, one problem per line."""

from __future__ import annotations

import datetime as dt
import json
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from skolflow.connectors.betyg.codec import encode
from skolflow.connectors.betyg.models import StudentGrades
from skolflow.connectors.betyg.sandbox import braced, wire_grade
from skolflow.flows.cli import app
from skolflow.sandbox.dataset import generate
from skolflow.tasks import validation
from skolflow.tasks.beda_report import StudentInput

EXAMPLE = Path(__file__).parent / "data" / "betyg-exempel.xml"
ELEV_2 = "{7b080db7-1591-4c67-94d6-28adfcf52396}"
ELEV_3 = "{96ab211c-4937-49e3-8fdc-e144447c2138}"
WINDOW = (dt.datetime(2025, 6, 1, 8, 0), dt.datetime(2025, 6, 2, 8, 0))

runner = CliRunner()


def validate(path: Path, *options: str) -> tuple[int, str]:
    result = runner.invoke(app, ["validate", "betyg", str(path), *options])
    return result.exit_code, result.stdout


def problems(path: Path) -> tuple[int, list[dict[str, Any]]]:
    code, out = validate(path, "--json")
    return code, json.loads(out)


def generated_students() -> list[StudentGrades]:
    """The betyg sandbox's students, as the platform would send them: every one clean."""
    dataset = generate(students=40, schools=6, seed=11)
    return [StudentGrades(braced(sid), tuple(wire_grade(g) for g in record.grades))
            for sid, record in dataset.records.items()]


def write(path: Path, students: list[StudentGrades]) -> Path:
    encode(path, students, *WINDOW)
    return path


def test_the_official_example_fails_with_exactly_its_known_mistakes() -> None:
    code, found = problems(EXAMPLE)

    assert code == 1
    assert all(set(p) == {"student", "code", "rule", "message"} for p in found)
    assert [(p["student"], p["code"], p["rule"]) for p in found] == [
        (ELEV_2, "MLDEU", "guid"),  # skola {abdcacf8c-…} has nine hex digits
        (ELEV_2, "GYARBF", "grade-kind"),  # a kursbetyg in skolform GR
        (ELEV_3, "MLDEU", "guid"),  # a beslutsfattare person lacks its closing brace
        (ELEV_3, "M2DEU", "term-date"),  # HT 2015 against datum 2014-12-17 (M2 with <språk>DEU is M2DEU)
    ]
    assert "{abdcacf8c-0930-11e5-a6c0-1697f925ec7b}" in found[0]["message"]
    assert "HT 2015" in found[3]["message"] and "2014-12-17" in found[3]["message"]


def test_plain_output_is_one_tab_separated_line_per_problem() -> None:
    code, out = validate(EXAMPLE)

    lines = out.splitlines()
    assert code == 1 and len(lines) == 4
    assert lines[1].split("\t")[:3] == [ELEV_2, "GYARBF", "grade-kind"]


def test_a_clean_generated_document_passes(tmp_path: Path) -> None:
    students = generated_students()
    assert sum(len(s.grades) for s in students) > 40  # a real document, not an empty one
    path = write(tmp_path / "clean.xml", students)

    assert problems(path) == (0, [])
    code, out = validate(path)
    assert code == 0 and out.strip() == f"{path}: no problems"


def test_a_student_breaking_the_xsd_is_reported_and_the_rest_are_still_checked(tmp_path: Path) -> None:
    students = [s for s in generated_students() if s.grades]
    broken, mistaken = students[0], next(s for s in students[1:] if s.grades[0].skolform not in ("GYSAR", "YH"))
    students[0] = replace(broken, grades=(replace(broken.grades[0], value="X"), *broken.grades[1:]))
    wrong_scale = replace(mistaken.grades[0], value="VG")
    index = students.index(mistaken)
    students[index] = replace(mistaken, grades=(wrong_scale, *mistaken.grades[1:]))
    path = write(tmp_path / "broken.xml", students)

    code, found = problems(path)

    assert code == 1
    assert [(p["student"], p["code"], p["rule"]) for p in found] == [
        (broken.student_id, "", "xsd"),
        (mistaken.student_id, wrong_scale.code, "grade-scale"),
    ]
    assert "'X'" in found[0]["message"]


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "plain"])
def test_an_external_entity_is_refused_and_its_target_never_printed(tmp_path: Path, as_json: bool) -> None:
    secret = tmp_path / "secret.txt"
    marker = f"do-not-print-{uuid.uuid4().hex}"
    secret.write_text(marker)
    path = tmp_path / "xxe.xml"
    path.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE betyg [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>\n'
        '<betyg xmlns="http://pingpong.se/schemas/grades/v1.1" from="2025-01-01T00:00:00" tom="2025-01-02T00:00:00">'
        '<elev id="&xxe;"/></betyg>')

    result = runner.invoke(app, ["validate", "betyg", str(path), *(["--json"] if as_json else [])])

    assert result.exit_code == 1
    assert marker not in result.output
    if as_json:
        [problem] = json.loads(result.stdout)
        assert (problem["student"], problem["rule"]) == ("", "xml")
    else:
        assert result.stdout.split("\t")[2] == "xml"


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    assert runner.invoke(app, ["validate", "betyg", str(tmp_path / "nope.xml")]).exit_code == 2


# --- another kind of document, language subjects, streaming ---------------------------------------------------


@pytest.mark.parametrize(("old", "new", "found"), [
    ("http://pingpong.se/schemas/grades/v1.1", "http://pingpong.se/schemas/grades/v1.0",
     "<betyg> in namespace http://pingpong.se/schemas/grades/v1.0"),
    ("betyg", "grades", "<grades> in namespace http://pingpong.se/schemas/grades/v1.1"),
], ids=["another-namespace", "another-root"])
def test_a_document_that_is_not_a_betyg_api_document_is_an_error_not_a_clean_bill(
        tmp_path: Path, old: str, new: str, found: str) -> None:
    path = tmp_path / "other.xml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    expected = "expected <betyg> in namespace http://pingpong.se/schemas/grades/v1.1"

    code, out = validate(path)
    assert code == 1
    [line] = out.splitlines()
    assert line.split("\t")[2] == "xml" and found in line and expected in line

    code, [problem] = problems(path)
    assert code == 1 and problem["rule"] == "xml" and found in problem["message"] and expected in problem["message"]


def test_a_language_beside_its_subject_passes_and_an_unknown_one_is_named(tmp_path: Path) -> None:
    students = generated_students()
    index, student = next((i, s) for i, s in enumerate(students) if any(g.sprak for g in s.grades))
    spoken = next(g for g in student.grades if g.sprak)
    beside = replace(spoken, code=spoken.code[:2])  # "M2FRA" + <språk>FRA as "M2" + <språk>FRA
    students[index] = replace(student, grades=tuple(beside if g is spoken else g for g in student.grades))
    assert problems(write(tmp_path / "beside.xml", students)) == (0, [])

    unknown = replace(beside, sprak="XYZ")
    students[index] = replace(student, grades=tuple(unknown if g is spoken else g for g in student.grades))
    code, found = problems(write(tmp_path / "unknown.xml", students))
    assert code == 1
    assert [(p["student"], p["code"], p["rule"]) for p in found] == [
        (student.student_id, spoken.code[:2] + "XYZ", "subject-language")]


def test_students_are_checked_as_they_stream_past_and_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[weakref.ref[StudentInput]] = []
    most_held = 0

    def streamed(path: Path) -> Iterator[StudentInput]:
        nonlocal most_held
        for n in range(2000):
            most_held = max(most_held, sum(1 for student in released if student() is not None))
            student = StudentInput(student_id=f"{{00000000-0000-4000-8000-{n:012x}}}", schema_errors=[f"fel {n}"])
            released.append(weakref.ref(student))
            yield student

    monkeypatch.setattr(validation, "checked_students", streamed)
    found = validation.validate_betyg_document(Path("streamed.xml"))

    assert len(released) == 2000 and [p.message for p in found[:2]] == ["fel 0", "fel 1"]
    assert most_held <= 1  # the one just checked when the next is read; never the document's students


def test_many_students_each_with_a_problem_keep_a_bounded_list(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "MAX_PER_RULE", 25)
    students = [replace(s, student_id=f"elev-{n}") for n, s in enumerate(generated_students() * 5)]
    path = write(tmp_path / "many.xml", students)

    code, found = problems(path)

    assert code == 1
    guid = [p for p in found if p["rule"] == "guid" and p["student"]]
    assert [p["student"] for p in guid] == [f"elev-{n}" for n in range(25)]  # the first ones, in document order
    assert found[-1] == {"student": "", "code": "", "rule": "guid",
                         "message": f"{len(students) - 25} more problems under rule guid not listed (the first 25 are)"}


def test_a_problem_never_keeps_more_of_the_document_than_a_line(tmp_path: Path) -> None:
    student = generated_students()[0]
    path = write(tmp_path / "long.xml", [replace(student, student_id="x" * 100_000)])

    code, found = problems(path)

    assert code == 1 and found[0]["rule"] == "guid"
    assert len(found[0]["student"]) == validation.MAX_FIELD and found[0]["student"].endswith("…")
    assert len(found[0]["message"]) == validation.MAX_FIELD
