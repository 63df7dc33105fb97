"""Untrusted XML: entities are refused before anything is resolved, read or expanded."""

import io
import resource
from pathlib import Path

import pytest
from lxml import etree

from skolflow.connectors import xmlsafe

NS = "urn:skolflow:test"


def _bomb(levels: int = 9) -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, levels + 1)]
    return (f'<?xml version="1.0"?><!DOCTYPE r [{"".join(entities)}]>'
            f'<r xmlns="{NS}"><elev id="1">&lol{levels};</elev></r>').encode()


def _xxe(target: str) -> bytes:
    return (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{target}">]>'
            f'<r xmlns="{NS}"><elev id="1">&x;</elev></r>').encode()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOPSECRET")
    return path


def test_external_file_entity_is_refused_and_never_read(secret_file: Path) -> None:
    document = _xxe(secret_file.as_uri())
    for attempt in (lambda: xmlsafe.parse(document),
                    lambda: list(xmlsafe.iterparse(io.BytesIO(document), f"{{{NS}}}elev"))):
        with pytest.raises(xmlsafe.UnsafeXmlError) as info:
            attempt()
        assert "TOPSECRET" not in str(info.value)


def test_network_entity_is_refused() -> None:
    with pytest.raises(xmlsafe.UnsafeXmlError):
        xmlsafe.parse(_xxe("http://127.0.0.1:9/evil.dtd"))


def test_entity_expansion_bomb_is_refused_without_growing_memory() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for attempt in (lambda: xmlsafe.parse(_bomb()),
                    lambda: list(xmlsafe.iterparse(io.BytesIO(_bomb()), f"{{{NS}}}elev"))):
        with pytest.raises(xmlsafe.UnsafeXmlError):
            attempt()
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 50_000  # a billion laughs expanded would need gigabytes


def test_plain_doctype_without_entities_is_accepted() -> None:
    document = f'<!DOCTYPE xml><r xmlns="{NS}"><elev id="1"/><elev id="2"/></r>'.encode()
    assert [e.get("id") for e in xmlsafe.iterparse(io.BytesIO(document), f"{{{NS}}}elev")] == ["1", "2"]


def test_malformed_xml_is_reported_as_such() -> None:
    with pytest.raises(xmlsafe.MalformedXmlError):
        xmlsafe.parse(b"<r><unclosed></r>")


def test_iterparse_frees_processed_elements() -> None:
    count = 20_000
    document = io.BytesIO(
        (f'<r xmlns="{NS}">' + "".join(f'<elev id="{i}"><x>{"y" * 50}</x></elev>' for i in range(count)) + "</r>")
        .encode())
    roots = set()
    seen = 0
    for element in xmlsafe.iterparse(document, f"{{{NS}}}elev"):
        seen += 1
        roots.add(len(element.getparent()))
    assert seen == count
    assert max(roots) < count / 10  # only what the parser read ahead, never the whole document


def test_iterparse_shows_the_root_before_any_element_so_a_reader_can_refuse_another_kind_of_document() -> None:
    document = f'<r xmlns="{NS}" from="2025"><elev id="1"/><elev id="2"/></r>'.encode()
    roots: list[tuple[str, dict[str, str]]] = []

    def look(root: etree._Element) -> None:
        roots.append((root.tag, dict(root.attrib)))

    ids = [e.get("id") for e in xmlsafe.iterparse(io.BytesIO(document), f"{{{NS}}}elev", on_root=look)]

    assert ids == ["1", "2"]
    assert roots == [(f"{{{NS}}}r", {"from": "2025"})]  # once, with its attributes

    def refuse(root: etree._Element) -> None:
        raise xmlsafe.XmlDocumentError(f"not the expected document: {root.tag}")

    other = b'<r xmlns="urn:another:version"/>'  # no <elev> of NS at all: read without a check, it is just empty
    assert list(xmlsafe.iterparse(io.BytesIO(other), f"{{{NS}}}elev")) == []
    with pytest.raises(xmlsafe.XmlDocumentError, match="urn:another:version"):
        list(xmlsafe.iterparse(io.BytesIO(other), f"{{{NS}}}elev", on_root=refuse))


def test_iterparse_refuses_entities_before_the_root_is_shown(secret_file: Path) -> None:
    shown: list[str] = []
    with pytest.raises(xmlsafe.UnsafeXmlError):
        list(xmlsafe.iterparse(io.BytesIO(_xxe(secret_file.as_uri())), f"{{{NS}}}elev",
                               on_root=lambda root: shown.append(root.tag)))
    assert shown == []
