"""prepare_batch: every student ends sent, unchanged or rejected for a reason; plus the grade and diff helpers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from stdnum import luhn

from skolflow.connectors.beda.models import Examen
from skolflow.connectors.betyg.models import KURSBETYG, GradeRecord, StudentGrades, subject_code
from skolflow.connectors.betygsdokument.models import Amne, GradeDocument
from skolflow.identity import mask
from skolflow.ledger import Ledger, SentState
from skolflow.tasks.beda_report import PreparedBatch, Selection, StudentInput, What, prepare_batch
from skolflow.tasks.diff import content_hash, diff_items
from skolflow.tasks.grades import merge_examen, to_examen
from skolflow.tasks.identities import ResolvedPerson, ResolvedUnit


def civic_number(date: str, serial: str) -> str:
    """A valid twelve-digit personnummer (or samordningsnummer: day + 60) with its Luhn check digit."""
    return date + serial + luhn.calc_check_digit(date[2:] + serial)


CIVIC = civic_number("20080412", "238")
OTHER_CIVIC = civic_number("20080830", "114")
SAMORDNINGSNUMMER = civic_number("19900375", "123")  # born 15 March 1990, day + 60

STUDENT = "d7b3374b-985a-4d43-9558-189e6643755a"  # SS 12000 person id
OTHER = "7b080db7-1591-4c67-94d6-28adfcf52396"
UNIT_A, CODE_A = "bdcacf8c-0930-11e5-a6c0-1697f925ec7b", "12345678"
UNIT_B, CODE_B = "0c5e4f3a-1d2b-4c6e-9f80-1a2b3c4d5e6f", "87654321"
FOREIGN_UNIT, FOREIGN_CODE = "11111111-2222-3333-4444-555555555555", "55555555"  # another huvudman's school
UNKNOWN_UNIT = "99999999-8888-7777-6666-555555555555"  # not in the SS 12000 source
UNITS = {
    UNIT_A: ResolvedUnit(UNIT_A, CODE_A, "212000-0142"),
    UNIT_B: ResolvedUnit(UNIT_B, CODE_B, "212000-0142"),
    FOREIGN_UNIT: ResolvedUnit(FOREIGN_UNIT, FOREIGN_CODE, "556000-0001"),
}
AUTHORISED = frozenset({CODE_A, CODE_B})
NO_SELECTION = Selection()
PERSONS = {STUDENT: ResolvedPerson(STUDENT, CIVIC, None), OTHER: ResolvedPerson(OTHER, OTHER_CIVIC, None)}


def braced(guid: str, upper: bool = False) -> str:
    return "{" + (guid.upper() if upper else guid) + "}"


def grade(**changes: Any) -> GradeRecord:
    base: dict[str, Any] = {
        "kind": KURSBETYG, "value": "C", "datum": dt.date(2025, 5, 20), "provning": False,
        "betygsgrupp": None, "skola": braced(UNIT_A, upper=True), "beslutsfattare_roll": "LÄRARE",
        "beslutsfattare": (braced(OTHER),), "skolform": "GY", "code": "MATMAT01a",
    }
    return GradeRecord(**{**base, **changes})


def document(typ: str = "GY_EXAMENSBEVIS_HOGSKOLEFORBEREDANDE", **changes: Any) -> GradeDocument:
    base: dict[str, Any] = {
        "elev": braced(STUDENT), "studievagskod": "NA", "utfardat": dt.date(2025, 6, 10), "skola": braced(UNIT_A),
        "skolenhetskod": CODE_A, "typ": typ, "kurser": ("MATMAT01a", "ENGENG05"),
    }
    return GradeDocument(**{**base, **changes})


def student(guid: str = STUDENT, *grades: GradeRecord, documents: tuple[GradeDocument, ...] = (),
            written: str | None = None) -> StudentInput:
    """A student as the export writes them: ``written`` is the elev id as it appears in the document."""
    written = written or braced(guid, upper=True)
    return StudentInput(written, StudentGrades(written, grades), list(documents))


def held(civic: str, content: dict[str, Any]) -> SentState:
    return SentState(pipeline="betyg_to_beda", scope="212000-0142", record_key=civic,
                     content_hash=content_hash(content), content=content, run_id="earlier")


def prepare(students: list[StudentInput], *, persons: dict[str, ResolvedPerson] | None = None,
            previous: dict[str, SentState] | None = None, selection: Selection = NO_SELECTION,
            what: What = What.BOTH, authorised: frozenset[str] = AUTHORISED) -> PreparedBatch:
    return prepare_batch(students, PERSONS if persons is None else persons, UNITS, authorised, previous or {},
                         selection, what)


def codes(batch: PreparedBatch) -> dict[str, list[tuple[str, ...]]]:
    """Each bucket as (source id, kod…) rows: what a reader of the run would see."""
    return {
        "to_send": [(p.source_id,) for p in batch.to_send],
        "unchanged": [(p.source_id,) for p in batch.unchanged],
        "rejected": [(r.source_id, *(f.kod for f in r.errors)) for r in batch.rejected],
    }


# --- building Beda's merits --------------------------------------------------------------------------------


def test_a_clean_student_becomes_beda_merits_keyed_by_personnummer() -> None:
    batch = prepare([student(STUDENT, grade(), grade(code="ENGENG05", value="A", provning=True),
                             documents=(document(),))])

    [prepared] = batch.to_send
    assert (prepared.personnummer, prepared.units, prepared.protected) == (CIVIC, (CODE_A,), False)
    wire = prepared.merits.to_wire()
    assert wire["kursbetyg"] == [
        {"skolenhetskod": CODE_A, "skolform": "GY", "typ": "kurs", "kod": "MATMAT01a", "betyg": "C",
         "beslutsdatum": "2025-05-20", "provning": False, "betygsliknandeOmdome": False},
        {"skolenhetskod": CODE_A, "skolform": "GY", "typ": "kurs", "kod": "ENGENG05", "betyg": "A",
         "beslutsdatum": "2025-05-20", "provning": True, "betygsliknandeOmdome": False},
    ]
    assert [e["dokumenttyp"] for e in wire["examen"]] == ["GY_EXAMENSBEVIS_HOGSKOLEFORBEREDANDE"]
    assert prepared.content == wire and prepared.content_hash == content_hash(wire)
    assert (batch.unchanged, batch.rejected, batch.skipped) == ([], [], 0)


def test_a_protected_student_is_marked_so() -> None:
    persons = {STUDENT: ResolvedPerson(STUDENT, CIVIC, "Skyddad folkbokföring")}

    [prepared] = prepare([student(STUDENT, grade())], persons=persons).to_send

    assert prepared.protected is True


def test_a_samordningsnummer_is_accepted_as_the_key() -> None:
    persons = {STUDENT: ResolvedPerson(STUDENT, SAMORDNINGSNUMMER, None)}

    [prepared] = prepare([student(STUDENT, grade())], persons=persons).to_send

    assert prepared.merits.personnummer == SAMORDNINGSNUMMER


# --- selection -----------------------------------------------------------------------------------------------


def test_selection_by_school_unit_keeps_only_students_with_a_grade_or_diploma_there() -> None:
    at_a = student(STUDENT, grade())
    at_b = student(OTHER, grade(skola=braced(UNIT_B)))
    diploma_at_b = student(OTHER, documents=(document(skolenhetskod=CODE_B, skola=braced(UNIT_B)),))

    assert codes(prepare([at_a, at_b], selection=Selection(frozenset({CODE_B}))))["to_send"] == [(at_b.student_id,)]
    batch = prepare([at_a, diploma_at_b], selection=Selection(frozenset({CODE_B})))
    assert ([p.source_id for p in batch.to_send], batch.skipped) == ([diploma_at_b.student_id], 1)
    both = prepare([at_a, at_b], selection=Selection(frozenset({CODE_A, CODE_B})))
    assert len(both.to_send) == 2 and both.skipped == 0


@pytest.mark.parametrize("chosen", [
    STUDENT, STUDENT.upper(), braced(STUDENT), braced(STUDENT, upper=True), f" {braced(STUDENT)} ",
])
@pytest.mark.parametrize("written", [braced(STUDENT), braced(STUDENT, upper=True)])
def test_selection_by_student_matches_the_guid_with_or_without_braces_in_any_case(chosen: str, written: str) -> None:
    batch = prepare([student(OTHER, grade()), student(STUDENT, grade(), written=written)],
                    selection=Selection(student=chosen))

    assert [p.source_id for p in batch.to_send] == [written]
    assert batch.skipped == 1


def test_a_student_outside_the_selection_is_skipped_even_when_they_would_be_rejected() -> None:
    batch = prepare([student(OTHER, grade(value="VG")), student(STUDENT, grade())],
                    selection=Selection(student=STUDENT))

    assert (len(batch.to_send), batch.rejected, batch.skipped) == (1, [], 1)


# --- rejections before sending -------------------------------------------------------------------------------


def test_a_student_unknown_to_ss12000_is_rejected_without_a_personnummer() -> None:
    stranger = "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f"

    batch = prepare([student(stranger, grade()), student(STUDENT, grade())])

    [rejection] = batch.rejected
    assert (rejection.source, rejection.personnummer, rejection.shown) == (
        "skolflow", None, braced(stranger, upper=True))
    assert [(f.kod, f.falt) for f in rejection.errors] == [("ELEV_OKAND", "elev")]
    assert [p.personnummer for p in batch.to_send] == [CIVIC]  # the others go on


def test_a_student_without_civic_no_is_rejected() -> None:
    persons = {STUDENT: ResolvedPerson(STUDENT, None, None)}

    [rejection] = prepare([student(STUDENT, grade())], persons=persons).rejected

    assert [f.kod for f in rejection.errors] == ["PERSONNUMMER_SAKNAS"]
    assert rejection.personnummer is None


@pytest.mark.parametrize("skola", [braced(UNKNOWN_UNIT), "{abdcacf8c-0930-11e5-a6c0-1697f925ec7b}"])
def test_a_grade_at_a_school_missing_from_ss12000_rejects_the_student(skola: str) -> None:
    [rejection] = prepare([student(STUDENT, grade(), grade(skola=skola))]).rejected

    assert [(f.kod, f.falt) for f in rejection.errors] == [("SKOLENHET_OKAND", "kursbetyg[1].skola")]
    assert skola in rejection.errors[0].meddelande
    assert rejection.personnummer == CIVIC


def test_a_school_unit_without_skolenhetskod_is_as_unknown() -> None:
    units = {**UNITS, UNIT_A: ResolvedUnit(UNIT_A, None, "212000-0142")}

    batch = prepare_batch([student(STUDENT, grade())], PERSONS, units, AUTHORISED, {}, Selection(), What.BOTH)

    assert codes(batch)["rejected"] == [(braced(STUDENT, upper=True), "SKOLENHET_OKAND")]


def test_a_unit_outside_the_partys_authorised_units_is_refused_as_beda_would() -> None:
    batch = prepare([student(STUDENT, grade(), grade(skola=braced(FOREIGN_UNIT)))])

    [rejection] = batch.rejected
    assert [(f.kod, f.falt) for f in rejection.errors] == [("SKOLENHET_EJ_BEHORIG", "kursbetyg[1].skolenhetskod")]
    assert FOREIGN_CODE in rejection.errors[0].meddelande


def test_a_diploma_from_an_unauthorised_unit_is_refused_too() -> None:
    [rejection] = prepare([student(STUDENT, documents=(document(skolenhetskod=FOREIGN_CODE),))]).rejected

    assert [(f.kod, f.falt) for f in rejection.errors] == [("SKOLENHET_EJ_BEHORIG", "examen[0].skolenhetskod")]


def test_a_grade_off_its_scale_is_rejected_with_bedas_code() -> None:
    [rejection] = prepare([student(STUDENT, grade(value="VG"))]).rejected

    assert [(f.kod, f.falt) for f in rejection.errors] == [("BETYG_OGILTIGT", "kursbetyg[0].betyg")]


def test_schema_errors_reject_the_student_with_kod_xsd() -> None:
    broken = StudentInput(braced(STUDENT), schema_errors=["XSD: Element 'value': 'X' is not an element of the set"])

    batch = prepare([broken, student(OTHER, grade())])

    [rejection] = batch.rejected
    assert [(f.kod, f.meddelande) for f in rejection.errors] == [
        ("XSD", "XSD: Element 'value': 'X' is not an element of the set")]
    assert rejection.personnummer == CIVIC and rejection.source == "skolflow"
    assert [p.personnummer for p in batch.to_send] == [OTHER_CIVIC]


def test_every_problem_of_a_student_is_reported_at_once() -> None:
    persons: dict[str, ResolvedPerson] = {}
    broken = StudentInput(braced(STUDENT), StudentGrades(braced(STUDENT), (grade(skola=braced(UNKNOWN_UNIT)),)),
                          schema_errors=["XSD: one"])

    [rejection] = prepare([broken], persons=persons).rejected

    assert [f.kod for f in rejection.errors] == ["XSD", "SKOLENHET_OKAND", "ELEV_OKAND"]


def test_a_rejection_shows_the_personnummer_masked() -> None:
    [rejection] = prepare([student(STUDENT, grade(value="VG"))]).rejected

    assert rejection.shown == mask(CIVIC) == f"{CIVIC[:8]}-****"
    assert CIVIC[8:] not in rejection.shown
    assert all(CIVIC not in f.meddelande for f in rejection.errors)


# --- diff against what Beda holds ----------------------------------------------------------------------------


def _sent(batch: PreparedBatch) -> dict[str, Any]:
    [prepared] = batch.to_send
    return prepared.content


def test_the_same_grades_again_are_unchanged(ledger: Ledger) -> None:
    first = _sent(prepare([student(STUDENT, grade(), documents=(document(),))]))
    ledger.accept("betyg_to_beda", "212000-0142", "run-1", {CIVIC: (content_hash(first), first)})
    previous = ledger.sent_state("betyg_to_beda", "212000-0142", [CIVIC])

    again = prepare([student(STUDENT, grade(), documents=(document(),))], previous=previous)

    assert (again.to_send, [p.personnummer for p in again.unchanged]) == ([], [CIVIC])
    assert again.unchanged[0].content_hash == content_hash(first)


def test_a_changed_grade_is_sent() -> None:
    first = _sent(prepare([student(STUDENT, grade())]))

    batch = prepare([student(STUDENT, grade(value="B"))], previous={CIVIC: held(CIVIC, first)})

    assert [k["betyg"] for k in _sent(batch)["kursbetyg"]] == ["B"]


def test_a_removed_grade_is_sent_as_the_shorter_complete_list() -> None:
    first = _sent(prepare([student(STUDENT, grade(), grade(code="ENGENG05"))]))
    assert len(first["kursbetyg"]) == 2

    batch = prepare([student(STUDENT, grade())], previous={CIVIC: held(CIVIC, first)})

    [prepared] = batch.to_send
    assert [k.kod for k in prepared.merits.kursbetyg or []] == ["MATMAT01a"]
    assert [k["kod"] for k in prepared.content["kursbetyg"]] == ["MATMAT01a"]


def test_a_student_whose_grades_were_all_removed_is_sent_an_empty_list() -> None:
    first = _sent(prepare([student(STUDENT, grade(), documents=(document(),))]))

    batch = prepare([student(STUDENT)], previous={CIVIC: held(CIVIC, first)})

    [prepared] = batch.to_send
    assert prepared.merits.kursbetyg == []
    assert prepared.merits.to_wire() == {"personnummer": CIVIC, "kursbetyg": []}  # examen: Beda keeps it
    assert prepared.content == {**first, "kursbetyg": []}


def test_a_removal_of_every_grade_at_a_selected_unit_is_not_skipped() -> None:
    first = _sent(prepare([student(STUDENT, grade())]))

    batch = prepare([student(STUDENT)], previous={CIVIC: held(CIVIC, first)},
                    selection=Selection(frozenset({CODE_A})))

    assert [p.merits.kursbetyg for p in batch.to_send] == [[]]
    assert prepare([student(STUDENT)], previous={CIVIC: held(CIVIC, first)},
                   selection=Selection(frozenset({CODE_B}))).skipped == 1


def test_a_schema_broken_student_beda_holds_at_a_selected_unit_is_rejected_not_skipped() -> None:
    first = _sent(prepare([student(STUDENT, grade())]))
    broken = StudentInput(braced(STUDENT), schema_errors=["XSD: broken"])

    batch = prepare([broken], previous={CIVIC: held(CIVIC, first)}, selection=Selection(frozenset({CODE_A})))

    assert (codes(batch)["rejected"], batch.skipped) == ([(braced(STUDENT), "XSD")], 0)


def test_kursbetyg_only_leaves_what_beda_holds_of_examen_alone() -> None:
    first = _sent(prepare([student(STUDENT, grade(), documents=(document(),))]))
    newer = document(utfardat=dt.date(2025, 6, 15))

    batch = prepare([student(STUDENT, grade(value="A"), documents=(newer,))], previous={CIVIC: held(CIVIC, first)},
                    what=What.KURSBETYG)

    [prepared] = batch.to_send
    assert prepared.merits.examen is None and "examen" not in prepared.merits.to_wire()
    assert prepared.content["examen"] == first["examen"]  # the newer diploma waits for an examen run


def test_examen_only_leaves_kursbetyg_alone_and_ignores_their_changes() -> None:
    first = _sent(prepare([student(STUDENT, grade(), documents=(document(),))]))
    previous = {CIVIC: held(CIVIC, first)}

    unchanged = prepare([student(STUDENT, grade(value="A"), documents=(document(),))], previous=previous,
                        what=What.EXAMEN)
    assert [p.content for p in unchanged.unchanged] == [first]
    assert unchanged.unchanged[0].merits.kursbetyg is None

    newer = document(utfardat=dt.date(2025, 6, 15))
    [prepared] = prepare([student(STUDENT, grade(value="A"), documents=(newer,))], previous=previous,
                         what=What.EXAMEN).to_send
    assert "kursbetyg" not in prepared.merits.to_wire()
    assert prepared.content["kursbetyg"] == first["kursbetyg"]
    assert prepared.content["examen"][0]["utfardat"] == "2025-06-15"


def test_nothing_of_the_chosen_kind_means_the_student_is_skipped() -> None:
    only_documents = StudentInput(braced(STUDENT), documents=[document()])

    assert prepare([only_documents], what=What.KURSBETYG).skipped == 1
    assert prepare([student(STUDENT, grade())], what=What.EXAMEN).skipped == 1


def test_examen_are_merged_per_dokumenttyp_with_what_beda_holds() -> None:
    studiebevis = to_examen(document("GY_STUDIEBEVIS", utfardat=dt.date(2024, 6, 12)))
    old_examen = to_examen(document(utfardat=dt.date(2025, 6, 1)))
    holds = {"personnummer": CIVIC, "examen": [e.model_dump(mode="json", by_alias=True) for e in
                                               (old_examen, studiebevis)]}

    batch = prepare([student(STUDENT, documents=(document(utfardat=dt.date(2025, 6, 20)),))],
                    previous={CIVIC: held(CIVIC, holds)}, what=What.EXAMEN)

    [prepared] = batch.to_send
    assert [(e.dokumenttyp, e.utfardat) for e in prepared.merits.examen or []] == [
        ("GY_EXAMENSBEVIS_HOGSKOLEFORBEREDANDE", "2025-06-20"),
        ("GY_STUDIEBEVIS", "2024-06-12"),
    ]


# --- grade and diff helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "sprak", "expected"), [
    ("M2", "DEU", "M2DEU"),
    ("M1", "FRE", "M1FRE"),
    ("ML", "ARA", "MLARA"),
    ("MLDEU", "DEU", "MLDEU"),  # already carries its language: not doubled
    ("M2", None, "M2"),
    ("MA", None, "MA"),
    ("EN", "ENG", "EN"),  # only the language subjects take a language
])
def test_subject_code_adds_the_language_to_language_subjects(code: str, sprak: str | None, expected: str) -> None:
    assert subject_code(code, sprak) == expected


def test_to_examen_writes_language_subjects_with_their_language() -> None:
    diploma = to_examen(document(amnen=(Amne("M2", "DEU"), Amne("SV")), kurser=("MATMAT01a",)))

    assert diploma.kurser == ["MATMAT01a", "M2DEU", "SV"]


def test_merge_examen_keeps_one_per_type_latest_wins() -> None:
    old = Examen(skolenhetskod=CODE_A, dokumenttyp="GY_SLUTBETYG", utfardat="2024-01-01")
    other = Examen(skolenhetskod=CODE_A, dokumenttyp="GY_GYMNASIEINTYG", utfardat="2024-01-01")
    new = old.model_copy(update={"utfardat": "2025-01-01"})

    assert merge_examen([old, other], [new]) == [other, new]


def test_diff_items_tells_added_changed_and_removed_by_key() -> None:
    before = [("MATMAT01a", "C"), ("ENGENG05", "B"), ("HISHIS01a1", "A")]
    after = [("MATMAT01a", "C"), ("ENGENG05", "A"), ("FYSFYS01a", "E")]

    diff = diff_items(before, after, key=lambda item: item[0])

    assert diff.added == [("FYSFYS01a", "E")]
    assert diff.changed == [(("ENGENG05", "B"), ("ENGENG05", "A"))]
    assert diff.removed == [("HISHIS01a1", "A")]
    assert (diff.empty, diff.summary()) == (False, "+1 ~1 -1")


def test_diff_items_of_the_same_list_is_empty_and_of_nothing_removes_all() -> None:
    items = [{"kod": "MA", "betyg": "C"}, {"kod": "SV", "betyg": "A"}]

    assert diff_items(items, list(reversed(items)), key=lambda i: i["kod"]).empty
    assert diff_items(items, [], key=lambda i: i["kod"]).removed == items


def test_content_hash_ignores_key_order_but_not_values() -> None:
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1, "b": [1, 2]}) != content_hash({"a": 1, "b": [2, 1]})
