"""Reading the platform's exports student by student, with the XSD applied to each student.

Validating the whole document at once would turn one malformed student into a failed run; here a
student who breaks the schema is rejected with the schema's message and the rest go on. The official
XSD declares ``<elev>`` globally, so each is validated in place as it streams past (no copy of it, no
wrapper per student); the root's own attributes (from/tom) are checked once, and what is wrong with them
is every student's problem too, as when each student was validated inside a copy of the root. Memory
stays flat because elements are released as they pass.

Both readers refuse a document that is not the Betyg API's ``<betyg>`` (another root or namespace)
with :class:`skolflow.connectors.betyg.codec.InvalidDocumentError` before yielding anything: read
leniently it would be a window without students, and a run would report nothing and move on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO

from lxml import etree

from skolflow.connectors import xmlsafe
from skolflow.connectors.betyg import codec as betyg_codec
from skolflow.connectors.betygsdokument import codec as dokument_codec
from skolflow.connectors.betygsdokument.models import GradeDocument
from skolflow.errors import sanitise
from skolflow.tasks.beda_report import StudentInput


def checked_students(source: Path | IO[bytes]) -> Iterator[StudentInput]:
    """Each student of a Betyg document, checked against the XSD, in one pass over ``source``."""
    xsd = xmlsafe.load_schema(betyg_codec.SCHEMA_PATH)
    root_errors: list[str] | None = None
    for element in betyg_codec.elev_elements(source):
        if root_errors is None:  # the root's attributes are all read once its first child is
            root = element.getroottree().getroot()
            empty_root = etree.Element(root.tag, dict(root.attrib))
            root_errors = [] if xsd.validate(empty_root) else [f"XSD: {e.message}" for e in xsd.error_log]
        student_id = element.get("id", "")
        valid = xsd.validate(element)
        if root_errors or not valid:
            errors = [] if valid else [f"XSD: {e.message}" for e in xsd.error_log]
            yield StudentInput(student_id=student_id, schema_errors=root_errors + errors)
            continue
        try:
            yield StudentInput(student_id=student_id, grades=betyg_codec.student_from_element(element))
        except betyg_codec.InvalidDocumentError as exc:
            yield StudentInput(student_id=student_id, schema_errors=[str(sanitise(exc))])


def read_documents(path: Path) -> Iterator[GradeDocument]:
    return dokument_codec.iter_documents(path)
