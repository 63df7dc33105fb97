"""Reading and writing Betygsdokument API documents (namespace ``http://pingpong.se/schemas/betygsdokument/v2.0``).

Same shape as the Betyg codec: :func:`iter_documents` streams one :class:`GradeDocument` at a time,
:func:`validate_schema` checks the official XSD (a copy in ``schemas/betygsdokument/``), :func:`encode`
writes a document incrementally for the sandbox. The XSD value helpers are the Betyg codec's: the two
APIs come from the same platform.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from lxml import etree

from skolflow.connectors import xmlsafe
from skolflow.connectors.betyg.codec import (
    SCHEMA_DIR,
    InvalidDocumentError,
    Source,
    expecting_root,
    format_xs_datetime,
    parse_xs_boolean,
    parse_xs_date,
    validate_against,
    window_of,
    xs_boolean,
)
from skolflow.connectors.betygsdokument.models import Amne, GradeDocument

NAMESPACE = "http://pingpong.se/schemas/betygsdokument/v2.0"
SCHEMA_PATH = SCHEMA_DIR / "betygsdokument" / "betygsdokument.xsd"


def validate_schema(source: Source | bytes) -> list[str]:
    """Validate against ``schemas/betygsdokument/betygsdokument.xsd``; entity declarations raise UnsafeXmlError."""
    return validate_against(SCHEMA_PATH, source)


def read_window(source: Source) -> tuple[dt.datetime, dt.datetime]:
    """The (from, tom) the platform says produced the document."""
    return window_of(source, "betygsdokument")


def _q(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def _text(element: etree._Element, name: str) -> str:
    found = element.find(_q(name))
    if found is None:
        raise InvalidDocumentError(f"<dokument> lacks <{name}>")
    return found.text or ""


def _optional_text(element: etree._Element, name: str) -> str | None:
    found = element.find(_q(name))
    return None if found is None else (found.text or "")


def _document(element: etree._Element) -> GradeDocument:
    eligibility = _optional_text(element, "grundläggandebehörighet")
    subjects = element.find(_q("ämnen"))
    courses = element.find(_q("kurser"))
    return GradeDocument(
        elev=_text(element, "elev"),
        studievagskod=_optional_text(element, "studievägskod"),
        utfardat=parse_xs_date(_text(element, "utfärdat")),
        skola=_text(element, "skola"),
        skolenhetskod=_text(element, "skolenhetskod").strip(),  # xs:integer: surrounding blanks are not data
        typ=_text(element, "typ"),
        grundlaggandebehorighet=None if eligibility is None else parse_xs_boolean(eligibility),
        amnen=() if subjects is None else tuple(
            Amne(_text(subject, "förkortning"), _optional_text(subject, "språk"))
            for subject in subjects.iterfind(_q("ämne"))),
        kurser=() if courses is None else tuple(course.text or "" for course in courses.iterfind(_q("kurs"))),
    )


def iter_documents(source: Source) -> Iterator[GradeDocument]:
    """Each ``<dokument>`` in order, built and released one at a time."""
    for element in xmlsafe.iterparse(source, _q("dokument"), on_root=expecting_root(_q("betygsdokument"),
                                                                                   "Betygsdokument API 2.0")):
        yield _document(element)


def _leaf(xf: etree.xmlfile, name: str, text: str) -> None:
    with xf.element(_q(name)):
        xf.write(text)


def _write_document(xf: etree.xmlfile, document: GradeDocument) -> None:
    with xf.element(_q("dokument")):
        _leaf(xf, "elev", document.elev)
        if document.studievagskod is not None:
            _leaf(xf, "studievägskod", document.studievagskod)
        _leaf(xf, "utfärdat", document.utfardat.isoformat())
        _leaf(xf, "skola", document.skola)
        _leaf(xf, "skolenhetskod", document.skolenhetskod)
        _leaf(xf, "typ", document.typ)
        if document.grundlaggandebehorighet is not None:
            _leaf(xf, "grundläggandebehörighet", xs_boolean(document.grundlaggandebehorighet))
        # The XSD wants at least one ämne/kurs inside <ämnen>/<kurser>, so an empty list is left out.
        if document.amnen:
            with xf.element(_q("ämnen")):
                for subject in document.amnen:
                    with xf.element(_q("ämne")):
                        _leaf(xf, "förkortning", subject.forkortning)
                        if subject.sprak is not None:
                            _leaf(xf, "språk", subject.sprak)
        if document.kurser:
            with xf.element(_q("kurser")):
                for course in document.kurser:
                    _leaf(xf, "kurs", course)


def encode(out: IO[bytes] | Path, documents: Iterable[GradeDocument], start: dt.datetime, end: dt.datetime) -> None:
    """Write a ``<betygsdokument from= tom=>`` document, one ``<dokument>`` at a time."""
    with etree.xmlfile(str(out) if isinstance(out, Path) else out, encoding="utf-8") as xf:
        xf.write_declaration()
        root_attributes = {"from": format_xs_datetime(start), "tom": format_xs_datetime(end)}
        with xf.element(_q("betygsdokument"), root_attributes, nsmap={None: NAMESPACE}):
            for document in documents:
                _write_document(xf, document)
