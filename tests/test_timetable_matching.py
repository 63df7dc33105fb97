import datetime as dt

from skolflow.connectors.haldor.models import PersonRef, User
from skolflow.connectors.skola24.models import Group, Lesson, Person
from skolflow.tasks.diff import content_hash
from skolflow.tasks.timetable import (
    MatchKey,
    changed_ranges,
    email_key,
    match_persons,
    personnummer_key,
    positions_for,
)

PNR = "191212121212"


def test_keys_normalise_what_people_type() -> None:
    assert email_key("  Anna.Berg@Skola.SE ") == "anna.berg@skola.se"
    assert email_key("   ") is None and email_key(None) is None
    assert personnummer_key("19121212-1212") == personnummer_key(" 19121212 1212 ") == PNR
    assert personnummer_key("19121212-1213") is None


def test_matching_reports_who_is_missing_on_either_side_masked() -> None:
    persons = [Person("p1", "staff", "s", email="ANNA@x.se "), Person("p2", "staff", "s", email="bo@x.se"),
               Person("p3", "student", "s", email=None)]
    users = [User(id="u1", email="anna@x.se", role="teacher"), User(id="u9", email="other@x.se", role="student")]
    matching = match_persons(persons, users, MatchKey.EMAIL)
    assert matching.refs == {"p1": PersonRef(email="anna@x.se")}
    assert [(u.person, u.reason, u.shown) for u in matching.unmatched] == [
        ("p2", "finns inte i Haldor", "b***@x.se"), ("p3", "saknar e-post arbete i Skola24", "****")]


def test_personnummer_matching_never_shows_the_number() -> None:
    matching = match_persons([Person("p1", "staff", "s", personnummer=PNR)], [], MatchKey.PERSONNUMMER)
    assert matching.unmatched[0].shown == "19121212-****"


def test_a_lesson_without_a_matched_teacher_is_reported_not_sent() -> None:
    group = Group("g1", "7A", "class", "s", members=("p2",))
    lessons = [Lesson("l1", "MA", dt.date(2026, 11, 23), dt.time(8), dt.time(9), teachers=("p1",), groups=("g1",)),
               Lesson("l2", "SV", dt.date(2026, 11, 23), dt.time(9), dt.time(10), teachers=("px",), groups=("g1",))]
    refs = {"p1": PersonRef(email="a@x.se"), "p2": PersonRef(email="b@x.se")}
    positions, unplaced = positions_for(lessons, {"g1": group}, refs)
    assert [p.external_id for p in positions] == ["l1"]
    assert positions[0].groups[0].members == [PersonRef(email="b@x.se")]
    assert [(u.lesson, u.reason) for u in unplaced] == [("l2", "ingen av lektionens lärare kunde matchas mot Haldor")]


def test_changed_ranges_are_contiguous_runs_and_an_emptied_day_counts() -> None:
    day = dt.date(2026, 11, 23)
    days = [day + dt.timedelta(days=n) for n in range(6)]
    empty = content_hash([])
    previous = {days[0]: "a", days[1]: "b", days[2]: "c", days[4]: "e"}
    current = {days[0]: "a", days[1]: "B", days[2]: "C", days[3]: empty, days[4]: empty, days[5]: empty}
    assert changed_ranges(current, previous) == [(days[1], days[2]), (days[4], days[4])]
