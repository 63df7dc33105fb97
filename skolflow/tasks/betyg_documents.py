"""Reading the platform's exports student by student, with the XSD applied to each student.

Validating the whole document at once would turn one malformed student into a failed run; here a
student who breaks the schema is rejected with the schema's message and the rest go on. Each
``<elev>`` is validated inside a copy of the root (with the document's from/tom), so the check is
exactly the official XSD's, and memory stays flat because elements are released as they pass.

Both readers refuse a document that is not the Betyg API's ``<betyg>`` (another root or namespace)
with :class:`skolflow.connectors.betyg.codec.InvalidDocumentError` before yielding anything: read
leniently it would be a window without students, and a run would report nothing and move on.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from skolflow.connectors import xmlsafe
from skolflow.connectors.betyg import codec as betyg_codec
from skolflow.connectors.betygsdokument import codec as dokument_codec
from skolflow.connectors.betygsdokument.models import GradeDocument
from skolflow.errors import sanitise
from skolflow.tasks.beda_report import StudentInput


def checked_students(path: Path) -> Iterator[StudentInput]:
    xsd = xmlsafe.load_schema(betyg_codec.SCHEMA_PATH)
    root_attributes = xmlsafe.root_attributes(path)
    for element in betyg_codec.elev_elements(path):
        student_id = element.get("id", "")
        wrapper = etree.Element(f"{{{betyg_codec.NAMESPACE}}}betyg", root_attributes)
        wrapper.append(copy.deepcopy(element))
        if not xsd.validate(wrapper):
            yield StudentInput(student_id=student_id, schema_errors=[f"XSD: {e.message}" for e in xsd.error_log])
            continue
        try:
            yield StudentInput(student_id=student_id, grades=betyg_codec.student_from_element(element))
        except betyg_codec.InvalidDocumentError as exc:
            yield StudentInput(student_id=student_id, schema_errors=[str(sanitise(exc))])


def student_ids(path: Path) -> Iterator[str]:
    """The platform ids of a Betyg document's students, read without building their grades."""
    for element in betyg_codec.elev_elements(path):
        yield element.get("id", "")


def read_documents(path: Path) -> Iterator[GradeDocument]:
    return dokument_codec.iter_documents(path)
