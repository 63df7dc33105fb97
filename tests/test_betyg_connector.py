"""Betyg API connector: codec against the official example and XSD, document rules, client (respx), sandbox (HTTP)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from skolflow.connectors.betyg import codec
from skolflow.connectors.betyg.client import BetygClient, format_window
from skolflow.connectors.betyg.models import GradeRecord, StudentGrades, Termin
from skolflow.connectors.betyg.rules import Problem, check_document, check_student, language_codes
from skolflow.connectors.betyg.sandbox import create_app, select_students
from skolflow.connectors.http import HttpSettings, RemoteError, RetryPolicy, TransientError
from skolflow.connectors.xmlsafe import UnsafeXmlError
from skolflow.sandbox.dataset import Dataset, generate
from skolflow.sandbox.faults import FaultConfig
from skolflow.sandbox.runner import SandboxServer, with_faults
from skolflow.tasks.betyg_documents import checked_students
from skolflow.tasks.grades import to_kursbetyg
from tests.remote import MOCKED_REMOTE

EXAMPLE = Path(__file__).parent / "data" / "betyg-exempel.xml"
NS = codec.NAMESPACE
FAST = HttpSettings(retry=RetryPolicy(attempts=4, backoff_base=0.0), door=MOCKED_REMOTE)
ELEV_1 = "{d7b3374b-985a-4d43-9558-189e6643755a}"
ELEV_2 = "{7b080db7-1591-4c67-94d6-28adfcf52396}"
ELEV_3 = "{96ab211c-4937-49e3-8fdc-e144447c2138}"


def _grade(**changes: object) -> GradeRecord:
    base = {
        "kind": "ämnesbetyg", "value": "C", "datum": dt.date(2025, 5, 20), "provning": False,
        "betygsgrupp": "{11111111-2222-3333-4444-555555555555}", "skola": "{bdcacf8c-0930-11e5-a6c0-1697f925ec7b}",
        "beslutsfattare_roll": "LÄRARE", "beslutsfattare": ("{96ab211c-4937-49e3-8fdc-e144447c2138}",),
        "skolform": "GR", "code": "MA", "termin": Termin("VT", 2025), "slutbetyg": False,
    }
    return GradeRecord(**{**base, **changes})


# --- codec -------------------------------------------------------------------------------------------------


def test_official_example_parses_with_ids_kept_as_written() -> None:
    students = list(codec.iter_students(EXAMPLE))

    assert [s.student_id for s in students] == [ELEV_1, ELEV_2, ELEV_3]
    assert [len(s.grades) for s in students] == [2, 2, 3]
    first, second = students[0].grades
    assert (first.kind, first.code, first.value, first.beslutsfattare_roll, first.beslutsfattare) == (
        "kursbetyg", "ATVREP0", "A", "EXTERN", ())
    assert first.betygsgrupp is None and first.slutbetyg is None and first.omdome is False
    assert second.provning is True and second.betygsgrupp == ELEV_1 and second.datum == dt.date(2014, 12, 19)
    subject = students[1].grades[0]
    assert (subject.kind, subject.code, subject.sprak, subject.termin, subject.slutbetyg) == (
        "ämnesbetyg", "MLDEU", "DEU", None, True)
    assert students[2].grades[0].termin == Termin("HT", 2014)
    assert students[2].grades[1].beslutsfattare == ("{96ab211c-4937-49e3-8fdc-e144447c2138",
                                                    "{56772461-ccd3-47f8-8d2c-c097675b2af7}")


def test_official_example_is_schema_valid_and_tells_its_window() -> None:
    assert codec.validate_schema(EXAMPLE) == []
    assert codec.read_window(EXAMPLE) == (dt.datetime(2014, 12, 17, 9, 0), dt.datetime(2015, 12, 19, 9, 0))


def test_schema_violations_are_listed_with_line_numbers() -> None:
    broken = EXAMPLE.read_bytes().replace(b"<value>A</value>", b"<value>X</value>", 1)
    errors = codec.validate_schema(broken)
    assert len(errors) == 1
    assert errors[0].startswith("line ") and "'X'" in errors[0]


def test_encode_writes_a_schema_valid_document_that_reads_back_the_same() -> None:
    students = [
        StudentGrades("{d7b3374b-985a-4d43-9558-189e6643755a}", (
            _grade(kind="kursbetyg", skolform="GY", code="MATMAT01a", termin=None, slutbetyg=None),
            _grade(code="M2DEU", sprak="DEU"),
            _grade(kind="kursbetyg", skolform="VUX", code="ORIENT1", value="G", omdome=True, termin=None,
                   slutbetyg=None, beslutsfattare_roll="EXTERN", beslutsfattare=(), betygsgrupp=None),
        )),
        StudentGrades("{7b080db7-1591-4c67-94d6-28adfcf52396}", ()),
    ]
    out = io.BytesIO()
    codec.encode(out, iter(students), dt.datetime(2025, 6, 1, 8, 0), dt.datetime(2025, 6, 2, 8, 0))
    data = out.getvalue()

    assert codec.validate_schema(data) == []
    assert b'from="2025-06-01T08:00:00" tom="2025-06-02T08:00:00"' in data
    back = list(codec.iter_students(io.BytesIO(data)))
    # The XSD puts a student's ämnesbetyg before their kursbetyg.
    first = students[0].grades
    assert back == [StudentGrades(students[0].student_id, (first[1], first[0], first[2])), students[1]]


def _many_students(count: int) -> Iterator[StudentGrades]:
    for n in range(count):
        yield StudentGrades(f"{{00000000-0000-4000-8000-{n:012x}}}", (_grade(), _grade(code="SV", value="A")))


class _CountingReader(io.RawIOBase):
    """A file whose reads are counted, to see how much of it the parser had read at a given moment."""

    def __init__(self, path: Path):
        self._file = path.open("rb")
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self.consumed += len(chunk)
        return chunk


def test_streaming_reads_a_large_document_one_student_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "betyg.xml"
    codec.encode(path, _many_students(2000), dt.datetime(2025, 1, 1), dt.datetime(2025, 2, 1))
    size = path.stat().st_size
    reader = _CountingReader(path)

    students = codec.iter_students(reader)
    first = next(students)
    read_before_first = reader.consumed
    rest = sum(1 for _ in students)

    assert first.student_id == "{00000000-0000-4000-8000-000000000000}" and len(first.grades) == 2
    assert rest == 1999
    assert read_before_first < size / 10  # the first student came long before the document was read
    assert codec.validate_schema(path) == []


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE betyg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<betyg xmlns="http://pingpong.se/schemas/grades/v1.1" from="2025-01-01T00:00:00" tom="2025-01-02T00:00:00">
<elev id="&xxe;"/></betyg>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE betyg [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<betyg xmlns="http://pingpong.se/schemas/grades/v1.1" from="2025-01-01T00:00:00" tom="2025-01-02T00:00:00">
<elev id="&lol3;"/></betyg>"""


@pytest.mark.parametrize("document", [XXE, BILLION_LAUGHS], ids=["xxe", "billion-laughs"])
def test_documents_declaring_entities_are_refused(document: bytes) -> None:
    with pytest.raises(UnsafeXmlError):
        list(codec.iter_students(io.BytesIO(document)))
    with pytest.raises(UnsafeXmlError):
        codec.validate_schema(document)
    with pytest.raises(UnsafeXmlError):
        codec.read_window(io.BytesIO(document))


# --- document rules ------------------------------------------------------------------------------------------


def test_official_example_yields_exactly_its_known_mistakes() -> None:
    problems = list(check_document(EXAMPLE))

    assert [(p.student, p.code, p.rule) for p in problems] == [
        (ELEV_2, "MLDEU", "guid"),  # skola {abdcacf8c-…} has nine hex digits
        (ELEV_2, "GYARBF", "grade-kind"),  # a kursbetyg in skolform GR
        (ELEV_3, "MLDEU", "guid"),  # beslutsfattare person lacks its closing brace
        (ELEV_3, "M2DEU", "term-date"),  # HT 2015 against datum 2014-12-17 (M2 with <språk>DEU is M2DEU)
    ]
    assert "{abdcacf8c-0930-11e5-a6c0-1697f925ec7b}" in problems[0].message
    assert "{96ab211c-4937-49e3-8fdc-e144447c2138'" in problems[2].message
    assert "HT 2015" in problems[3].message and "2014-12-17" in problems[3].message
    assert check_student(next(codec.iter_students(EXAMPLE))) == []


def _rules(*grades: GradeRecord, student: str = ELEV_1) -> list[tuple[str, str]]:
    return [(p.code, p.rule) for p in check_student(StudentGrades(student, grades))]


def test_a_clean_student_has_no_problems() -> None:
    assert _rules(_grade(), _grade(code="M1FRE", sprak="FRE"), _grade(code="MLARA", value="A")) == []


def test_student_and_group_ids_must_be_braced_guids() -> None:
    assert _rules(student="d7b3374b-985a-4d43-9558-189e6643755a") == [("", "guid")]
    assert _rules(_grade(betygsgrupp="{not-a-guid}")) == [("MA", "guid")]


@pytest.mark.parametrize(("code", "expected"), [
    ("M2", [("M2", "subject-code")]),
    ("ML", [("ML", "subject-code")]),
    ("XY", [("XY", "subject-code")]),
    ("M2DEUX", [("M2DEUX", "subject-code")]),
    ("VAA", [("VAA", "subject-ungraded")]),
    ("M2FRE", []),
    ("HKK", []),
])
def test_subject_codes_follow_amneskoder(code: str, expected: list[tuple[str, str]]) -> None:
    assert _rules(_grade(code=code)) == expected


@pytest.mark.parametrize(("typ", "year", "datum", "ok"), [
    ("VT", 2025, dt.date(2025, 1, 10), True),
    ("VT", 2025, dt.date(2025, 7, 1), True),
    ("VT", 2025, dt.date(2025, 8, 1), False),
    ("HT", 2025, dt.date(2025, 7, 31), True),
    ("HT", 2025, dt.date(2025, 12, 20), True),
    ("HT", 2025, dt.date(2025, 6, 10), False),
    ("HT", 2024, dt.date(2025, 12, 20), False),
])
def test_termin_must_agree_with_datum(typ: str, year: int, datum: dt.date, ok: bool) -> None:
    assert _rules(_grade(termin=Termin(typ, year), datum=datum)) == ([] if ok else [("MA", "term-date")])


def test_teacher_and_principal_decisions_name_a_person_external_ones_need_not() -> None:
    assert _rules(_grade(beslutsfattare=())) == [("MA", "decided-by")]
    assert _rules(_grade(beslutsfattare_roll="REKTOR", beslutsfattare=())) == [("MA", "decided-by")]
    assert _rules(_grade(beslutsfattare_roll="EXTERN", beslutsfattare=())) == []


def test_grade_scales_apply_under_their_own_rule_ids() -> None:
    course = {"kind": "kursbetyg", "termin": None, "slutbetyg": None}
    assert _rules(_grade(**course, skolform="GY", code="MATMAT01a", value="VG")) == [("MATMAT01a", "grade-scale")]
    assert _rules(_grade(**course, skolform="GY", code="GYARBF", value="C")) == [("GYARBF", "grade-scale")]
    assert _rules(_grade(**course, skolform="GY", code="ORIENT1", value="G", omdome=True)) == [
        ("ORIENT1", "assessment-school-form")]
    # One mistake, one problem: a gymnasiearbete in GR is a wrong kind of grade, not reported twice.
    assert _rules(_grade(**course, skolform="GRSAR", code="GYARBF", value="E")) == [("GYARBF", "grade-kind")]


def test_problem_is_a_frozen_value() -> None:
    problem = Problem("{s}", "MA", "guid", "m")
    with pytest.raises(AttributeError):
        problem.rule = "other"  # type: ignore[misc]


# --- client (respx) ------------------------------------------------------------------------------------------

BASE = "https://platform.example"
DOC = EXAMPLE.read_bytes()
START, END = dt.datetime(2025, 3, 1, 8, 0), dt.datetime(2025, 3, 2, 8, 0)


@respx.mock
async def test_fetch_sends_the_contract_query_and_bearer_and_streams_to_disk(tmp_path: Path) -> None:
    route = respx.get(f"{BASE}/api/skolplattform/betyg").mock(return_value=httpx.Response(200, content=DOC))

    async with BetygClient(BASE, token="s3cret", http=FAST) as client:
        path = await client.fetch(START, END, "GYSAR2002", dest=tmp_path / "answer.xml")

    request = route.calls.last.request
    assert request.url.query == b"from=2025-03-01T08:00&tom=2025-03-02T08:00&schoolType=GYSAR2002"
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert path == tmp_path / "answer.xml" and path.read_bytes() == DOC
    assert not (tmp_path / "answer.xml.part").exists()


@respx.mock
async def test_fetch_without_token_or_school_type(tmp_path: Path) -> None:
    route = respx.get(f"{BASE}/api/skolplattform/betyg").mock(return_value=httpx.Response(200, content=DOC))

    async with BetygClient(BASE, http=FAST) as client:
        await client.fetch(START, END, dest=tmp_path / "a.xml")

    request = route.calls.last.request
    assert "Authorization" not in request.headers
    assert request.url.query == b"from=2025-03-01T08:00&tom=2025-03-02T08:00"


@respx.mock
async def test_a_4xx_is_raised_at_once_with_the_remote_body(tmp_path: Path) -> None:
    route = respx.get(f"{BASE}/api/skolplattform/betyg").mock(
        return_value=httpx.Response(400, text="Felaktigt datumformat"))

    async with BetygClient(BASE, http=FAST) as client:
        with pytest.raises(RemoteError) as caught:
            await client.fetch(START, END, dest=tmp_path / "a.xml")

    assert caught.value.status_code == 400 and caught.value.body == "Felaktigt datumformat"
    assert not isinstance(caught.value, TransientError)
    assert route.call_count == 1
    assert not (tmp_path / "a.xml").exists()


@respx.mock
async def test_5xx_and_dropped_connections_are_retried(tmp_path: Path) -> None:
    route = respx.get(f"{BASE}/api/skolplattform/betyg").mock(side_effect=[
        httpx.Response(503, text="busy"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.Response(200, content=DOC),
    ])

    async with BetygClient(BASE, http=FAST) as client:
        path = await client.fetch(START, END, dest=tmp_path / "a.xml")

    assert route.call_count == 3
    assert path.read_bytes() == DOC


@respx.mock
async def test_retries_give_up_with_a_transient_error(tmp_path: Path) -> None:
    route = respx.get(f"{BASE}/api/skolplattform/betyg").mock(return_value=httpx.Response(502, text="bad gateway"))

    async with BetygClient(BASE, http=FAST) as client:
        with pytest.raises(TransientError) as caught:
            await client.fetch(START, END, dest=tmp_path / "a.xml")

    assert route.call_count == FAST.retry.attempts
    assert caught.value.status_code == 502 and caught.value.body == "bad gateway"
    assert list(tmp_path.iterdir()) == []  # neither a truncated answer nor a .part file is left behind


async def test_client_side_checks_refuse_before_sending(tmp_path: Path) -> None:
    async with BetygClient(BASE, http=FAST) as client:
        with pytest.raises(ValueError, match="schoolType"):
            await client.fetch(START, END, "GYMNASIUM", dest=tmp_path / "a.xml")
        with pytest.raises(ValueError, match="naive"):
            await client.fetch(START.replace(tzinfo=dt.UTC), END.replace(tzinfo=dt.UTC), dest=tmp_path / "a.xml")
        with pytest.raises(ValueError, match="starts after"):
            await client.fetch(END, START, dest=tmp_path / "a.xml")


def test_window_is_widened_to_whole_minutes() -> None:
    assert format_window(dt.datetime(2025, 3, 1, 8, 0, 45), dt.datetime(2025, 3, 1, 9, 59, 1)) == (
        "2025-03-01T08:00", "2025-03-01T10:00")
    assert format_window(START, END) == ("2025-03-01T08:00", "2025-03-02T08:00")


# --- sandbox over HTTP ---------------------------------------------------------------------------------------

OLD = dt.datetime(2025, 1, 10, 12, 0)
WINDOW = (dt.datetime(2025, 2, 1, 0, 0), dt.datetime(2025, 2, 2, 0, 0))


@pytest.fixture
def dataset() -> Dataset:
    """60 students changed long ago, except three: two inside WINDOW and one exactly at its (exclusive) end."""
    data = generate(students=60, seed=7)
    for record in data.records.values():
        record.changed = OLD
    ids = list(data.records)
    data.records[ids[0]].changed = WINDOW[0]
    data.records[ids[1]].changed = dt.datetime(2025, 2, 1, 17, 30)
    data.records[ids[2]].changed = WINDOW[1]
    return data


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer() as srv:
        yield srv


async def _fetch(url: str, tmp_path: Path, start: dt.datetime, end: dt.datetime, school_type: str | None = None,
                 token: str | None = None) -> list[StudentGrades]:
    async with BetygClient(url, token=token, http=FAST) as client:
        path = await client.fetch(start, end, school_type, dest=tmp_path / "betyg.xml")
    assert codec.validate_schema(path) == []
    return list(codec.iter_students(path))


async def test_sandbox_sends_students_changed_in_the_window_with_braced_ids(
        dataset: Dataset, server: SandboxServer, tmp_path: Path) -> None:
    url = server.start("betyg", with_faults(create_app(dataset), "betyg", FaultConfig()))
    ids = list(dataset.records)

    students = await _fetch(url, tmp_path, *WINDOW)

    assert [s.student_id for s in students] == ["{" + ids[0] + "}", "{" + ids[1] + "}"]
    record = dataset.records[ids[0]]
    assert len(students[0].grades) == len(record.grades)
    assert {g.skola for g in students[0].grades} == {"{" + record.grades[0].school_unit_id + "}"}
    assert codec.read_window(tmp_path / "betyg.xml") == WINDOW
    assert [p for s in students for p in check_student(s)] == []


async def test_sandbox_filters_by_school_type(dataset: Dataset, server: SandboxServer, tmp_path: Path) -> None:
    url = server.start("betyg", with_faults(create_app(dataset), "betyg", FaultConfig()))
    everyone = (dt.datetime(2025, 1, 1), dt.datetime(2025, 3, 1))
    by_form = {form: {sid for sid, rec in dataset.records.items() if any(g.school_form == form for g in rec.grades)}
               for form in ("GY", "GR", "YH")}

    for form, expected in by_form.items():
        students = await _fetch(url, tmp_path, *everyone, school_type=form)
        assert {s.student_id.strip("{}") for s in students} == expected and expected
        assert {g.skolform for s in students for g in s.grades} == {form}
    assert await _fetch(url, tmp_path, *everyone, school_type="PO") == []
    old_curriculum = await _fetch(url, tmp_path, *everyone, school_type="GYSAR2002")
    current = await _fetch(url, tmp_path, *everyone, school_type="GYSAR")
    assert {g.value for s in old_curriculum for g in s.grades} <= {"VG", "G", "***"}
    assert {g.skolform for s in old_curriculum + current for g in s.grades} <= {"GYSAR"}
    assert not {g.value for s in current for g in s.grades} & {"VG", "G"}


async def test_a_removal_is_carried_by_the_complete_list(
        dataset: Dataset, server: SandboxServer, tmp_path: Path) -> None:
    url = server.start("betyg", with_faults(create_app(dataset), "betyg", FaultConfig()))
    ids = list(dataset.records)
    partly, wholly = ids[10], ids[11]
    kept = dataset.records[partly].grades[1:]
    async with httpx.AsyncClient(base_url=url) as admin:
        answer = await admin.post(f"/_sandbox/students/{partly}/grades", json={"action": "remove", "index": 0})
        assert answer.status_code == 200 and answer.json()["grades"] == len(kept)
        for _ in range(len(dataset.records[wholly].grades)):
            await admin.post(f"/_sandbox/students/{{{wholly}}}/grades", json={"action": "remove", "index": 0})
        changed = dt.datetime.fromisoformat(answer.json()["changed"])
        assert (await admin.post(f"/_sandbox/students/{partly}/grades",
                                 json={"action": "remove", "index": 99})).status_code == 400

    students = await _fetch(url, tmp_path, changed - dt.timedelta(minutes=1), changed + dt.timedelta(minutes=2))

    by_id = {s.student_id: s for s in students}
    assert set(by_id) == {"{" + partly + "}", "{" + wholly + "}"}
    assert [(g.code, g.value) for g in by_id["{" + partly + "}"].grades] == [(g.code, g.value) for g in kept]
    assert by_id["{" + wholly + "}"].grades == ()
    assert f'<elev id="{{{wholly}}}"></elev>'.encode() in (tmp_path / "betyg.xml").read_bytes()


async def test_a_changed_grade_is_sent_with_its_new_value(
        dataset: Dataset, server: SandboxServer, tmp_path: Path) -> None:
    url = server.start("betyg", with_faults(create_app(dataset), "betyg", FaultConfig()))
    student = list(dataset.records)[20]
    async with httpx.AsyncClient(base_url=url) as admin:
        answer = await admin.post(f"/_sandbox/students/{student}/grades",
                                  json={"action": "change", "index": 0, "value": "-"})
    changed = dt.datetime.fromisoformat(answer.json()["changed"])

    (sent,) = await _fetch(url, tmp_path, changed, changed + dt.timedelta(minutes=1))

    assert sent.grades[0].value == "-" and len(sent.grades) == len(dataset.records[student].grades)


def test_a_student_without_grades_is_sent_under_the_forms_of_their_school(dataset: Dataset) -> None:
    student, neighbour = list(dataset.records)[:2]
    dataset.set_grades(student, [], when=WINDOW[0])
    dataset.records[neighbour].changed = OLD  # leave the student alone in the window
    forms = next(u.school_forms for u in dataset.school_units if u.id == dataset.person(student).school_unit_id)
    other = next(form for form in ("GR", "GY", "YH") if form not in forms)

    for form in forms:
        assert [s.student_id for s in select_students(dataset, *WINDOW, form)] == ["{" + student + "}"]
    assert list(select_students(dataset, *WINDOW, other)) == []
    assert list(select_students(dataset, *WINDOW, "PO")) == []


@pytest.mark.parametrize("query", [
    "tom=2025-02-02T00:00",
    "from=2025-02-01&tom=2025-02-02T00:00",
    "from=2025-02-01T00:00:00&tom=2025-02-02T00:00",
    "from=2025-13-01T00:00&tom=2025-02-02T00:00",
    "from=2025-02-03T00:00&tom=2025-02-02T00:00",
    "from=2025-02-01T00:00&tom=2025-02-02T00:00&schoolType=GYMNASIUM",
])
async def test_sandbox_answers_400_in_plain_text(dataset: Dataset, server: SandboxServer, query: str) -> None:
    url = server.start("betyg", with_faults(create_app(dataset), "betyg", FaultConfig()))
    async with httpx.AsyncClient(base_url=url) as http:
        answer = await http.get(f"/api/skolplattform/betyg?{query}")
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/plain") and answer.text


async def test_sandbox_wants_the_configured_token(dataset: Dataset, server: SandboxServer, tmp_path: Path) -> None:
    url = server.start("betyg", with_faults(create_app(dataset, token="right"), "betyg", FaultConfig()))

    for token in (None, "wrong"):
        async with BetygClient(url, token=token, http=FAST) as client:
            with pytest.raises(RemoteError) as caught:
                await client.fetch(*WINDOW, dest=tmp_path / "a.xml")
        assert caught.value.status_code == 401
    assert len(await _fetch(url, tmp_path, *WINDOW, token="right")) == 2


async def test_client_rides_out_injected_faults(dataset: Dataset, server: SandboxServer, tmp_path: Path) -> None:
    faults = FaultConfig(server_error=0.3, drop=0.3, seed=3)
    injector = with_faults(create_app(dataset), "betyg", faults)
    url = server.start("betyg", injector)
    settings = HttpSettings(retry=RetryPolicy(attempts=12, backoff_base=0.0), door=MOCKED_REMOTE)

    for _ in range(3):
        async with BetygClient(url, http=settings) as client:
            path = await client.fetch(*WINDOW, dest=tmp_path / "a.xml")
        assert len(list(codec.iter_students(path))) == 2

    assert injector.injected["server_error"] and injector.injected["drop"]


# --- the contract to the letter: the document's root, and a language subject's <språk> -----------------------


OTHER_VERSION = "http://pingpong.se/schemas/grades/v1.0"


@pytest.mark.parametrize(("changes", "found"), [
    ({NS: OTHER_VERSION}, f"<betyg> in namespace {OTHER_VERSION}"),
    ({"<betyg ": "<grades ", "</betyg>": "</grades>"}, f"<grades> in namespace {NS}"),
    ({f'xmlns="{NS}"': ""}, "<betyg> in no namespace"),
], ids=["another-namespace", "another-root", "no-namespace"])
def test_a_document_that_is_not_the_contracts_betyg_is_refused_naming_what_it_is(
        tmp_path: Path, changes: dict[str, str], found: str) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in changes.items():
        text = text.replace(old, new)
    path = tmp_path / "other.xml"
    path.write_text(text, encoding="utf-8")
    assert codec.read_window(path)  # well-formed, with its from/tom: only its kind is wrong

    readers = {
        "iter_students": lambda: list(codec.iter_students(path)),
        "checked_students": lambda: list(checked_students(path)),
        "check_document": lambda: codec.check_document(path),
    }
    for name, read in readers.items():
        with pytest.raises(codec.InvalidDocumentError) as refused:
            read()
        assert found in str(refused.value), name
        assert f"expected <betyg> in namespace {NS}" in str(refused.value), name


def _language_document(*subjects: tuple[str, str | None]) -> bytes:
    """One student with one GR ämnesbetyg per (ämnesförkortning, språk), written as the platform would."""
    grades = [_grade(code=code, sprak=sprak, termin=Termin("VT", 2025), slutbetyg=True) for code, sprak in subjects]
    out = io.BytesIO()
    codec.encode(out, [StudentGrades(ELEV_1, tuple(grades))], *WINDOW)
    return out.getvalue()


def test_a_language_beside_the_subject_code_is_read_as_the_same_subject_as_one_in_it() -> None:
    beside = _language_document(("M2", "DEU"), ("M1", "FRE"), ("ML", "ARA"))
    inside = _language_document(("M2DEU", "DEU"), ("M1FRE", "FRE"), ("MLARA", "ARA"))
    assert b"<\xc3\xa4mnesf\xc3\xb6rkortning>M2</" in beside  # the document really says M2 + <språk>DEU

    [as_beside] = codec.iter_students(io.BytesIO(beside))
    [as_inside] = codec.iter_students(io.BytesIO(inside))

    assert codec.validate_schema(beside) == [] and codec.validate_schema(inside) == []
    assert [(g.code, g.sprak) for g in as_beside.grades] == [("M2DEU", "DEU"), ("M1FRE", "FRE"), ("MLARA", "ARA")]
    assert as_beside == as_inside  # so the ledger's diff sees no change when a platform switches forms
    assert check_student(as_beside) == [] and check_student(as_inside) == []
    assert [to_kursbetyg(g, "12345678") for g in as_beside.grades] == [
        to_kursbetyg(g, "12345678") for g in as_inside.grades]
    assert [to_kursbetyg(g, "12345678").kod for g in as_beside.grades] == ["M2DEU", "M1FRE", "MLARA"]


def test_the_official_examples_m2_with_sprak_deu_is_m2deu() -> None:
    subject = list(codec.iter_students(EXAMPLE))[2].grades[2]

    assert (subject.code, subject.sprak) == ("M2DEU", "DEU")
    assert [p.rule for p in check_student(StudentGrades(ELEV_3, (subject,)))] == ["term-date"]


@pytest.mark.parametrize(("code", "sprak", "expected"), [
    ("M2", "XYZ", [("M2XYZ", "subject-language")]),  # three capitals, but no language has that code
    ("M1XYZ", None, [("M1XYZ", "subject-language")]),
    ("MLDEU", "FRE", [("MLDEU", "subject-language")]),  # the code and <språk> name different languages
    ("M2", "deu", [("M2deu", "subject-code")]),  # Skolverket writes språkkoder in capitals
    ("M2", "TYSKA", [("M2TYSKA", "subject-code")]),
    ("M2", None, [("M2", "subject-code")]),
    ("M2", "GER", []),  # amneskoder.md's older codes are still accepted
    ("ML", "KUR", []),
    ("ML", "FIT", []),  # meänkieli and Dari: ISO 639-3 codes, beyond ISO 639-2
    ("ML", "PRS", []),
    ("M2", "LAT", []),
])
def test_a_language_code_must_be_one_of_skolverkets(code: str, sprak: str | None,
                                                    expected: list[tuple[str, str]]) -> None:
    [student] = codec.iter_students(io.BytesIO(_language_document((code, sprak))))

    assert [(p.code, p.rule) for p in check_student(student)] == expected


def test_a_language_problem_says_which_code_and_which_list() -> None:
    [unknown] = check_student(next(codec.iter_students(io.BytesIO(_language_document(("M2", "XYZ"))))))
    [contradicted] = check_student(next(codec.iter_students(io.BytesIO(_language_document(("MLDEU", "FRE"))))))

    assert "'XYZ'" in unknown.message and "M2XYZ" in unknown.message and "ISO 639-3" in unknown.message
    assert "DEU" in contradicted.message and "'FRE'" in contradicted.message


def test_the_language_codes_are_skolverkets_and_the_older_ones_and_nothing_that_names_no_language() -> None:
    codes = language_codes()

    assert {"DEU", "FRA", "SPA", "ARA", "SOM", "FIT", "PRS", "CKB", "KMR", "SME", "SMA", "RMY"} <= codes
    assert {"ARM", "FRE", "CHI", "KUR", "PER", "ROM", "RUM", "GER"} <= codes
    assert not {"XYZ", "MUL", "UND", "ZXX", "MIS", "QAA"} & codes
    assert all(len(code) == 3 and code.isupper() for code in codes)


async def test_sandbox_serves_a_planted_answer_until_it_is_cleared(dataset: Dataset, server: SandboxServer,
                                                                  tmp_path: Path) -> None:
    url = server.start("betyg", with_faults(create_app(dataset), "betyg", FaultConfig()))
    planted = EXAMPLE.read_bytes().replace(NS.encode(), OTHER_VERSION.encode())
    async with httpx.AsyncClient(base_url=url) as http:
        (await http.put("/_sandbox/betyg/answer", content=planted)).raise_for_status()
        async with BetygClient(url, http=FAST) as client:
            path = await client.fetch(*WINDOW, dest=tmp_path / "planted.xml")
        assert path.read_bytes() == planted
        async with httpx.AsyncClient(base_url=url) as bad:
            assert (await bad.get("/api/skolplattform/betyg?from=x&tom=y")).status_code == 400  # still checked
        assert (await http.delete("/_sandbox/betyg/answer")).json() == {"cleared": True}
    assert len(await _fetch(url, tmp_path, *WINDOW)) == 2
