"""XML of Udir's eksamen API: one encoder and one decoder driven by the models, and XSD validation.

The models (:mod:`skolflow.connectors.udir.models`) carry what the XML needs: element names (aliases),
the order (field order), the namespace of child elements (``xml_ns``), list item names (``xml_item``)
and which empty elements are ``xsi:nil`` (``xml_nillable``). Decoding reads only through
:mod:`skolflow.connectors.xmlsafe` and hands pydantic a plain dict, so types are checked in one place.
Validation uses the project's copies of Udir's XSDs in ``schemas/udir/``.
"""

from __future__ import annotations

import tempfile
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from lxml import etree
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from skolflow.connectors import xmlsafe
from skolflow.connectors.udir.models import (
    NS_EP,
    NS_KO,
    NS_PA,
    ApiError,
    EksamensplanResponse,
    Karakteroversikt,
    Pamelding,
    PameldingReference,
    PameldingReport,
    PameldteKandidater,
    UdirModel,
)
from skolflow.identity import mask_text

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas" / "udir"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

# Each document: (root namespace, root element, XSD file).
DOCUMENTS: dict[type[UdirModel], tuple[str, str, str]] = {
    Pamelding: (NS_PA, "Pamelding", "Pamelding.xsd"),
    PameldingReference: (NS_PA, "PameldingReference", "PameldingReference.xsd"),
    PameldingReport: (NS_PA, "PameldingReport", "PameldingReport.xsd"),
    PameldteKandidater: (NS_PA, "PameldteKandidater", "PameldteKandidater.xsd"),
    ApiError: (NS_PA, "ApiError", "ApiError.xsd"),
    EksamensplanResponse: (NS_EP, "EksamensplanResponse", "Eksamensplan.xsd"),
    Karakteroversikt: (NS_KO, "Karakteroversikt", "Karakteroversikt.xsd"),
}

Doc = TypeVar("Doc", bound=UdirModel)


class InvalidUdirDocument(xmlsafe.XmlDocumentError):
    """A document that is not the XSD's shape; the message has identity numbers masked."""


def _qname(namespace: str | None, name: str) -> str:
    return f"{{{namespace}}}{name}" if namespace else name


def _list_item_model(field: FieldInfo) -> type[UdirModel] | None:
    """The item model of a ``list[Model]`` field, or None for any other field."""
    annotation = field.annotation
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        if isinstance(item, type) and issubclass(item, UdirModel):
            return item
    return None


def _nested_model(field: FieldInfo) -> type[UdirModel] | None:
    annotation = field.annotation
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, UdirModel):
            return candidate
    return None


def _text(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _fill(parent: etree._Element, model: UdirModel) -> None:
    for name, field in type(model).model_fields.items():
        alias = field.alias or name
        value = getattr(model, name)
        tag = _qname(model.xml_ns, alias)
        item_model = _list_item_model(field)
        if item_model is not None:
            wrapper = etree.SubElement(parent, tag)
            for item in value:
                _fill(etree.SubElement(wrapper, _qname(item.xml_ns, item_model.xml_item)), item)
        elif value is None:
            if alias in model.xml_nillable:
                etree.SubElement(parent, tag).set(f"{{{XSI}}}nil", "true")
        elif isinstance(value, UdirModel):
            _fill(etree.SubElement(parent, tag), value)
        else:
            etree.SubElement(parent, tag).text = _text(value)


def encode(document: UdirModel) -> bytes:
    """The document as UTF-8 XML, in the namespaces and element order of its XSD."""
    namespace, root_name, _ = DOCUMENTS[type(document)]
    root = etree.Element(_qname(namespace, root_name), nsmap={"pa": NS_PA, "ct": "http://pas.udir.no/CommonTypes",
                                                                 "ep": NS_EP, "ko": NS_KO, "xsi": XSI})
    _fill(root, document)
    etree.cleanup_namespaces(root)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def _read(model: type[UdirModel], element: etree._Element) -> dict[str, Any]:
    fields = {(field.alias or name): field for name, field in model.model_fields.items()}
    values: dict[str, Any] = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        alias = etree.QName(child).localname
        field = fields.get(alias)
        if field is None:
            continue
        if child.get(f"{{{XSI}}}nil") in ("true", "1"):
            values[alias] = [] if _list_item_model(field) else None
        elif (item_model := _list_item_model(field)) is not None:
            values[alias] = [_read(item_model, item) for item in child if isinstance(item.tag, str)]
        elif (nested := _nested_model(field)) is not None:
            values[alias] = _read(nested, child)
        else:
            values[alias] = child.text or ""
    return values


def decode(model: type[Doc], data: bytes) -> Doc:
    """Parse (safely) and read one document; a document of another shape is :class:`InvalidUdirDocument`."""
    root = xmlsafe.parse(data)
    _, root_name, _ = DOCUMENTS[model]
    if etree.QName(root).localname != root_name:
        raise InvalidUdirDocument(f"expected <{root_name}>, got <{etree.QName(root).localname}>")
    try:
        return model.model_validate(_read(model, root))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors(include_url=False, include_input=False))
        raise InvalidUdirDocument(f"not a valid {root_name}: {problems}") from None


def validate(model: type[UdirModel], data: bytes) -> list[str]:
    """Every XSD violation of ``data`` as the ``model``'s document, masked; empty when valid.

    Parses through xmlsafe, so a document declaring entities raises instead of being validated.
    """
    return [mask_text(problem) for problem in xmlsafe.schema_errors(data, SCHEMA_DIR / DOCUMENTS[model][2])]


def validate_with(files: Mapping[str, bytes], model: type[UdirModel], data: bytes) -> list[str]:
    """Every XSD violation against the XSDs as Udir serves them today (its ``skjema`` ZIP), masked.

    The project's copies may lag behind Udir's; validating against the served set is what Udir does.
    Each served file is read through xmlsafe first, so a schema declaring entities is refused.
    """
    name = DOCUMENTS[model][2]
    if name not in {Path(f).name for f in files}:
        return [f"{name} is missing from Udir's skjema ZIP"]
    with tempfile.TemporaryDirectory(prefix="udir-skjema-") as tmp:
        for filename, content in files.items():
            xmlsafe.parse(content)
            (Path(tmp) / Path(filename).name).write_bytes(content)
        return [mask_text(problem) for problem in xmlsafe.schema_errors(data, Path(tmp) / name)]


def schema_files() -> list[Path]:
    """The XSDs this connector validates with (the sandbox's ``skjema`` ZIP holds these)."""
    return sorted(SCHEMA_DIR.glob("*.xsd"))
