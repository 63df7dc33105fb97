"""Reading and writing Betyg API documents (namespace ``http://pingpong.se/schemas/grades/v1.1``).

Reading streams: :func:`iter_students` yields one :class:`StudentGrades` at a time through
:func:`skolflow.connectors.xmlsafe.iterparse`, so a window with tens of thousands of students is read
with flat memory. A document whose root is not this contract's ``<betyg>`` is refused before any
student is read (:func:`check_root`), and a language subject's code is read with its language in it
(:func:`skolflow.connectors.betyg.models.subject_code`). :func:`validate_schema` checks a document
against the official XSD (a copy kept in ``schemas/betyg/``). :func:`encode` writes a document
incrementally; the sandbox answers with it.

The XSD value helpers here (``xs:date``, ``xs:boolean``, ``xs:dateTime``) are shared with the
Betygsdokument codec: both APIs come from the same platform and use the same XML conventions.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from lxml import etree

from skolflow.connectors import xmlsafe
from skolflow.connectors.betyg.models import (
    AMNESBETYG,
    GRADE_KINDS,
    KURSBETYG,
    GradeRecord,
    StudentGrades,
    Termin,
    subject_code,
)

NAMESPACE = "http://pingpong.se/schemas/grades/v1.1"
SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"
SCHEMA_PATH = SCHEMA_DIR / "betyg" / "betyg.xsd"

Source = str | Path | IO[bytes]

_XS_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:Z|[+-]\d{2}:\d{2})?$")


class InvalidDocumentError(xmlsafe.XmlDocumentError):
    """A well-formed document that lacks what its schema requires (validate it first to see every fault)."""


def parse_xs_date(text: str | None) -> dt.date:
    """An ``xs:date``; a time zone suffix, which the type allows, is dropped (a decision date has no zone)."""
    match = _XS_DATE.match((text or "").strip())
    if not match:
        raise InvalidDocumentError(f"not an xs:date: {text!r}")
    try:
        return dt.date(*(int(part) for part in match.groups()))
    except ValueError as exc:
        raise InvalidDocumentError(f"not an xs:date: {text!r}") from exc


def parse_xs_boolean(text: str | None) -> bool:
    value = (text or "").strip()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise InvalidDocumentError(f"not an xs:boolean: {text!r}")


def _xs_integer(text: str | None) -> int:
    try:
        return int((text or "").strip())
    except ValueError as exc:
        raise InvalidDocumentError(f"not an xs:integer: {text!r}") from exc


def parse_xs_datetime(text: str | None) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat((text or "").strip())
    except ValueError as exc:
        raise InvalidDocumentError(f"not an xs:dateTime: {text!r}") from exc


def format_xs_datetime(value: dt.datetime) -> str:
    """``yyyy-MM-ddTHH:mm:ss``, the form the platform writes in the root's ``from``/``tom``."""
    return value.isoformat(timespec="seconds")


def xs_boolean(value: bool) -> str:
    return "true" if value else "false"


def window_of(source: Source, root_tag: str) -> tuple[dt.datetime, dt.datetime]:
    """The ``from``/``tom`` attributes of a platform document's root, read from its first tag only."""
    attributes = xmlsafe.root_attributes(source)
    if "from" not in attributes or "tom" not in attributes:
        raise InvalidDocumentError(f"<{root_tag}> lacks its required from/tom attributes")
    return parse_xs_datetime(attributes["from"]), parse_xs_datetime(attributes["tom"])


def validate_against(schema_path: Path, source: Source | bytes) -> list[str]:
    """Every XSD violation as ``"line N: message"``; see :func:`skolflow.connectors.xmlsafe.schema_errors`."""
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, str | Path):
        data = Path(source).read_bytes()
    else:
        data = source.read()
    return xmlsafe.schema_errors(data, schema_path)


def validate_schema(source: Source | bytes) -> list[str]:
    """Validate a Betyg API document against ``schemas/betyg/betyg.xsd``; see :func:`validate_against`."""
    return validate_against(SCHEMA_PATH, source)


def read_window(source: Source) -> tuple[dt.datetime, dt.datetime]:
    """The (from, tom) the platform says produced the document."""
    return window_of(source, "betyg")


def _q(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def _named(tag: str) -> str:
    namespace, _, local = tag.rpartition("}")
    return f"<{local}> in namespace {namespace[1:]}" if namespace else f"<{local}> in no namespace"


def expecting_root(tag: str, what: str) -> Callable[[etree._Element], None]:
    """A root check for :func:`xmlsafe.iterparse` that refuses any document but ``what``, naming what it is instead.

    Read leniently, another version's document (``…/grades/v1.0``) or another export holds no element in the
    expected namespace and would pass as a window in which nothing changed: nothing reported, and the watermark
    moved past grades that were never read.
    """

    def check(root: etree._Element) -> None:
        if root.tag != tag:
            raise InvalidDocumentError(f"not a {what} document: its root is {_named(root.tag)}, "
                                       f"expected {_named(tag)}")

    return check


check_root = expecting_root(_q("betyg"), "Betyg API 1.1")


def check_document(path: Path) -> None:
    """Refuse a Betyg answer that could not be read to its end, or is not the Betyg API 1.1's, reading nothing out.

    A caller that streams the students afterwards learns this before it acts on the first of them.
    """
    xmlsafe.check(path, on_root=check_root)


def elev_elements(source: Source) -> Iterator[etree._Element]:
    """Each ``<elev>`` element as it is read, released once the caller moves on; the root is checked first."""
    return xmlsafe.iterparse(source, _q("elev"), on_root=check_root)


class _Children:
    """An element's children by tag, the first of each as ``find`` would give it, read in one walk.

    A grade has a dozen children and a window tens of thousands of grades: one walk instead of an
    ElementPath ``find`` per field read the Betyg answer in about half the time.
    """

    def __init__(self, element: etree._Element, where: str):
        self.element = element
        self.where = where
        self.by_tag: dict[str, etree._Element] = {}
        for child in element:
            if isinstance(child.tag, str):
                self.by_tag.setdefault(child.tag, child)

    def get(self, name: str) -> etree._Element | None:
        return self.by_tag.get(_q(name))

    def required(self, name: str) -> etree._Element:
        found = self.by_tag.get(_q(name))
        if found is None:
            raise InvalidDocumentError(f"{self.where}: <{self.element.tag.split('}')[-1]}> lacks <{name}>")
        return found

    def text(self, name: str) -> str:
        return self.required(name).text or ""

    def optional_text(self, name: str) -> str | None:
        found = self.get(name)
        return None if found is None else (found.text or "")


def _grade(element: etree._Element, student_id: str) -> GradeRecord:
    kind = element.tag.split("}")[-1]
    where = f"elev {student_id}"
    children = _Children(element, where)
    decided_by = children.required("beslutsfattare")
    common = {
        "kind": kind,
        "value": children.text("value"),
        "datum": parse_xs_date(children.required("datum").text),
        "provning": parse_xs_boolean(children.required("prövning").text),
        "betygsgrupp": children.optional_text("betygsgrupp"),
        "skola": children.text("skola"),
        "beslutsfattare_roll": decided_by.get("roll", ""),
        "beslutsfattare": tuple(person.text or "" for person in decided_by.iterfind(_q("person"))),
        "skolform": children.text("skolform"),
    }
    if kind == KURSBETYG:
        return GradeRecord(
            **common,
            code=children.text("kurskod"),
            omdome=parse_xs_boolean(children.required("omdöme").text),
        )
    term = children.get("termin")
    sprak = children.optional_text("språk")
    term_children = None if term is None else _Children(term, where)
    return GradeRecord(
        **common,
        code=subject_code(children.text("ämnesförkortning"), sprak),
        sprak=sprak,
        termin=None if term_children is None else Termin(term_children.text("typ").strip(),
                                                         _xs_integer(term_children.required("år").text)),
        slutbetyg=parse_xs_boolean(children.required("slutbetyg").text),
    )


def student_from_element(element: etree._Element) -> StudentGrades:
    """One `<elev>` element as a StudentGrades; the pipeline validates each element before building it."""
    student_id = element.get("id")
    if student_id is None:
        raise InvalidDocumentError("<elev> lacks its required id attribute")
    grades = tuple(_grade(child, student_id) for child in element
                   if isinstance(child.tag, str) and child.tag in (_q(AMNESBETYG), _q(KURSBETYG)))
    return StudentGrades(student_id, grades)


def iter_students(source: Source) -> Iterator[StudentGrades]:
    """Each ``<elev>`` of the document in order, built and released one at a time."""
    for element in elev_elements(source):
        yield student_from_element(element)


def _leaf(xf: etree.xmlfile, name: str, text: str) -> None:
    with xf.element(_q(name)):
        xf.write(text)


def _write_grade(xf: etree.xmlfile, grade: GradeRecord) -> None:
    with xf.element(_q(grade.kind)):
        _leaf(xf, "value", grade.value)
        _leaf(xf, "datum", grade.datum.isoformat())
        _leaf(xf, "prövning", xs_boolean(grade.provning))
        if grade.betygsgrupp is not None:
            _leaf(xf, "betygsgrupp", grade.betygsgrupp)
        _leaf(xf, "skola", grade.skola)
        with xf.element(_q("beslutsfattare"), roll=grade.beslutsfattare_roll):
            for person in grade.beslutsfattare:
                _leaf(xf, "person", person)
        _leaf(xf, "skolform", grade.skolform)
        if grade.kind == KURSBETYG:
            _leaf(xf, "kurskod", grade.code)
            _leaf(xf, "omdöme", xs_boolean(grade.omdome))
            return
        _leaf(xf, "ämnesförkortning", grade.code)
        if grade.sprak is not None:
            _leaf(xf, "språk", grade.sprak)
        if grade.termin is not None:
            with xf.element(_q("termin")):
                _leaf(xf, "typ", grade.termin.typ)
                _leaf(xf, "år", str(grade.termin.ar))
        _leaf(xf, "slutbetyg", xs_boolean(True if grade.slutbetyg is None else grade.slutbetyg))


def encode(out: IO[bytes] | Path, students: Iterable[StudentGrades], start: dt.datetime, end: dt.datetime) -> None:
    """Write a ``<betyg from= tom=>`` document, one student at a time (``students`` may be a generator).

    The XSD wants a student's ämnesbetyg before their kursbetyg; grades are written in that order,
    each kind keeping its given order. An ämnesbetyg without ``slutbetyg`` is written as a slutbetyg,
    which the XSD documents as the value for school forms without terminsbetyg.
    """
    with etree.xmlfile(str(out) if isinstance(out, Path) else out, encoding="utf-8") as xf:
        xf.write_declaration()
        root_attributes = {"from": format_xs_datetime(start), "tom": format_xs_datetime(end)}
        with xf.element(_q("betyg"), root_attributes, nsmap={None: NAMESPACE}):
            for student in students:
                with xf.element(_q("elev"), id=student.student_id):
                    for kind in GRADE_KINDS:
                        for grade in student.grades:
                            if grade.kind == kind:
                                _write_grade(xf, grade)
