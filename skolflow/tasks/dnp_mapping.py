"""SS 12000 → DNP: what of a huvudman's source goes to Skolverket's test platform, and what DNP would refuse.

Pure functions: no Prefect, no HTTP. Given what the SS 12000 client read (persons, duties, groups,
activities with their syllabus embedded, the huvudman's school units) and the national test activities
chosen from DNP's open-data catalogue, :func:`map_to_dnp` builds the DNP records and judges each with
:mod:`skolflow.connectors.dnp.rules`, the code the DNP sandbox answers with, so that a record DNP
would refuse is rejected here, before anything is sent, with DNP's code and message.

What is in scope (the rest is simply not DNP's business, and is neither sent nor reported):

- **School units**: those selected (by skolenhetskod; all by default) whose school types include one
  of DNP's (GR, SP, SAM, GY, VUXGY). Every reference to a unit is Skolverket's id,
  ``school_unit_id(skolenhetskod)``.
- **Students**: persons with a current, not cancelled enrolment of a DNP school type at a selected unit.
  Their record carries every such enrolment at any of the huvudman's units (DNP replaces a person
  whole, so a record must be complete whichever units a run selects); ``schoolYear`` and
  ``educationCode`` as the source has them, judged by DNP's rules.
- **Staff**: persons with a current duty at a selected unit; every such duty (any role) is sent.
- **EPPN**: the source's ``eduPersonPrincipalNames`` — the identifier the municipality's login
  service asserts, so skolflow never invents one. DNP takes exactly one per person, and a student's
  must differ from a staff member's: with ``eppn_domains`` ({"student": "elev.kommun.se", "staff":
  "kommun.se"}) only the EPPNs of the role's domain are used. A person who is both a student and
  staff becomes two DNP persons (DNP's rule that a duty's person is not a student demands it): the
  student keeps the SS 12000 id, the staff record gets :func:`staff_record_id`.
- **E-mail**: DNP takes only the types "Skola elev" and "Skola personal"; staff must have one.
- **Groups**: every current ``Klass`` of a DNP school type at a selected unit, and the groups of the
  activities sent (DNP wants only teaching groups that take a national test). Memberships of
  students sent here are kept; a rejected student's membership is dropped with a note.
- **Activities**: an SS 12000 activity of type ``Undervisning`` at a selected unit maps to a chosen
  test activity when its syllabus is that test's subject (``subjectDesignation``, for GR, SP and SAM,
  whose tests are "MA åk 6": subject + school year) or course (``courseCode``, for GY and VUXGY:
  "MATMAT01a") in the test's school type, and it has groups with students enrolled in that school
  type (and school year). It becomes one DNP Activity per (activity, test activity) — DNP reads all
  teachers of an activity as teaching all its groups, which is what the source activity says — with
  only those groups, its teachers' duties, ``parentActivity`` the test activity's id and the id
  :func:`activity_record_id`.

Dependencies, as DNP would judge them once the earlier steps' rejections are missing there: a duty
whose person was rejected is rejected (DNP's rule: the person must exist); an activity loses a
rejected group or teacher with a note, and is rejected when none of its groups is left.

The source as read (DESIGN §5, tolerant readers):

- A record the SS 12000 client could not read (``refused``: id, field, rule) is rejected in its step with
  :data:`SOURCE_REFUSED`, whatever the run's selection (its unit cannot be read either); a school unit's in the
  first step, whose users are the unit's. Its dependants follow the rules above: a refused person's duty is
  rejected, a refused student's membership dropped with a note.
- A teacher given as ``{person}`` instead of ``{duty}`` is that person's current duty at the activity's
  school unit (a ``Lärare`` duty first, if there are several). Without one, the teacher link is refused on
  its own — rejected under the source activity's id, naming ``teachers[i].person.id`` — and the activity is
  sent without that teacher.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from skolflow.connectors.dnp import rules
from skolflow.connectors.dnp.client import Kind
from skolflow.connectors.dnp.models import (
    Activity,
    CivicNo,
    Duty,
    DutyAssignment,
    Email,
    Enrolment,
    ExternalIdentifier,
    Group,
    GroupMembership,
    ObjectReference,
    Person,
)
from skolflow.connectors.dnp.opendata import Activity as NationalTest
from skolflow.connectors.dnp.opendata import school_unit_id
from skolflow.connectors.ss12000 import Refused
from skolflow.connectors.ss12000 import models as ss
from skolflow.errors import SafeError
from skolflow.identity import mask

Role = Literal["student", "staff"]

EMAIL_TYPES: dict[Role, str] = {"student": "Skola elev", "staff": "Skola personal"}
ROLE_LABELS: dict[Role, str] = {"student": "elev", "staff": "personal"}
GROUP_TYPES = frozenset(rules.GROUP_TYPES)
CLASS = "Klass"
EDUID_CONTEXT = "https://eduid.se"  # the only externalIdentifier context DNP keeps (staff's eduID EPPN)
# skolflow's code for a source record (or an activity's teacher link) that could not be read as SS 12000 says.
SOURCE_REFUSED = "SF-KÄLLA"
# The step a refused record of each SS 12000 endpoint is rejected in.
STEP_OF_PATH: dict[str, Kind] = {"/persons": "persons", "/organisations": "persons", "/duties": "duties",
                                 "/groups": "groups", "/activities": "activities"}
TEACHING_ROLE = "Lärare"
# Fixed, so that the ids skolflow derives are the same in every run.
NAMESPACE = uuid.UUID("3b1f6f0e-4c2d-5a8e-9d6b-0d4e50d1a2b3")


class SelectionError(SafeError, ValueError):
    """A run's selection names a school unit the huvudman lacks or a test DNP's catalogue lacks.

    Its message holds only the codes and names the user gave, so it reaches the run's state as it is.
    """


@dataclass(frozen=True)
class Rejected:
    """One rule a record breaks, so DNP would refuse it: DNP's ``code``, the attribute (``rule``), DNP's text.

    A record that breaks several rules has one entry per rule. ``masked_label`` names the record for
    a person reading the table (a masked personnummer and role, a group's or activity's name).
    """

    kind: Kind
    record_id: str
    masked_label: str
    code: str
    rule: str
    message: str


@dataclass(frozen=True)
class Note:
    """Something sent differently from the source, or a warning DNP will give; nothing refused."""

    kind: Kind
    record_id: str
    masked_label: str
    message: str


@dataclass
class Mapped:
    """The records to send, in DNP's order of steps, and what was rejected before sending."""

    persons: list[Person] = field(default_factory=list)
    duties: list[Duty] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def rejected_ids(self, kind: Kind) -> set[str]:
        return {r.record_id for r in self.rejected if r.kind == kind}


def staff_record_id(person_id: str) -> str:
    """The DNP id of the staff record of a person who is also a student (the student keeps the SS 12000 id)."""
    return str(uuid.uuid5(NAMESPACE, f"staff:{person_id}"))


def activity_record_id(activity_id: str, test_activity_id: str) -> str:
    """The DNP id of the Activity made of an SS 12000 activity for one test activity."""
    return str(uuid.uuid5(NAMESPACE, f"activity:{activity_id}:{test_activity_id}"))


def subject_or_course(test: NationalTest) -> str:
    """The subject (``MA`` of "MA åk 6") of a school-year test, or the course code of a course test."""
    return test.displayName.split()[0] if test.schoolYear is not None else test.displayName


def select_test_activities(catalogue: Iterable[NationalTest], wanted: Iterable[str]) -> list[NationalTest]:
    """The catalogue's test activities named by display name or id; SelectionError names any it lacks."""
    entries = list(catalogue)
    found: dict[str, NationalTest] = {}
    unknown: list[str] = []
    for name in wanted:
        match = next((a for a in entries if name in (a.displayName, a.id)), None)
        if match is None:
            unknown.append(name)
        else:
            found.setdefault(match.id, match)
    if unknown:
        raise SelectionError(f"not test activities of DNP's catalogue: {', '.join(unknown)}")
    return list(found.values())


def _current(start: dt.date | None, end: dt.date | None, today: dt.date) -> bool:
    return (start is None or start <= today) and (end is None or end >= today)


def _eppns(person: ss.Person, role: Role, domains: Mapping[Role, str]) -> list[str]:
    names = list(person.eduPersonPrincipalNames or [])
    domain = domains.get(role)
    if domain:
        names = [n for n in names if n.lower().endswith("@" + domain.lower())]
    return names


class _Mapping:
    """One mapping run: the source indexed, the scope decided, records judged step by step."""

    def __init__(self, school_units: Iterable[ss.Organisation], include_units: Collection[str] | None,
                 known_school_units: Collection[str] | None, test_activities: Sequence[NationalTest],
                 eppn_domains: Mapping[Role, str], today: dt.date):
        coded = [unit for unit in school_units if unit.schoolUnitCode]
        codes = {unit.schoolUnitCode for unit in coded}
        missing = sorted(set(include_units or ()) - codes)
        if missing:
            raise SelectionError(f"not school units of the huvudman: {', '.join(missing)}")
        # Every coded unit a DNP school type can be at: what a student's enrolments may name.
        self.dnp_units = {unit.id: school_unit_id(unit.schoolUnitCode or "") for unit in coded
                          if unit.schoolTypes is None or set(unit.schoolTypes) & set(rules.SCHOOL_TYPES)}
        self.selected = {unit.id for unit in coded if unit.id in self.dnp_units
                         and (include_units is None or unit.schoolUnitCode in include_units)}
        self.known_school_units = known_school_units
        self.tests = list(test_activities)
        self.eppn_domains = eppn_domains
        self.today = today
        self.out = Mapped()
        self.labels: dict[str, str] = {}  # DNP person id → masked label
        self.roles: dict[str, Role] = {}  # DNP person id → the role of that record
        self.group_names: dict[str, str] = {}
        self.duties_at: dict[tuple[str, str], list[ss.Duty]] = {}  # (person id, unit id) → current duties there
        self.holders: dict[str, str] = {}  # EPPN → the DNP person id that holds it
        self.staff_record: dict[str, str] = {}  # SS 12000 person id → the DNP id of their staff record
        self.links_refused: set[tuple[str, int]] = set()  # (source activity id, teacher index), refused once

    def refuse_source(self, refused: Iterable[Refused]) -> None:
        """Reject every record the client could not read, in its step, one entry per field (listed first)."""
        found: list[Rejected] = []
        for record in refused:
            kind = STEP_OF_PATH.get(record.path.removesuffix("/lookup"))
            if kind is None:
                continue
            what = "skolenhet" if record.path.startswith("/organisations") else "SS 12000-post"
            label = f"{what} {record.record_id or '(utan id)'}"
            if kind == "persons":
                self.labels[record.record_id] = label
            found += [Rejected(kind, record.record_id, label, SOURCE_REFUSED, problem.field,
                               f"SS 12000-posten {record.record_id} kan inte läsas: {problem.field}: {problem.rule}")
                      for problem in record.problems]
        self.out.rejected[:0] = found

    def reject(self, kind: Kind, record_id: str, label: str, violations: list[rules.Violation],
               because: str = "") -> bool:
        """Record the errors among ``violations`` (True if any) and note the warnings DNP will give."""
        errors = rules.errors(violations)
        for v in errors:
            self.out.rejected.append(Rejected(kind, record_id, label, v.code, v.attribute_name, v.message + because))
        if not errors:
            for v in rules.warnings(violations):
                self.out.notes.append(Note(kind, record_id, label, f"DNP varnar {v.code}: {v.message}"))
        return bool(errors)

    # Persons

    def enrolments(self, person: ss.Person) -> list[ss.Enrolment]:
        return [e for e in person.enrolments or []
                if e.schoolType in rules.SCHOOL_TYPES and e.enroledAt.id in self.dnp_units and not e.cancelled
                and _current(e.startDate, e.endDate, self.today)]

    def person_record(self, person: ss.Person, role: Role, record_id: str) -> Person:
        civic = person.civicNo
        emails = [Email(value=e.value, type=e.type) for e in person.emails or [] if e.type == EMAIL_TYPES[role]]
        eduid = [ExternalIdentifier(value=x.value, context=x.context, globally_unique=x.globallyUnique)
                 for x in person.externalIdentifiers or [] if x.context == EDUID_CONTEXT][:1]
        enrolments = [Enrolment(enroled_at=ObjectReference(id=self.dnp_units[e.enroledAt.id]), school_type=e.schoolType,
                                school_year=e.schoolYear, education_code=e.educationCode)
                      for e in self.enrolments(person)] if role == "student" else None
        return Person(
            id=record_id, civic_no=CivicNo(value=civic.value if civic else "", nationality=civic.nationality if civic
                                           else "SE"),
            given_name=person.givenName, middle_name=person.middleName, family_name=person.familyName,
            edu_person_principal_names=_eppns(person, role, self.eppn_domains), security_marking=person.securityMarking,
            emails=emails or None, enrolments=enrolments,
            external_identifiers=(eduid or None) if role == "staff" else None,
        )

    def map_persons(self, persons: Iterable[ss.Person], staff_ids: set[str]) -> None:
        """Judge every student and staff record (EPPNs are judged against every person mapped before)."""
        holders, staff_record = self.holders, self.staff_record
        for person in persons:
            student = any(e.enroledAt.id in self.selected for e in self.enrolments(person))
            roles: list[Role] = (["student"] if student else []) + (["staff"] if person.id in staff_ids else [])
            for role in roles:
                record_id = staff_record_id(person.id) if role == "staff" and student else person.id
                if role == "staff":
                    staff_record[person.id] = record_id
                record = self.person_record(person, role, record_id)
                label = f"{mask(person.civicNo.value if person.civicNo else None)} ({ROLE_LABELS[role]})"
                self.labels[record_id] = label
                self.roles[record_id] = role
                violations = (rules.person_violations(record, self.known_school_units)
                              + rules.eppn_violations(record, holders))
                if not self.reject("persons", record_id, label, violations):
                    self.out.persons.append(record)
                    holders.update((eppn, record_id) for eppn in record.edu_person_principal_names)

    # Duties

    def in_scope_duties(self, duties: Iterable[ss.Duty]) -> list[tuple[ss.Duty, str]]:
        """Current duties at a selected unit, each with its person's SS 12000 id; every current duty is kept
        by person and unit, for teachers given as persons."""
        current = [d for d in duties if d.person is not None and _current(d.startDate, d.endDate, self.today)]
        for duty in current:
            self.duties_at.setdefault((duty.person.id, duty.dutyAt.id), []).append(duty)  # type: ignore[union-attr]
        return [(d, d.person.id) for d in current if d.dutyAt.id in self.selected]  # type: ignore[union-attr]

    def map_duties(self, duties: list[tuple[ss.Duty, str]], staff_record: Mapping[str, str]) -> None:
        accepted = {p.id: p for p in self.out.persons}
        rejected = self.out.rejected_ids("persons")
        for duty, source_person in duties:
            person_id = staff_record.get(source_person, source_person)
            record = Duty(id=duty.id, person=ObjectReference(id=person_id),
                          duty_at=ObjectReference(id=self.dnp_units[duty.dutyAt.id]), duty_role=duty.dutyRole)
            label = f"{self.labels.get(person_id, mask(None))} {duty.dutyRole}"
            because = " (Personen avvisades före överföringen.)" if person_id in rejected else ""
            violations = (rules.duty_violations(record, self.known_school_units)
                          + rules.duty_reference_violations(record, accepted))
            if not self.reject("duties", duty.id, label, violations, because):
                self.out.duties.append(record)

    # Activities and groups

    def qualifies(self, group: ss.Group, test: NationalTest, enrolled: Mapping[str, list[ss.Enrolment]]) -> bool:
        """The group has a current member enrolled in the test's school type (and school year)."""
        return any(
            _current(m.startDate, m.endDate, self.today)
            and any(e.schoolType == test.schoolType and (test.schoolYear is None or e.schoolYear == test.schoolYear)
                    for e in enrolled.get(m.person.id, ()))
            for m in group.groupMemberships or []
        )

    def teaches(self, syllabus: ss.Syllabus, test: NationalTest) -> bool:
        code = syllabus.subjectDesignation if test.schoolYear is not None else syllabus.courseCode
        return syllabus.schoolType == test.schoolType and code == subject_or_course(test)

    def groupable(self, group: ss.Group) -> bool:
        """A group DNP can take: Klass or Undervisning, current, at a unit, of a DNP school type (or none given)."""
        return (group.groupType in GROUP_TYPES and group.organisation.id in self.dnp_units
                and (group.schoolType is None or group.schoolType in rules.SCHOOL_TYPES)
                and _current(group.startDate, group.endDate, self.today))

    def candidates(self, activities: Iterable[ss.ActivityExpanded], groups: Mapping[str, ss.Group],
                   enrolled: Mapping[str, list[ss.Enrolment]]) -> list[tuple[ss.Activity, NationalTest, list[str]]]:
        """(activity, test activity, the activity's group ids that take the test) for every match."""
        found = []
        for activity in activities:
            syllabus = activity.embedded.syllabus if activity.embedded else None
            if (activity.activityType != rules.ACTIVITY_TYPE or syllabus is None
                    or activity.organisation.id not in self.selected
                    or not _current(activity.startDate, activity.endDate, self.today)):
                continue
            for test in self.tests:
                if not self.teaches(syllabus, test):
                    continue
                taking = [ref.id for ref in activity.groups if ref.id in groups and self.groupable(groups[ref.id])
                          and self.qualifies(groups[ref.id], test, enrolled)]
                if taking:
                    found.append((activity, test, taking))
        return found

    def map_groups(self, groups: Sequence[ss.Group]) -> None:
        students = {p.id for p in self.out.persons if p.enrolments}
        rejected = {r for r in self.out.rejected_ids("persons") if self.roles.get(r) != "staff"}
        for group in groups:
            memberships: list[GroupMembership] = []
            for m in group.groupMemberships or []:
                if not _current(m.startDate, m.endDate, self.today):
                    continue
                if m.person.id in students:
                    memberships.append(GroupMembership(person=ObjectReference(id=m.person.id)))
                elif m.person.id in rejected:
                    self.out.notes.append(Note("groups", group.id, group.displayName,
                                               f"Medlemskapet för {self.labels[m.person.id]} skickas inte: "
                                               "eleven avvisades före överföringen."))
            self.group_names[group.id] = group.displayName
            record = Group(id=group.id, display_name=group.displayName, group_type=group.groupType,
                           school_type=group.schoolType or "",
                           organisation=ObjectReference(id=self.dnp_units[group.organisation.id]),
                           group_memberships=memberships)
            violations = rules.group_violations(record, self.known_school_units)
            if not self.reject("groups", group.id, group.displayName, violations):
                self.out.groups.append(record)

    def teacher_duty(self, activity: ss.Activity, index: int, assignment: ss.DutyAssignment) -> str | None:
        """The duty id of a teacher link; a person's duty at the activity's unit, or None with the link refused."""
        if assignment.duty is not None:
            return assignment.duty.id
        person = assignment.person.id if assignment.person is not None else None
        at_unit = self.duties_at.get((person, activity.organisation.id), []) if person else []
        if at_unit:
            return sorted(at_unit, key=lambda duty: duty.dutyRole != TEACHING_ROLE)[0].id
        if (activity.id, index) not in self.links_refused:
            self.links_refused.add((activity.id, index))
            if person:
                field_name = f"teachers[{index}].person.id"
                why = f"personen {person} har ingen aktuell tjänstgöring vid aktivitetens skolenhet"
            else:
                field_name, why = f"teachers[{index}]", "varken duty eller person"
            self.out.rejected.append(Rejected(
                "activities", activity.id, activity.displayName, SOURCE_REFUSED, field_name,
                f"Lärarlänken kan inte läsas: {field_name}: {why}. Aktiviteten skickas utan den läraren."))
        return None

    def map_activities(self, candidates: list[tuple[ss.Activity, NationalTest, list[str]]]) -> None:
        groups = {g.id for g in self.out.groups}
        rejected_groups = self.out.rejected_ids("groups")
        duties = {d.id for d in self.out.duties}
        rejected_duties = self.out.rejected_ids("duties")
        tests = {t.id for t in self.tests}
        for activity, test, taking in candidates:
            record_id = activity_record_id(activity.id, test.id)
            label = f"{activity.displayName} ({test.displayName})"
            kept = [g for g in taking if g in groups]
            for group_id in taking:
                if group_id in rejected_groups:
                    self.out.notes.append(Note("activities", record_id, label,
                                               f"Gruppen {self.group_names[group_id]} ({group_id}) skickas inte: den "
                                               "avvisades före överföringen."))
            teachers: list[DutyAssignment] = []
            for index, assignment in enumerate(activity.teachers or []):
                duty_id = self.teacher_duty(activity, index, assignment)
                if duty_id is None or not _current(assignment.startDate, assignment.endDate, self.today):
                    continue
                if duty_id in duties:
                    teachers.append(DutyAssignment(duty=ObjectReference(id=duty_id)))
                elif duty_id in rejected_duties:
                    self.out.notes.append(Note("activities", record_id, label,
                                               f"Tjänstgöringen {duty_id} skickas inte: den avvisades "
                                               "före överföringen."))
            record = Activity(id=record_id, display_name=activity.displayName, activity_type=rules.ACTIVITY_TYPE,
                              groups=[ObjectReference(id=g) for g in kept or taking],
                              organisation=ObjectReference(id=self.dnp_units[activity.organisation.id]),
                              parent_activity=ObjectReference(id=test.id), teachers=teachers or None)
            because = "" if kept else " (Aktivitetens alla grupper avvisades före överföringen.)"
            violations = (rules.activity_violations(record, tests, self.known_school_units)
                          + rules.activity_reference_violations(record, groups, duties))
            if not self.reject("activities", record_id, label, violations, because):
                self.out.activities.append(record)


class Mapper:
    """:func:`map_to_dnp` in two parts, so that persons are mapped (and sent) page by page as the source is read.

    A person's record needs only the school units, the current duties (who is staff) and the persons mapped
    before (an EPPN is one person's); the groups and activities need every person, so :meth:`finish` comes last.
    """

    def __init__(self, school_units: Iterable[ss.Organisation], duties: Iterable[ss.Duty],
                 test_activities: Sequence[NationalTest], *, include_units: Collection[str] | None = None,
                 known_school_units: Collection[str] | None = None, eppn_domains: Mapping[Role, str] | None = None,
                 today: dt.date | None = None):
        self._run = _Mapping(school_units, include_units, known_school_units, test_activities, eppn_domains or {},
                             today or dt.date.today())
        self._duties = self._run.in_scope_duties(duties)
        self._staff_ids = {person_id for _, person_id in self._duties}
        self._people: list[ss.Person] = []

    def persons(self, page: Iterable[ss.Person]) -> list[Person]:
        """The DNP person records of ``page`` that DNP's rules let through (the rest are among the rejections)."""
        people = list(page)
        self._people += people
        before = len(self._run.out.persons)
        self._run.map_persons(people, self._staff_ids)
        return self._run.out.persons[before:]

    def finish(self, groups: Iterable[ss.Group], activities: Iterable[ss.ActivityExpanded],
               refused: Iterable[Refused] = ()) -> Mapped:
        """Everything, once every person is mapped: duties, groups and activities, and the source's refusals."""
        run = self._run
        run.refuse_source(refused)
        run.map_duties(self._duties, run.staff_record)
        enrolled = {p.id: run.enrolments(p) for p in self._people}
        source_groups = {g.id: g for g in groups}
        candidates = run.candidates(activities, source_groups, enrolled)
        taking = {g for _, _, ids in candidates for g in ids}
        chosen = [g for g in source_groups.values() if g.id in taking or (
            g.groupType == CLASS and g.organisation.id in run.selected and run.groupable(g))]
        run.map_groups(chosen)
        run.map_activities(candidates)
        return run.out


def map_to_dnp(
    persons: Iterable[ss.Person],
    duties: Iterable[ss.Duty],
    groups: Iterable[ss.Group],
    activities: Iterable[ss.ActivityExpanded],
    school_units: Iterable[ss.Organisation],
    test_activities: Sequence[NationalTest],
    *,
    include_units: Collection[str] | None = None,
    known_school_units: Collection[str] | None = None,
    eppn_domains: Mapping[Role, str] | None = None,
    today: dt.date | None = None,
    refused: Iterable[Refused] = (),
) -> Mapped:
    """The DNP records of the source, and the rejections, for ``test_activities`` (from DNP's open data).

    ``activities`` must carry their syllabus (``expand=["syllabus"]``): an activity without one cannot
    be tied to a national test and is not sent. ``include_units``: skolenhetskoder (None: every unit);
    a code that is not one of ``school_units`` is a SelectionError. ``known_school_units``: Skolverket's
    ids of the units its open data knows, when read; a record at another unit is rejected. ``refused``:
    the records the SS 12000 client could not read (``SS12000Client.refused``).
    """
    mapper = Mapper(school_units, duties, test_activities, include_units=include_units,
                    known_school_units=known_school_units, eppn_domains=eppn_domains, today=today)
    mapper.persons(persons)
    return mapper.finish(groups, activities, refused)
