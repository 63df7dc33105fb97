"""Betygsdokument API connector: codec against the official example and XSD, client (respx), sandbox (HTTP)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from skolflow.connectors.betyg.codec import InvalidDocumentError
from skolflow.connectors.betygsdokument import codec
from skolflow.connectors.betygsdokument.client import BetygsdokumentClient
from skolflow.connectors.betygsdokument.models import Amne, GradeDocument
from skolflow.connectors.betygsdokument.sandbox import create_app
from skolflow.connectors.http import HttpSettings, RemoteError, RetryPolicy
from skolflow.connectors.xmlsafe import UnsafeXmlError
from skolflow.sandbox.dataset import Dataset, Diploma, generate
from skolflow.sandbox.faults import FaultConfig
from skolflow.sandbox.runner import SandboxServer, with_faults
from tests.remote import MOCKED_REMOTE

EXAMPLE = Path(__file__).parent / "data" / "betygsdokument-exempel.xml"
FAST = HttpSettings(retry=RetryPolicy(attempts=4, backoff_base=0.0), door=MOCKED_REMOTE)
ELEV = "{78d4c490-708e-11e4-9803-0800200c9a66}"
SKOLA = "{d0566f23-20d0-4bc1-9865-c8844cf00944}"


# --- codec -------------------------------------------------------------------------------------------------


def test_official_example_parses() -> None:
    documents = list(codec.iter_documents(EXAMPLE))

    assert documents == [
        GradeDocument(ELEV, "NATNAT", dt.date(2014, 12, 19), SKOLA, "99592025",
                      "GY_EXAMENSBEVIS_HOGSKOLEFORBEREDANDE", None, (), ("GYARES", "MODFRE01")),
        GradeDocument(ELEV, "NATNAT", dt.date(2014, 12, 19), SKOLA, "99592025",
                      "GY_EXAMENSBEVIS_YRKESFORBEREDANDE", True, (), ("GYARES", "MODFRE01")),
    ]
    assert codec.validate_schema(EXAMPLE) == []
    assert codec.read_window(EXAMPLE) == (dt.datetime(2014, 12, 17, 9, 0), dt.datetime(2014, 12, 19, 9, 0))


def test_schema_violations_are_listed() -> None:
    broken = EXAMPLE.read_bytes().replace(b"<skolenhetskod>99592025</skolenhetskod>",
                                          b"<skolenhetskod>9959202</skolenhetskod>", 1)
    errors = codec.validate_schema(broken)
    assert errors and "9959202" in errors[0]


def test_encode_is_schema_valid_and_reads_back_the_same() -> None:
    documents = [
        GradeDocument("{00000000-0000-4000-8000-000000000001}", None, dt.date(2025, 6, 10),
                      "{00000000-0000-4000-8000-0000000000aa}", "01234567", "VUX_SLUTBETYG",
                      amnen=(Amne("SV"), Amne("M2DEU", "DEU"))),
        GradeDocument("{00000000-0000-4000-8000-000000000002}", "BF", dt.date(2025, 6, 11),
                      "{00000000-0000-4000-8000-0000000000aa}", "01234567", "GY_EXAMENSBEVIS_YRKESFORBEREDANDE",
                      grundlaggandebehorighet=False, kurser=("GYARBF",)),
        GradeDocument("{00000000-0000-4000-8000-000000000003}", None, dt.date(2025, 6, 12),
                      "{00000000-0000-4000-8000-0000000000aa}", "01234567", "GY_STUDIEBEVIS"),
    ]
    out = io.BytesIO()
    codec.encode(out, iter(documents), dt.datetime(2025, 6, 1), dt.datetime(2025, 6, 30, 23, 59))
    data = out.getvalue()

    assert codec.validate_schema(data) == []
    assert b'from="2025-06-01T00:00:00" tom="2025-06-30T23:59:00"' in data
    assert b"<kurser" not in data.split(b"000000000003")[1]  # an empty list is left out, as the XSD requires
    assert list(codec.iter_documents(io.BytesIO(data))) == documents


def test_streaming_reads_many_documents(tmp_path: Path) -> None:
    path = tmp_path / "dokument.xml"
    documents = (GradeDocument(f"{{00000000-0000-4000-8000-{n:012x}}}", "NATNAT", dt.date(2025, 6, 1),
                               "{00000000-0000-4000-8000-0000000000aa}", "12345678", "GY_STUDIEBEVIS",
                               kurser=("MATMAT01a",)) for n in range(2000))
    codec.encode(path, documents, dt.datetime(2025, 6, 1), dt.datetime(2025, 7, 1))

    assert sum(1 for _ in codec.iter_documents(path)) == 2000
    assert codec.validate_schema(path) == []


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE betygsdokument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<betygsdokument xmlns="http://pingpong.se/schemas/betygsdokument/v2.0" from="2025-01-01T00:00:00"
 tom="2025-01-02T00:00:00"><dokument><elev>&xxe;</elev></dokument></betygsdokument>"""


def test_documents_declaring_entities_are_refused() -> None:
    with pytest.raises(UnsafeXmlError):
        list(codec.iter_documents(io.BytesIO(XXE)))
    with pytest.raises(UnsafeXmlError):
        codec.validate_schema(XXE)


@pytest.mark.parametrize(("root", "namespace"), [("betygsdokument", "http://pingpong.se/schemas/betygsdokument/v1.0"),
                                                 ("betyg", "http://pingpong.se/schemas/grades/v1.1"),
                                                 ("betygsdokument", "")])
def test_another_version_or_kind_of_document_is_refused_not_read_as_empty(root: str, namespace: str) -> None:
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    document = f'<{root}{xmlns} from="2025-01-01T00:00:00" tom="2025-01-02T00:00:00"><dokument/></{root}>'
    with pytest.raises(InvalidDocumentError, match=r"not a Betygsdokument API 2\.0 document: its root is "
                                                   rf"<{root}> in .*expected <betygsdokument> in namespace "
                                                   r"http://pingpong.se/schemas/betygsdokument/v2.0"):
        list(codec.iter_documents(io.BytesIO(document.encode())))


# --- client (respx) ------------------------------------------------------------------------------------------

BASE = "https://platform.example"
START, END = dt.datetime(2025, 3, 1, 8, 0), dt.datetime(2025, 3, 2, 8, 0)


@respx.mock
async def test_fetch_sends_window_and_bearer(tmp_path: Path) -> None:
    route = respx.get(f"{BASE}/api/skolplattform/betygsdokument").mock(
        return_value=httpx.Response(200, content=EXAMPLE.read_bytes()))

    async with BetygsdokumentClient(BASE, token="t0k", http=FAST) as client:
        path = await client.fetch(START, END, dest=tmp_path / "d.xml")

    request = route.calls.last.request
    assert request.url.query == b"from=2025-03-01T08:00&tom=2025-03-02T08:00"
    assert request.headers["Authorization"] == "Bearer t0k"
    assert len(list(codec.iter_documents(path))) == 2


@respx.mock
async def test_4xx_raised_and_5xx_retried(tmp_path: Path) -> None:
    route = respx.get(f"{BASE}/api/skolplattform/betygsdokument").mock(side_effect=[
        httpx.Response(500), httpx.Response(200, content=EXAMPLE.read_bytes()), httpx.Response(403, text="nej")])

    async with BetygsdokumentClient(BASE, http=FAST) as client:
        await client.fetch(START, END, dest=tmp_path / "d.xml")
        assert route.call_count == 2
        with pytest.raises(RemoteError) as caught:
            await client.fetch(START, END, dest=tmp_path / "e.xml")

    assert caught.value.status_code == 403 and caught.value.body == "nej"
    assert route.call_count == 3


# --- sandbox over HTTP ---------------------------------------------------------------------------------------

WINDOW = (dt.datetime(2025, 2, 1, 0, 0), dt.datetime(2025, 2, 2, 0, 0))


@pytest.fixture
def dataset() -> Dataset:
    """Only students with diplomas are changed inside WINDOW; one of them holds two of the same type."""
    data = generate(students=60, seed=11)
    with_diplomas = [sid for sid, record in data.records.items() if record.diplomas]
    for sid, record in data.records.items():
        record.changed = dt.datetime(2025, 2, 1, 12, 0) if sid in with_diplomas[:3] else dt.datetime(2025, 1, 5)
    record = data.records[with_diplomas[0]]
    older = record.diplomas[0]
    record.diplomas.append(Diploma(older.typ, older.issued - dt.timedelta(days=30), older.school_unit_id,
                                   older.school_unit_code, courses=("OLD01",)))
    return data


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer() as srv:
        yield srv


async def test_sandbox_sends_latest_document_per_type_for_changed_students(
        dataset: Dataset, server: SandboxServer, tmp_path: Path) -> None:
    url = server.start("betygsdokument", with_faults(create_app(dataset), "betygsdokument", FaultConfig()))
    changed = [sid for sid, record in dataset.records.items() if record.changed == dt.datetime(2025, 2, 1, 12, 0)]
    codes = {unit.id: unit.code for unit in dataset.school_units}

    async with BetygsdokumentClient(url, http=FAST) as client:
        path = await client.fetch(*WINDOW, dest=tmp_path / "d.xml")

    assert codec.validate_schema(path) == []
    documents = list(codec.iter_documents(path))
    assert [d.elev for d in documents] == ["{" + sid + "}" for sid in changed]
    assert all(codes[d.skola.strip("{}")] == d.skolenhetskod for d in documents)
    assert "OLD01" not in documents[0].kurser
    assert documents[0].kurser == dataset.records[changed[0]].diplomas[0].courses


@pytest.mark.parametrize("query", ["from=2025-02-01T00:00", "from=yesterday&tom=2025-02-02T00:00"])
async def test_sandbox_answers_400_on_a_bad_window(dataset: Dataset, server: SandboxServer, query: str) -> None:
    url = server.start("betygsdokument", with_faults(create_app(dataset), "betygsdokument", FaultConfig()))
    async with httpx.AsyncClient(base_url=url) as http:
        answer = await http.get(f"/api/skolplattform/betygsdokument?{query}")
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("text/plain")


async def test_sandbox_wants_the_configured_token(dataset: Dataset, server: SandboxServer, tmp_path: Path) -> None:
    url = server.start("betygsdokument",
                       with_faults(create_app(dataset, token="right"), "betygsdokument", FaultConfig()))

    async with BetygsdokumentClient(url, token="wrong", http=FAST) as client:
        with pytest.raises(RemoteError) as caught:
            await client.fetch(*WINDOW, dest=tmp_path / "d.xml")
    async with BetygsdokumentClient(url, token="right", http=FAST) as client:
        path = await client.fetch(*WINDOW, dest=tmp_path / "d.xml")

    assert caught.value.status_code == 401
    assert len(list(codec.iter_documents(path))) == 3
