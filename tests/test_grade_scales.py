"""Every grade-scale rule of seed 004 (Betyg API 1.1), accepted and refused values, through ``check_grade``.

The rule table below is the seed's list, one row per line of it, so a change to the scales that
drifts from the contract fails here by name.
"""

from __future__ import annotations

import pytest

from skolflow.connectors.beda.grade_scales import check_grade

COURSE = "MATMAT01a"
SUBJECT = "MA"
GY_WORK = "GYARBF"  # gymnasiearbetet, Barn- och fritidsprogrammet
GYSAR_WORK = "GYARIND"
ORIENTATION = "ORIENT1"  # an orienteringskurs, graded with a betygsliknande omdöme
EVERY_VALUE = ("A", "B", "C", "D", "E", "F", "-", "***", "1", "VG", "G", "IG", "MVG", "X", "a", "")

# (seed 004 line, skolform, code, betygsliknande omdöme, allowed values)
SCALES = [
    ("Grundskolan: A/B/C/D/E/F/-", "GR", SUBJECT, False, "A B C D E F -"),
    ("Gymnasieskolan: A/B/C/D/E/F/-", "GY", COURSE, False, "A B C D E F -"),
    ("Gymnasieskolan: gymnasiearbetet enbart E/F/-", "GY", GY_WORK, False, "E F -"),
    # The document does not say which GYSAR curriculum a course belongs to: either scale is accepted.
    ("Gymnasiesärskolan (nuvarande) A/B/C/D/E/***/- and (2002) VG/G/***", "GYSAR", COURSE, False,
     "A B C D E *** - VG G"),
    ("Gymnasiesärskolan (nuvarande): gymnasiearbetet enbart E/***/-", "GYSAR", GYSAR_WORK, False, "E *** -"),
    ("Grundsärskolan: A/B/C/D/E/1", "GRSAR", SUBJECT, False, "A B C D E 1"),
    ("SFI: A/B/C/D/E/F/-", "SFI", "SFIKURSD", False, "A B C D E F -"),
    ("Komvux: A/B/C/D/E/F/-", "VUX", COURSE, False, "A B C D E F -"),
    ("Särvux: A/B/C/D/E/F/-", "SARVUX", COURSE, False, "A B C D E F -"),
    ("Komvux: betygsliknande omdöme enbart G/IG", "VUX", ORIENTATION, True, "G IG"),
    ("Särvux: betygsliknande omdöme enbart G/IG", "SARVUX", ORIENTATION, True, "G IG"),
    ("Yrkeshögskolan: VG/G/IG", "YH", "YHPROG01", False, "VG G IG"),
]

CASES = [
    pytest.param(form, code, assessment, value, value in allowed.split(), id=f"{form}-{code}-{value or 'empty'}")
    for _, form, code, assessment, allowed in SCALES
    for value in EVERY_VALUE
]


@pytest.mark.parametrize(("form", "code", "assessment", "value", "accepted"), CASES)
def test_each_scale_accepts_exactly_its_values(form: str, code: str, assessment: bool, value: str,
                                               accepted: bool) -> None:
    rules = [broken.rule for broken in check_grade(form, code, value, assessment)]

    assert rules == ([] if accepted else ["grade-scale"])


@pytest.mark.parametrize(("form", "code", "value"), [
    ("GY", COURSE, "VG"),  # the 1994 scale is gone from gymnasieskolan
    ("GY", GY_WORK, "A"),  # gymnasiearbetet is only E/F/-
    ("GY", GY_WORK, "C"),
    ("YH", COURSE, "A"),
    ("YH", COURSE, "-"),
    ("GRSAR", SUBJECT, "F"),  # grundsärskolan has no F …
    ("GRSAR", SUBJECT, "-"),  # … and no "-"
    ("GR", SUBJECT, "1"),
    ("GYSAR", GYSAR_WORK, "A"),  # gymnasiearbetet of gymnasiesärskolan is only E/***/-
    ("GYSAR", GYSAR_WORK, "VG"),  # and the 2002 curriculum had no gymnasiearbete
    ("GYSAR", COURSE, "F"),
    ("SFI", COURSE, "G"),
])
def test_named_refusals_say_which_values_are_allowed(form: str, code: str, value: str) -> None:
    [broken] = check_grade(form, code, value)

    assert (broken.rule, broken.field) == ("grade-scale", "betyg")
    assert repr(value) in broken.message and "tillåtna:" in broken.message


def test_gymnasiearbete_message_names_it_and_its_scale() -> None:
    [broken] = check_grade("GY", GY_WORK, "A")

    assert "gymnasiearbetet" in broken.message and broken.message.endswith("tillåtna: -/E/F")


@pytest.mark.parametrize("form", ["GR", "GY", "GYSAR", "GRSAR", "SFI", "YH"])
@pytest.mark.parametrize("value", ["G", "IG"])
def test_betygsliknande_omdome_is_refused_outside_komvux_and_sarvux(form: str, value: str) -> None:
    [broken] = check_grade(form, ORIENTATION, value, assessment=True)

    assert (broken.rule, broken.field) == ("assessment-school-form", "omdome")


@pytest.mark.parametrize("form", ["VUX", "SARVUX"])
def test_a_grade_on_the_course_scale_is_not_an_omdome(form: str) -> None:
    assert [b.rule for b in check_grade(form, ORIENTATION, "A", assessment=True)] == ["grade-scale"]
    assert check_grade(form, ORIENTATION, "A") == []


@pytest.mark.parametrize("form", ["GR", "GRSAR", "SFI", "VUX", "SARVUX", "YH"])
def test_gymnasiearbete_only_exists_in_gymnasieskolan_and_gymnasiesarskolan(form: str) -> None:
    rules = [b.rule for b in check_grade(form, GY_WORK, "E")]

    assert rules[0] == "course-school-form"


def test_an_unknown_school_form_is_reported_as_such_and_nothing_else() -> None:
    assert [(b.rule, b.field) for b in check_grade("GYSAR2002", COURSE, "VG")] == [("school-form", "skolform")]


@pytest.mark.parametrize("code", ["matmat01a", "M", "MAT MAT01", "MATMAT01aaaa", "1MAT"])
def test_course_codes_of_the_wrong_shape_are_refused(code: str) -> None:
    assert [b.rule for b in check_grade("GY", code, "A")] == ["course-code"]
