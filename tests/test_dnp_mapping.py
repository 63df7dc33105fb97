"""SS 12000 → DNP mapping: scope, Skolverket's ids, every rejection rule, the dependency cascade, and the
whole sandbox data set read over SS 12000 and accepted by the DNP sandbox."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from stdnum import luhn

from skolflow.connectors.dnp import rules
from skolflow.connectors.dnp.client import DnpClient
from skolflow.connectors.dnp.opendata import (
    DEFAULT_TEST_ACTIVITIES,
    OpenDataClient,
    activity_id,
    school_unit_id,
)
from skolflow.connectors.dnp.opendata import Activity as NationalTest
from skolflow.connectors.dnp.opendata_sandbox import create_app as create_opendata_app
from skolflow.connectors.dnp.sandbox import create_app as create_dnp_app
from skolflow.connectors.http import HttpSettings, RetryPolicy
from skolflow.connectors.ss12000 import Problem, Refused, SS12000Client
from skolflow.connectors.ss12000 import models as ss
from skolflow.connectors.ss12000.sandbox import create_app as create_ss12000_app
from skolflow.sandbox.dataset import TEACHER, Dataset, generate
from skolflow.sandbox.faults import FaultConfig
from skolflow.sandbox.runner import SandboxServer, with_faults
from skolflow.tasks.dnp_mapping import (
    SOURCE_REFUSED,
    Mapped,
    activity_record_id,
    map_to_dnp,
    select_test_activities,
    staff_record_id,
)
from tests.remote import MOCKED_REMOTE

DNP_API = yaml.safe_load((Path(__file__).resolve().parents[1] / "schemas" / "dnp" / "dnp-provisioning-api.yaml")
                         .read_text(encoding="utf-8"))
TODAY = dt.date(2026, 3, 2)
START = dt.date(2025, 8, 18)
META = ss.Meta(created=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), modified=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
CATALOGUE = [NationalTest(id=activity_id(name), displayName=name, activityType="Provaktivitet", schoolType=school_type,
                          schoolYear=year) for name, school_type, year in DEFAULT_TEST_ACTIVITIES]
TOKEN = "test-token"
FAST = HttpSettings(retry=RetryPolicy(attempts=4, backoff_base=0.001, backoff_max=0.01), door=MOCKED_REMOTE)


def uid() -> str:
    return str(uuid.uuid4())


def pnr(birth: str, serial: str = "123") -> str:
    return birth + serial + luhn.calc_check_digit(birth[2:] + serial)


def unit(code: str, *types: ss.SchoolType) -> ss.Organisation:
    return ss.Organisation(id=uid(), meta=META, displayName=f"Skolenhet {code}", organisationType="Skolenhet",
                           schoolUnitCode=code, schoolTypes=list(types))


NORRA = unit("11111111", "GR")
GYMNASIET = unit("22222222", "GY")
SARSKOLAN = unit("33333333", "GRS")
YRKESHOGSKOLAN = unit("44444444", "YH")
UNITS = [NORRA, GYMNASIET, SARSKOLAN, YRKESHOGSKOLAN]


def enrolment(at: ss.Organisation, school_type: ss.SchoolType, year: int | None, **changes: Any) -> ss.Enrolment:
    values: dict[str, Any] = {"enroledAt": ss.SchoolUnitReference(id=at.id), "schoolType": school_type,
                              "schoolYear": year, "startDate": START}
    return ss.Enrolment(**{**values, **changes})


def person(birth: str, given: str, family: str, email_type: ss.EmailType, domain: str, **changes: Any) -> ss.Person:
    person_id = uid()
    values: dict[str, Any] = {
        "id": person_id, "meta": META, "givenName": given, "familyName": family,
        # serial 001-999: Skatteverket never issues 000
        "civicNo": ss.CivicNo(value=pnr(birth, f"{uuid.UUID(person_id).int % 999 + 1:03d}")),
        "eduPersonPrincipalNames": [f"{person_id}@{domain}"], "securityMarking": "Ingen",
        "emails": [ss.Email(value=f"{given.lower()}.{person_id[:4]}@{domain}", type=email_type)]}
    return ss.Person(**{**values, **changes})


def student(at: ss.Organisation = NORRA, school_type: ss.SchoolType = "GR", year: int | None = 6,
            education_code: str | None = None, **changes: Any) -> ss.Person:
    return person("20130412", "Saga", "Nilsson", "Skola elev", "elev.sandvik.se",
                  **{"enrolments": [enrolment(at, school_type, year, educationCode=education_code)], **changes})


def staff(**changes: Any) -> ss.Person:
    return person("19800501", "Hugo", "Berg", "Skola personal", "sandvik.se", **changes)


def duty(of: ss.Person, at: ss.Organisation = NORRA, role: ss.DutyRole = TEACHER, **changes: Any) -> ss.Duty:
    values: dict[str, Any] = {"id": uid(), "meta": META, "person": ss.PersonReference(id=of.id),
                              "dutyAt": ss.OrganisationReference(id=at.id), "dutyRole": role, "startDate": START}
    return ss.Duty(**{**values, **changes})


def group(name: str, members: list[ss.Person], kind: ss.GroupType = "Undervisning", at: ss.Organisation = NORRA,
          school_type: ss.SchoolType | None = "GR", **changes: Any) -> ss.Group:
    values: dict[str, Any] = {
        "id": uid(), "meta": META, "displayName": name, "startDate": START, "groupType": kind,
        "schoolType": school_type, "organisation": ss.OrganisationReference(id=at.id),
        "groupMemberships": [ss.GroupMembership(person=ss.PersonReference(id=m.id), startDate=START) for m in members]}
    return ss.Group(**{**values, **changes})


def syllabus(code: str, school_type: ss.SchoolType = "GR", year: int | None = None) -> ss.Syllabus:
    subject = year is not None
    return ss.Syllabus(id=uid(), meta=META, schoolType=school_type, subjectName=code, official=True,
                       subjectDesignation=code if subject else None, courseCode=None if subject else code,
                       startSchoolYear=year, endSchoolYear=year)


def activity(name: str, groups: list[ss.Group], teachers: list[ss.Duty], taught: ss.Syllabus | None,
             at: ss.Organisation = NORRA, **changes: Any) -> ss.ActivityExpanded:
    values: dict[str, Any] = {
        "id": uid(), "meta": META, "displayName": name, "calendarEventsRequired": True, "startDate": START,
        "activityType": "Undervisning", "groups": [ss.GroupReference(id=g.id) for g in groups],
        "teachers": [ss.DutyAssignment(duty=ss.DutyReference(id=d.id)) for d in teachers],
        "organisation": ss.OrganisationReference(id=at.id),
        "syllabus": ss.SyllabusReference(id=taught.id) if taught else None,
        "embedded": ss.ActivityEmbedded(syllabus=taught) if taught else None}
    return ss.ActivityExpanded(**{**values, **changes})


@dataclass
class Source:
    """A small huvudman: a GR åk 6 class taught mathematics and a GY class taking MATMAT01a."""

    persons: list[ss.Person] = field(default_factory=list)
    duties: list[ss.Duty] = field(default_factory=list)
    groups: list[ss.Group] = field(default_factory=list)
    activities: list[ss.ActivityExpanded] = field(default_factory=list)

    def map(self, tests: tuple[str, ...] = ("MA åk 6", "MATMAT01a"), **options: Any) -> Mapped:
        return map_to_dnp(self.persons, self.duties, self.groups, self.activities, UNITS,
                          select_test_activities(CATALOGUE, tests), today=TODAY, **options)


@pytest.fixture
def school() -> Source:
    pupil, classmate = student(), student()
    gymnasist = student(GYMNASIET, "GY", 1, "NATNAT")
    teacher, gy_teacher = staff(), staff()
    teaching, gy_teaching = duty(teacher), duty(gy_teacher, GYMNASIET)
    klass, gy_klass = group("6A", [pupil, classmate], "Klass"), group("GY1", [gymnasist], "Klass", GYMNASIET, "GY")
    maths = group("6MA", [pupil, classmate])
    course = group("MATMAT01a", [gymnasist], at=GYMNASIET, school_type="GY")
    return Source(
        persons=[pupil, classmate, gymnasist, teacher, gy_teacher], duties=[teaching, gy_teaching],
        groups=[klass, gy_klass, maths, course],
        activities=[activity("Matematik åk 6", [maths], [teaching], syllabus("MA", year=6)),
                    activity("Matematik 1a", [course], [gy_teaching], syllabus("MATMAT01a", "GY"), GYMNASIET)],
    )


def codes(mapped: Mapped) -> Counter[tuple[str, str]]:
    return Counter((r.kind, r.code) for r in mapped.rejected)


def by_id(records: list[Any]) -> dict[str, Any]:
    return {r.id: r for r in records}


def conforms(definition: str, body: Any) -> None:
    jsonschema.validate(body, {**DNP_API, "$ref": f"#/components/schemas/{definition}"})


# --- the records and their ids ----------------------------------------------------------------------------------


def test_a_school_maps_to_dnp_records_with_skolverket_s_ids(school: Source) -> None:
    mapped = school.map()
    pupil, classmate, gymnasist, teacher, gy_teacher = school.persons
    assert mapped.rejected == [] and mapped.notes == []
    persons = by_id(mapped.persons)
    assert set(persons) == {p.id for p in school.persons}
    [gr] = persons[pupil.id].enrolments
    assert (gr.enroled_at.id, gr.school_type, gr.school_year) == (school_unit_id("11111111"), "GR", 6)
    [gy] = persons[gymnasist.id].enrolments
    assert (gy.enroled_at.id, gy.school_type, gy.education_code) == (school_unit_id("22222222"), "GY", "NATNAT")
    assert persons[pupil.id].edu_person_principal_names == pupil.eduPersonPrincipalNames
    assert persons[pupil.id].civic_no.value == (pupil.civicNo.value if pupil.civicNo else None)
    assert persons[teacher.id].enrolments is None
    assert [(e.value, e.type) for e in persons[teacher.id].emails or []] == [
        (e.value, "Skola personal") for e in teacher.emails or []]
    duties = by_id(mapped.duties)
    teaching = duties[school.duties[0].id]
    assert (teaching.person.id, teaching.duty_at.id, teaching.duty_role) == (
        teacher.id, school_unit_id("11111111"), TEACHER)
    groups = by_id(mapped.groups)
    assert set(groups) == {g.id for g in school.groups}
    assert {m.person.id for m in groups[school.groups[0].id].group_memberships or []} == {pupil.id, classmate.id}
    assert groups[school.groups[1].id].organisation.id == school_unit_id("22222222")
    activities = by_id(mapped.activities)
    maths, course = school.activities
    for source, test, group_id, duty_id, code in [(maths, "MA åk 6", school.groups[2].id, teaching.id, "11111111"),
                                                  (course, "MATMAT01a", school.groups[3].id, school.duties[1].id,
                                                   "22222222")]:
        record = activities[activity_record_id(source.id, activity_id(test))]
        assert record.parent_activity.id == activity_id(test)
        assert record.organisation.id == school_unit_id(code)
        assert [g.id for g in record.groups] == [group_id]
        assert [t.duty.id for t in record.teachers or []] == [duty_id]
        assert record.activity_type == "Undervisning" and record.display_name == source.displayName
    for kind, records in [("Person", mapped.persons), ("Duty", mapped.duties), ("Group", mapped.groups),
                          ("Activity", mapped.activities)]:
        for record in records:
            conforms(kind, record.to_wire())


def test_select_test_activities_by_name_or_id() -> None:
    chosen = select_test_activities(CATALOGUE, ["MA åk 6", activity_id("SVESVE01"), "MA åk 6"])
    assert [t.displayName for t in chosen] == ["MA åk 6", "SVESVE01"]
    with pytest.raises(ValueError, match="XX åk 1"):
        select_test_activities(CATALOGUE, ["MA åk 9", "XX åk 1"])


# --- each rule, per record ----------------------------------------------------------------------------------------


def _bad_checksum() -> str:
    good = pnr("20130412")
    return good[:-1] + str((int(good[-1]) + 1) % 10)


PERSON_CASES: dict[str, tuple[str, str, Any]] = {
    "checksum": (rules.CIVIC_NO_INVALID, "civicNo.value", lambda: student(civicNo=ss.CivicNo(value=_bad_checksum()))),
    "ten digits": (rules.CIVIC_NO_INVALID, "civicNo.value",
                   lambda: student(civicNo=ss.CivicNo(value=pnr("20130412")[2:]))),
    "no civicNo": (rules.CIVIC_NO_INVALID, "civicNo.value", lambda: student(civicNo=None)),
    "nationality": (rules.NATIONALITY_INVALID, "civicNo.nationality",
                    lambda: student(civicNo=ss.CivicNo(value=pnr("20130412"), nationality="NO"))),
    "no EPPN": (rules.EPPN_COUNT, "eduPersonPrincipalNames", lambda: student(eduPersonPrincipalNames=None)),
    "two EPPNs": (rules.EPPN_COUNT, "eduPersonPrincipalNames",
                  lambda: student(eduPersonPrincipalNames=["a1@elev.sandvik.se", "a2@elev.sandvik.se"])),
    "EPPN format": (rules.EPPN_FORMAT, "eduPersonPrincipalNames",
                    lambda: student(eduPersonPrincipalNames=["utan-domän"])),
    "school year missing": (rules.SCHOOL_YEAR_REQUIRED_CODE, "enrolments[0].schoolYear", lambda: student(year=None)),
    "school year 0": (rules.SCHOOL_YEAR_INVALID, "enrolments[0].schoolYear", lambda: student(year=0)),
    "education code": (rules.EDUCATION_CODE_REQUIRED_CODE, "enrolments[0].educationCode",
                       lambda: student(GYMNASIET, "GY", 2)),
}


@pytest.mark.parametrize("case", list(PERSON_CASES))
def test_each_person_rule_rejects_the_record_with_dnp_s_code(school: Source, case: str) -> None:
    code, attribute, make = PERSON_CASES[case]
    bad = make()
    school.persons.append(bad)
    mapped = school.map()
    assert [(r.kind, r.record_id, r.code, r.rule) for r in mapped.rejected] == [("persons", bad.id, code, attribute)]
    assert bad.id not in by_id(mapped.persons) and len(mapped.persons) == len(school.persons) - 1


def test_staff_need_a_school_e_mail(school: Source) -> None:
    teacher = school.persons[3]
    school.persons[3] = teacher.model_copy(update={"emails": [ss.Email(value="hugo@privat.se", type="Privat")]})
    mapped = school.map()
    assert [(r.record_id, r.code, r.rule) for r in mapped.rejected if r.kind == "persons"] == [
        (teacher.id, rules.EMAIL_REQUIRED, "emails")]
    assert by_id(mapped.persons)[school.persons[0].id].emails  # a student's e-mail is optional, and kept


def test_an_eppn_two_persons_share_is_sent_for_the_first_only(school: Source) -> None:
    first = school.persons[0]
    twin = student(eduPersonPrincipalNames=first.eduPersonPrincipalNames)
    school.persons.append(twin)
    mapped = school.map()
    assert [(r.record_id, r.code) for r in mapped.rejected] == [(twin.id, rules.EPPN_TAKEN)]
    assert first.id in by_id(mapped.persons)


def test_a_unit_skolverket_does_not_know_rejects_what_is_there(school: Source) -> None:
    mapped = school.map(known_school_units={school_unit_id("22222222")})
    rejected = {(r.kind, r.record_id): r.code for r in mapped.rejected}
    assert rejected[("persons", school.persons[0].id)] == rules.SCHOOL_UNIT_UNKNOWN
    assert rejected[("duties", school.duties[0].id)] == rules.SCHOOL_UNIT_UNKNOWN
    assert rejected[("groups", school.groups[0].id)] == rules.SCHOOL_UNIT_UNKNOWN
    assert school.persons[2].id in by_id(mapped.persons)  # the gymnasium is known
    assert school.persons[3].id in by_id(mapped.persons)  # staff carry no unit: their duty does


def test_a_role_dnp_does_not_take_rejects_the_duty(school: Source) -> None:
    retired = duty(school.persons[3], role="Förskolechef")  # in SS 12000, deprecated; not in DNP's Code_DutyRole
    school.duties.append(retired)
    mapped = school.map()
    assert [(r.kind, r.record_id, r.code, r.rule) for r in mapped.rejected] == [
        ("duties", retired.id, rules.DUTY_ROLE_INVALID, "dutyRole")]


def test_a_group_without_a_school_type_is_rejected(school: Source) -> None:
    school.groups[0] = school.groups[0].model_copy(update={"schoolType": None})
    mapped = school.map()
    assert [(r.kind, r.record_id, r.code) for r in mapped.rejected] == [
        ("groups", school.groups[0].id, rules.SCHOOL_TYPE_INVALID)]


# --- dependencies ---------------------------------------------------------------------------------------------------


def test_a_rejected_teacher_takes_the_duty_with_them_and_leaves_the_activity(school: Source) -> None:
    teacher = school.persons[3]
    school.persons[3] = teacher.model_copy(update={"emails": None})
    mapped = school.map()
    rejected = {(r.kind, r.record_id): r for r in mapped.rejected}
    assert rejected[("persons", teacher.id)].code == rules.EMAIL_REQUIRED
    cascade = rejected[("duties", school.duties[0].id)]
    assert (cascade.code, cascade.rule) == (rules.PERSON_MISSING, "person.id") and "avvisades" in cascade.message
    maths = by_id(mapped.activities)[activity_record_id(school.activities[0].id, activity_id("MA åk 6"))]
    assert maths.teachers is None  # still sent, for its students; without the teacher DNP does not hold
    assert [n.record_id for n in mapped.notes if school.duties[0].id in n.message] == [maths.id]


def test_a_rejected_student_s_membership_is_dropped_with_a_note(school: Source) -> None:
    pupil = school.persons[0]
    school.persons[0] = pupil.model_copy(update={"eduPersonPrincipalNames": None})
    mapped = school.map()
    groups = by_id(mapped.groups)
    for group_id in (school.groups[0].id, school.groups[2].id):  # the class and the teaching group
        assert {m.person.id for m in groups[group_id].group_memberships or []} == {school.persons[1].id}
    notes = [n for n in mapped.notes if n.kind == "groups"]
    assert sorted(n.record_id for n in notes) == sorted([school.groups[0].id, school.groups[2].id])
    assert all("20130412-****" in n.message for n in notes)
    assert codes(mapped) == Counter({("persons", rules.EPPN_COUNT): 1})


def test_an_activity_whose_groups_were_all_rejected_is_rejected(school: Source) -> None:
    maths = school.groups[2]
    school.groups[2] = maths.model_copy(update={"schoolType": None})
    mapped = school.map()
    record_id = activity_record_id(school.activities[0].id, activity_id("MA åk 6"))
    rejected = [(r.kind, r.record_id, r.code, r.rule) for r in mapped.rejected]
    assert rejected == [("groups", maths.id, rules.SCHOOL_TYPE_INVALID, "schoolType"),
                        ("activities", record_id, rules.GROUP_MISSING, "groups[0].id")]
    assert "grupper avvisades" in mapped.rejected[-1].message
    assert record_id not in by_id(mapped.activities) and len(mapped.activities) == 1


def test_an_activity_keeps_the_groups_that_were_not_rejected(school: Source) -> None:
    other = student()
    broken = group("6MA2", [other], school_type=None)
    school.persons.append(other)
    school.groups.append(broken)
    school.activities[0] = school.activities[0].model_copy(update={
        "groups": [*school.activities[0].groups, ss.GroupReference(id=broken.id)]})
    mapped = school.map()
    maths = by_id(mapped.activities)[activity_record_id(school.activities[0].id, activity_id("MA åk 6"))]
    assert [g.id for g in maths.groups] == [school.groups[2].id]
    assert [n.record_id for n in mapped.notes if broken.id in n.message] == [maths.id]


# --- scope ----------------------------------------------------------------------------------------------------------


def test_only_what_dnp_is_for_is_sent_and_nothing_else_is_called_rejected(school: Source) -> None:
    sarskola = student(SARSKOLAN, "GRS", 6)  # grundsärskola is no DNP school type
    left = student(enrolments=[enrolment(NORRA, "GR", 6, endDate=dt.date(2025, 12, 31))])
    cancelled = student(enrolments=[enrolment(NORRA, "GR", 6, cancelled=True)])
    yh_teacher, former = staff(), staff()
    mentor = group("Mentorsgrupp", [school.persons[0]], "Mentor")
    english = group("6EN", [school.persons[0]])  # taught, but no chosen test
    school.persons += [sarskola, left, cancelled, yh_teacher, former]
    school.duties += [duty(yh_teacher, YRKESHOGSKOLAN), duty(former, endDate=dt.date(2025, 12, 31))]
    school.groups += [mentor, english, group("6S", [sarskola], "Klass", SARSKOLAN, "GRS")]
    school.activities += [
        activity("Engelska åk 6", [english], [school.duties[0]], syllabus("EN", year=6)),
        activity("Mentorstid", [mentor], [school.duties[0]], syllabus("MA", year=6), activityType="Elevaktivitet"),
        activity("Matematik utan kursplan", [school.groups[2]], [school.duties[0]], None),
    ]
    mapped = school.map()
    assert mapped.rejected == [] and mapped.notes == []
    assert {p.id for p in mapped.persons} == {p.id for p in school.persons[:5]}
    assert {d.id for d in mapped.duties} == {d.id for d in school.duties[:2]}
    assert {g.id for g in mapped.groups} == {g.id for g in school.groups[:4]}
    assert len(mapped.activities) == 2


def test_school_units_can_be_chosen(school: Source) -> None:
    mapped = school.map(include_units={"22222222"})
    assert {p.id for p in mapped.persons} == {school.persons[2].id, school.persons[4].id}
    assert [d.id for d in mapped.duties] == [school.duties[1].id]
    assert {g.id for g in mapped.groups} == {school.groups[1].id, school.groups[3].id}
    assert [a.parent_activity.id for a in mapped.activities] == [activity_id("MATMAT01a")]
    with pytest.raises(ValueError, match="99999999"):
        school.map(include_units={"22222222", "99999999"})


def test_a_student_s_record_holds_every_dnp_enrolment_whichever_unit_is_chosen(school: Source) -> None:
    both = student(enrolments=[enrolment(NORRA, "GR", 9), enrolment(GYMNASIET, "GY", 1, educationCode="SAMBET")])
    school.persons.append(both)
    mapped = school.map(include_units={"11111111"})
    record = by_id(mapped.persons)[both.id]
    assert {(e.enroled_at.id, e.school_type) for e in record.enrolments or []} == {
        (school_unit_id("11111111"), "GR"), (school_unit_id("22222222"), "GY")}


def test_an_activity_maps_to_the_test_of_its_subject_and_its_students_year(school: Source) -> None:
    ninth = student(year=9)
    mixed = group("MA 6/9", [school.persons[0], ninth])
    school.persons.append(ninth)
    school.groups.append(mixed)
    taught = syllabus("MA", year=6)
    both_years = activity("Matematik 6 och 9", [mixed], [school.duties[0]], taught.model_copy(
        update={"endSchoolYear": 9}))
    school.activities.append(both_years)
    mapped = school.map(tests=("MA åk 3", "MA åk 6", "MA åk 9", "SV åk 6", "MATMAT01a", "MATMAT02a"))
    parents = Counter(a.parent_activity.id for a in mapped.activities)
    assert parents == {activity_id("MA åk 6"): 2, activity_id("MA åk 9"): 1, activity_id("MATMAT01a"): 1}
    ids = {a.id for a in mapped.activities}
    assert {activity_record_id(both_years.id, activity_id("MA åk 6")),
            activity_record_id(both_years.id, activity_id("MA åk 9"))} <= ids
    assert len(ids) == len(mapped.activities)


def test_a_student_who_is_also_staff_becomes_two_dnp_persons(school: Source) -> None:
    both = student(GYMNASIET, "GY", 3, "NATNAT", eduPersonPrincipalNames=["s1@elev.sandvik.se", "p1@sandvik.se"],
                   emails=[ss.Email(value="s1@elev.sandvik.se", type="Skola elev"),
                           ss.Email(value="p1@sandvik.se", type="Skola personal")])
    assistant = duty(both, GYMNASIET, "Lärarassistent")
    school.persons.append(both)
    school.duties.append(assistant)
    mapped = school.map(eppn_domains={"student": "elev.sandvik.se", "staff": "sandvik.se"})
    persons = by_id(mapped.persons)
    as_student, as_staff = persons[both.id], persons[staff_record_id(both.id)]
    assert as_student.edu_person_principal_names == ["s1@elev.sandvik.se"] and as_student.enrolments
    assert as_staff.edu_person_principal_names == ["p1@sandvik.se"] and not as_staff.enrolments
    assert [e.value for e in as_staff.emails or []] == ["p1@sandvik.se"]
    assert by_id(mapped.duties)[assistant.id].person.id == as_staff.id
    assert mapped.rejected == []
    unsplit = school.map()  # without the role domains, both records get both EPPNs, which DNP refuses
    assert codes(unsplit) == Counter({("persons", rules.EPPN_COUNT): 2, ("duties", rules.PERSON_MISSING): 1})


def test_an_eppn_made_of_the_name_is_sent_with_dnp_s_warning_noted(school: Source) -> None:
    named = student(eduPersonPrincipalNames=["nilsaga@elev.sandvik.se"])
    school.persons.append(named)
    mapped = school.map()
    assert named.id in by_id(mapped.persons) and mapped.rejected == []
    assert [n.record_id for n in mapped.notes] == [named.id]
    assert mapped.notes[0].message.startswith(f"DNP varnar {rules.EPPN_GUIDELINE_WARNING}")


def test_no_rejection_or_note_holds_a_full_personnummer(school: Source) -> None:
    for case in PERSON_CASES.values():
        school.persons.append(case[2]())
    school.persons[3] = school.persons[3].model_copy(update={"emails": None})
    mapped = school.map()
    numbers = {p.civicNo.value for p in school.persons if p.civicNo}
    shown = " ".join(str(value) for entry in [*mapped.rejected, *mapped.notes] for value in vars(entry).values())
    assert len(mapped.rejected) >= len(PERSON_CASES)
    assert not any(number in shown or number[2:] in shown for number in numbers)
    assert re.search(r"\d{8}-\*{4}", shown)  # persons are named by masked number


# --- the whole sandbox data set, read over SS 12000 and accepted by DNP -------------------------------------------


@pytest.fixture
def sandboxes() -> Iterator[tuple[Dataset, dict[str, str]]]:
    data = generate(students=120, schools=6, seed=4)
    with SandboxServer() as server:
        urls = {
            "ss12000": server.start("ss12000", with_faults(create_ss12000_app(data, token=TOKEN, page_size_max=40),
                                                           "ss12000", FaultConfig())),
            "dnp": server.start("dnp", with_faults(create_dnp_app(data, token=TOKEN, job_delay_seconds=0.05), "dnp",
                                                   FaultConfig())),
            "opendata": server.start("dnp-opendata", with_faults(create_opendata_app(data), "dnp-opendata",
                                                                 FaultConfig())),
        }
        yield data, urls


async def _map_source(data: Dataset, urls: dict[str, str]) -> Mapped:
    async with SS12000Client(urls["ss12000"], TOKEN, FAST) as source:
        persons = [p async for p in source.persons()]
        duties = [d async for d in source.duties(end_date_on_or_after=dt.date.today())]
        groups = [g async for g in source.groups(group_type=["Klass", "Undervisning"])]
        activities = [a async for a in source.activities(expand=["syllabus"])]
        units = [o async for o in source.organisations(organisation_type="Skolenhet")]
    async with OpenDataClient(urls["opendata"], FAST) as opendata:
        catalogue = await opendata.activities()
        huvudman = await opendata.organisation_by_code(data.huvudman_orgnr, expand_school_units=True)
    assert huvudman is not None
    known = {u.id for u in huvudman.schoolUnits or []}
    return map_to_dnp(persons, duties, groups, activities, units, select_test_activities(
        catalogue, [name for name, _, _ in DEFAULT_TEST_ACTIVITIES]), known_school_units=known)


async def _provision(url: str, mapped: Mapped) -> dict[str, Counter[str]]:
    outcomes: dict[str, Counter[str]] = {}
    async with DnpClient(url, TOKEN, http=FAST) as dnp:
        for kind, records in [("persons", mapped.persons), ("duties", mapped.duties), ("groups", mapped.groups),
                              ("activities", mapped.activities)]:
            outcomes[kind] = Counter()
            for job_id in await dnp.submit_chunked(kind, records):  # type: ignore[arg-type]
                answer = await dnp.wait(kind, job_id, timeout=30, interval=0.05)  # type: ignore[arg-type]
                outcomes[kind].update(r.response.status for r in answer.responses)
    return outcomes


async def test_the_whole_sandbox_data_set_is_accepted_by_dnp(sandboxes: tuple[Dataset, dict[str, str]]) -> None:
    data, urls = sandboxes
    mapped = await _map_source(data, urls)
    assert mapped.rejected == [] and mapped.notes == []
    sent = {"persons": len(mapped.persons), "duties": len(mapped.duties), "groups": len(mapped.groups),
            "activities": len(mapped.activities)}
    assert all(sent.values())
    eligible = [p for p in data.students() if p.school_form in ("GR", "GY")]
    assert sent["persons"] == len(eligible) + sum(1 for d in data.duties if any(
        u.id == d.school_unit_id and set(u.school_forms) & {"GR", "GY"} for u in data.school_units))
    outcomes = await _provision(urls["dnp"], mapped)
    assert outcomes == {kind: Counter({"Success": count}) for kind, count in sent.items()}


async def test_what_the_source_gets_wrong_is_rejected_and_the_rest_accepted(
        sandboxes: tuple[Dataset, dict[str, str]]) -> None:
    data, urls = sandboxes
    pupil = next(p for p in data.students() if p.school_form == "GR")
    gymnasist = next(p for p in data.students() if p.school_form == "GY")
    teacher = next(d for d in data.duties if d.role == TEACHER and any(
        d.id in a.teacher_duty_ids and a.school_form == "GR" for a in data.activities))
    data.change_person(pupil.id, school_year=None)
    data.change_person(gymnasist.id, programme=None)
    data.change_person(teacher.person_id, email="")
    mapped = await _map_source(data, urls)
    assert {(r.kind, r.record_id, r.code) for r in mapped.rejected} == {
        ("persons", pupil.id, rules.SCHOOL_YEAR_REQUIRED_CODE),
        ("persons", gymnasist.id, rules.EDUCATION_CODE_REQUIRED_CODE),
        ("persons", teacher.person_id, rules.EMAIL_REQUIRED),
        ("duties", teacher.id, rules.PERSON_MISSING),
    }
    assert any(n.kind == "groups" for n in mapped.notes) and any(n.kind == "activities" for n in mapped.notes)
    outcomes = await _provision(urls["dnp"], mapped)
    assert all(set(counts) == {"Success"} for counts in outcomes.values())
    assert sum(outcomes["persons"].values()) == len(mapped.persons)


def test_ids_derived_by_skolflow_are_stable_and_distinct() -> None:
    person_id, activity_source = uid(), uid()
    assert staff_record_id(person_id) == staff_record_id(person_id) != person_id
    assert activity_record_id(activity_source, activity_id("MA åk 6")) != activity_record_id(
        activity_source, activity_id("MA åk 9"))


# --- the source as an imperfect server sends it (issue 12) --------------------------------------------------------


def test_records_the_source_refused_are_rejected_in_their_step_with_id_field_and_rule(school: Source) -> None:
    pupil, classmate, gymnasist, teacher, gy_teacher = school.persons
    school.persons.remove(classmate)  # refused by the SS 12000 client: a member of 6A and 6MA
    school.persons.remove(teacher)  # refused too: the duty teaching 6MA is still read
    refused = [Refused("/persons", classmate.id, (Problem("securityMarking", "literal_error"),)),
               Refused("/persons", teacher.id, (Problem("civicNo.value", "identity_check_digit"),
                                                Problem("givenName", "missing"))),
               Refused("/groups", uid(), (Problem("groupType", "literal_error"),)),
               Refused("/activities", uid(), (Problem("activityType", "literal_error"),)),
               Refused("/organisations", uid(), (Problem("organisationType", "literal_error"),))]

    mapped = school.map(refused=refused)

    source_rejections = [(r.kind, r.record_id, r.rule) for r in mapped.rejected if r.code == SOURCE_REFUSED]
    assert source_rejections == [("persons", classmate.id, "securityMarking"), ("persons", teacher.id, "civicNo.value"),
                                 ("persons", teacher.id, "givenName"), ("groups", refused[2].record_id, "groupType"),
                                 ("activities", refused[3].record_id, "activityType"),
                                 ("persons", refused[4].record_id, "organisationType")]
    assert mapped.rejected[1].message == (f"SS 12000-posten {teacher.id} kan inte läsas: civicNo.value: "
                                          "identity_check_digit")
    assert [r.masked_label for r in mapped.rejected][:2] == [f"SS 12000-post {classmate.id}",
                                                             f"SS 12000-post {teacher.id}"]
    # Its dependants, as DNP would judge them: the refused teacher's duty, the refused pupil's memberships.
    [duty_rejection] = [r for r in mapped.rejected if r.kind == "duties"]
    assert (duty_rejection.record_id, duty_rejection.code) == (school.duties[0].id, rules.PERSON_MISSING)
    assert duty_rejection.message.endswith("(Personen avvisades före överföringen.)")
    dropped = [n for n in mapped.notes if n.kind == "groups"]
    assert len(dropped) == 2 and all(f"SS 12000-post {classmate.id}" in n.message for n in dropped)
    assert {p.id for p in mapped.persons} == {pupil.id, gymnasist.id, gy_teacher.id}
    assert len(mapped.activities) == 2  # 6MA still goes, to its pupil, without the refused teacher's duty
    maths = by_id(mapped.activities)[activity_record_id(school.activities[0].id, activity_id("MA åk 6"))]
    assert maths.teachers is None


def test_a_teacher_given_as_a_person_is_their_duty_at_the_activity_s_unit(school: Source) -> None:
    maths, course = school.activities
    teacher, gy_teacher = school.persons[3], school.persons[4]  # gy_teacher has a duty at Gymnasiet only
    as_persons = [ss.DutyAssignment(person=ss.PersonReference(id=teacher.id)),
                  ss.DutyAssignment(person=ss.PersonReference(id=gy_teacher.id)), ss.DutyAssignment()]
    school.activities[0] = maths.model_copy(update={"teachers": as_persons})
    principal = duty(teacher, role="Rektor")  # a second duty at the unit: the teacher's is the one taken
    school.duties.insert(0, principal)

    mapped = school.map()

    record = by_id(mapped.activities)[activity_record_id(maths.id, activity_id("MA åk 6"))]
    assert [t.duty.id for t in record.teachers or []] == [school.duties[1].id]
    refused = [(r.kind, r.record_id, r.code, r.rule) for r in mapped.rejected]
    assert refused == [("activities", maths.id, SOURCE_REFUSED, "teachers[1].person.id"),
                       ("activities", maths.id, SOURCE_REFUSED, "teachers[2]")]
    assert gy_teacher.id in mapped.rejected[0].message and "utan den läraren" in mapped.rejected[0].message
    assert len(mapped.activities) == 2 and principal.id in by_id(mapped.duties)


def test_an_activity_read_without_calendar_events_required_maps_as_any_other(school: Source) -> None:
    maths = school.activities[0]
    wire = {key: value for key, value in maths.to_wire().items() if key != "calendarEventsRequired"}
    school.activities[0] = ss.ActivityExpanded.model_validate(wire, context=ss.READ_FROM_SOURCE)

    mapped = school.map()

    assert mapped.rejected == []
    assert activity_record_id(maths.id, activity_id("MA åk 6")) in by_id(mapped.activities)
