"""Reading and writing skolflow's Skola24 documents (namespace ``urn:skolflow:skola24:v1``).

Reading goes through :func:`skolflow.connectors.xmlsafe.parse`: an answer is bounded (one Export Lektion
call covers at most 93 days of one school), so a whole document is parsed at once. :func:`validate_schema`
checks a document against ``schemas/skola24/skola24-export.xsd``; the sandbox writes with the ``encode_*``
functions, and the tests check that what they write is valid.

Encoding a V1 export writes only what V1 carries (teacher signatures and group names): the V3-only fields
of a :class:`~skolflow.connectors.skola24.models.Lesson` are left out, as Skola24's V1 service leaves them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from lxml import etree

from skolflow.connectors import xmlsafe
from skolflow.connectors.skola24.models import (
    V1,
    V3,
    ErrorBody,
    Group,
    Lesson,
    LessonExport,
    Organisation,
    Person,
    School,
)

NAMESPACE = "urn:skolflow:skola24:v1"
SCHEMA_PATH = Path(__file__).resolve().parents[3] / "schemas" / "skola24" / "skola24-export.xsd"
ROOTS = {V1: "ExportLektion", V3: "ExportLektionV3"}


class InvalidDocumentError(xmlsafe.XmlDocumentError):
    """A well-formed document that is not what the contract says (validate it to see every fault)."""


def _q(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


# --- validation ----------------------------------------------------------------------------------------------


def validate_schema(data: bytes) -> list[str]:
    """Every XSD violation as ``"line N: message"``; empty when valid. Entities are refused (UnsafeXmlError)."""
    return xmlsafe.schema_errors(data, SCHEMA_PATH)


# --- reading -------------------------------------------------------------------------------------------------


def _attr(element: etree._Element, name: str) -> str:
    value = element.get(name)
    if value is None:
        raise InvalidDocumentError(f"<{_local(element)}> lacks its required attribute {name!r}")
    return value


def _invalid(element: etree._Element, name: str, kind: str) -> InvalidDocumentError:
    return InvalidDocumentError(f"<{_local(element)}>: {name}={element.get(name)!r} is not an {kind}")


def _date(element: etree._Element, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(_attr(element, name))
    except ValueError as exc:
        raise _invalid(element, name, "xs:date") from exc


def _time(element: etree._Element, name: str) -> dt.time:
    try:
        return dt.time.fromisoformat(_attr(element, name))
    except ValueError as exc:
        raise _invalid(element, name, "xs:time") from exc


def _datetime(element: etree._Element, name: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(_attr(element, name))
    except ValueError as exc:
        raise _invalid(element, name, "xs:dateTime") from exc


def _boolean(element: etree._Element, name: str) -> bool:
    value = _attr(element, name)
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise InvalidDocumentError(f"<{_local(element)}>: {name}={value!r} is not an xs:boolean")


def _root(data: bytes, *names: str) -> etree._Element:
    root = xmlsafe.parse(data)
    if etree.QName(root).namespace != NAMESPACE or _local(root) not in names:
        raise InvalidDocumentError(f"expected <{'> or <'.join(names)}> in {NAMESPACE}, got {root.tag}")
    return root


def _section(root: etree._Element, name: str) -> etree._Element:
    found = root.find(_q(name))
    if found is None:
        raise InvalidDocumentError(f"<{_local(root)}> lacks <{name}>")
    return found


def decode_organisation(data: bytes) -> Organisation:
    """An ``<ExportOrganisation>`` document as an Organisation."""
    root = _root(data, "ExportOrganisation")
    schools = tuple(School(_attr(e, "guid"), _attr(e, "name")) for e in _section(root, "Schools").iter(_q("School")))
    persons = tuple(
        Person(_attr(e, "guid"), _attr(e, "role"), _attr(e, "school"), personnummer=e.get("personnummer"),
               email=e.get("workEmail"), signature=e.get("signature"))
        for e in _section(root, "Persons").iter(_q("Person")))
    groups = tuple(
        Group(_attr(e, "guid"), _attr(e, "name"), _attr(e, "type"), _attr(e, "school"),
              members=tuple(_attr(m, "guid") for m in e.iter(_q("Member"))),
              teachers=tuple(_attr(t, "guid") for t in e.iter(_q("Teacher"))))
        for e in _section(root, "Groups").iter(_q("Group")))
    return Organisation(_attr(root, "domain"), schools, persons, groups)


def _lesson(element: etree._Element, version: str) -> Lesson:
    subject = element.find(_q("Subject"))
    if subject is None:
        raise InvalidDocumentError(f"lesson {element.get('guid')} lacks <Subject>")
    teachers = element.findall(_q("Teacher"))
    groups = element.findall(_q("Group"))
    common = {
        "guid": _attr(element, "guid"),
        "subject": subject.text or "",
        "date": _date(element, "date"),
        "start": _time(element, "start"),
        "end": _time(element, "end"),
        "teacher_signatures": tuple(_attr(t, "signature") for t in teachers),
        "group_names": tuple(_attr(g, "name") for g in groups),
    }
    if version == V1:
        return Lesson(**common)
    return Lesson(
        **common,
        teachers=tuple(_attr(t, "guid") for t in teachers),
        groups=tuple(_attr(g, "guid") for g in groups),
        rooms=tuple(_attr(r, "name") for r in element.findall(_q("Room"))),
        changed=_datetime(element, "changed"),
    )


def decode_lessons(data: bytes) -> LessonExport:
    """An ``<ExportLektion>`` (V1) or ``<ExportLektionV3>`` document as a LessonExport."""
    root = _root(data, *ROOTS.values())
    version = V3 if _local(root) == ROOTS[V3] else V1
    return LessonExport(
        domain=_attr(root, "domain"),
        school=_attr(root, "school"),
        start=_date(root, "from"),
        end=_date(root, "to"),
        published=_boolean(root, "published"),
        version=version,
        lessons=tuple(_lesson(element, version) for element in root.iterfind(_q("Lesson"))),
    )


def decode_error(data: bytes) -> ErrorBody:
    """An ``<error code="…" message="…"/>`` body; InvalidDocumentError (or XmlDocumentError) when it is not one."""
    root = _root(data, "error")
    return ErrorBody(_attr(root, "code"), _attr(root, "message"))


# --- writing -------------------------------------------------------------------------------------------------


def _element(parent: etree._Element | None, tag: str, /, **attributes: str | None) -> etree._Element:
    values = {key: value for key, value in attributes.items() if value is not None}
    if parent is None:
        return etree.Element(_q(tag), values, nsmap={None: NAMESPACE})
    return etree.SubElement(parent, _q(tag), values)


def _serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _xs_time(value: dt.time) -> str:
    return value.isoformat(timespec="seconds")


def encode_organisation(organisation: Organisation) -> bytes:
    root = _element(None, "ExportOrganisation", domain=organisation.domain)
    schools = _element(root, "Schools")
    for school in organisation.schools:
        _element(schools, "School", guid=school.guid, name=school.name)
    persons = _element(root, "Persons")
    for person in organisation.persons:
        _element(persons, "Person", guid=person.guid, role=person.role, school=person.school,
                 personnummer=person.personnummer, workEmail=person.email, signature=person.signature)
    groups = _element(root, "Groups")
    for group in organisation.groups:
        element = _element(groups, "Group", guid=group.guid, name=group.name, type=group.type, school=group.school)
        for member in group.members:
            _element(element, "Member", guid=member)
        for teacher in group.teachers:
            _element(element, "Teacher", guid=teacher)
    return _serialise(root)


def _write_lesson(parent: etree._Element, lesson: Lesson, version: str) -> None:
    v3 = version == V3
    if v3 and lesson.changed is None:
        raise ValueError(f"lesson {lesson.guid}: Export Lektion V3 needs its changed time")
    element = _element(parent, "Lesson", guid=lesson.guid, date=lesson.date.isoformat(), start=_xs_time(lesson.start),
                       end=_xs_time(lesson.end),
                       changed=lesson.changed.isoformat(timespec="seconds") if v3 and lesson.changed else None)
    subject = _element(element, "Subject")
    subject.text = lesson.subject
    if v3:
        if len(lesson.teacher_signatures) != len(lesson.teachers) or len(lesson.group_names) != len(lesson.groups):
            raise ValueError(f"lesson {lesson.guid}: V3 gives every teacher a signature and every group a name")
        for guid, signature in zip(lesson.teachers, lesson.teacher_signatures, strict=True):
            _element(element, "Teacher", guid=guid, signature=signature)
        for guid, name in zip(lesson.groups, lesson.group_names, strict=True):
            _element(element, "Group", guid=guid, name=name)
        for room in lesson.rooms:
            _element(element, "Room", name=room)
    else:
        for signature in lesson.teacher_signatures:
            _element(element, "Teacher", signature=signature)
        for name in lesson.group_names:
            _element(element, "Group", name=name)


def encode_lessons(export: LessonExport) -> bytes:
    """``<ExportLektion>`` or ``<ExportLektionV3>`` after ``export.version``; no lessons when unpublished."""
    root = _element(None, ROOTS[export.version], domain=export.domain, school=export.school,
                    **{"from": export.start.isoformat(), "to": export.end.isoformat()},
                    published="true" if export.published else "false")
    if export.published:
        for lesson in export.lessons:
            _write_lesson(root, lesson, export.version)
    return _serialise(root)


def encode_error(error: ErrorBody) -> bytes:
    return _serialise(_element(None, "error", code=error.code, message=error.message))
