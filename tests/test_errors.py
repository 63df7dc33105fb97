"""Sanitised errors: what an exception may say once it is reduced (skolflow.errors), kind by kind."""

from __future__ import annotations

import importlib
import json
import pickle
from pathlib import Path

import httpx
import pytest
import respx
import xmlschema
from lxml import etree
from pydantic import BaseModel, ValidationError, field_validator

from skolflow.connectors import xmlsafe
from skolflow.connectors.http import RemoteError
from skolflow.connectors.ss12000.client import SS12000Client
from skolflow.errors import (
    SAFE_BY_NAME,
    InvalidInput,
    SanitisedError,
    libxml2_text,
    sanitise,
)
from skolflow.guard import ProductionGuardError
from skolflow.identity import InvalidIdentity, validate_norwegian_fodselsnummer
from skolflow.tasks.udir_candidates import CandidateFileError

NAME, STREET, CIVIC, EMAIL = "Ødegård", "Storgatan 12", "201002037271", "kari.odegard@skole.example.no"
PERSONAL = (NAME, STREET, CIVIC, CIVIC[2:], EMAIL)
SS12000 = "http://127.0.0.1:8999/v2.0"  # loopback: the default door lets it out


def shows_nothing_personal(exc: BaseException) -> None:
    """Neither what it says nor its repr (Prefect logs both) holds any of PERSONAL."""
    for text in (str(exc), repr(exc)):
        assert not [value for value in PERSONAL if value in text], text


def person(**changes: object) -> dict[str, object]:
    return {"id": "00000000-0000-4000-8000-000000000007",
            "meta": {"created": "2024-01-01T00:00:00+00:00", "modified": "2024-01-01T00:00:00+00:00"},
            "givenName": "Kari", "familyName": NAME, "civicNo": {"value": CIVIC, "nationality": "SE"},
            "emails": [{"value": EMAIL, "type": "Privat"}], **changes}


def test_a_decode_error_names_file_encoding_and_byte_never_the_bytes() -> None:
    content = f"fornavn;etternavn;epost\nKari;{NAME};{EMAIL};{CIVIC}\n".encode("latin-1")
    with pytest.raises(UnicodeDecodeError) as raised:
        content.decode("utf-8")
    assert EMAIL in repr(raised.value) and CIVIC in repr(raised.value)  # what Prefect logged: the whole file

    reduced = sanitise(raised.value, where="kandidater.csv")

    assert isinstance(reduced, InvalidInput) and isinstance(reduced, ValueError)
    assert str(reduced) == f"UnicodeDecodeError: kandidater.csv: not readable as utf-8 at byte {content.index(0xd8)}"
    assert reduced.kind == "UnicodeDecodeError"
    shows_nothing_personal(reduced)
    with pytest.raises(UnicodeEncodeError) as unwritable:
        f"{EMAIL} {NAME}".encode("ascii")
    assert str(sanitise(unwritable.value)) == f"UnicodeEncodeError: not writable as ascii at character {len(EMAIL) + 1}"


@respx.mock
async def test_an_ss12000_address_skolflow_does_not_use_never_fails_the_person() -> None:
    """Tolerant reader (issue 12): an address with an unknown type is not validated, so it cannot leak in an error."""
    bad = person(addresses=[{"type": "Hemma", "streetAddress": STREET, "locality": "Sandvik", "postalCode": "12345",
                             "country": "SE"}])
    respx.get(f"{SS12000}/persons").mock(return_value=httpx.Response(200, json={"data": [person(id="p-ok"), bad]}))
    async with SS12000Client(SS12000, "token") as ss:
        read = [p async for p in ss.persons()]
    assert [p.id for p in read] == ["p-ok", bad["id"]]


def test_pydantic_messages_that_quote_the_input_are_left_out() -> None:
    class Teacher(BaseModel):
        epost: str
        fodselsnummer: int

        @field_validator("epost")
        @classmethod
        def school_address(cls, value: str) -> str:
            raise ValueError(f"{value} is not a school address")  # a msg quoting the input

    with pytest.raises(ValidationError) as raised:
        Teacher.model_validate({"epost": EMAIL, "fodselsnummer": f"{CIVIC}x"})
    assert EMAIL in str(raised.value)

    reduced = sanitise(raised.value)

    assert str(reduced) == "ValidationError: Teacher: epost: value_error; fodselsnummer: int_parsing"
    shows_nothing_personal(reduced)


def test_model_context_is_kept_and_json_errors_name_the_place() -> None:
    class Named(BaseModel):
        fornavn: str = ""
        model_config = {"str_max_length": 3}

    with pytest.raises(ValidationError) as too_long:
        Named.model_validate({"fornavn": NAME})
    assert str(sanitise(too_long.value)) == "ValidationError: Named: fornavn: string_too_long (max_length=3)"
    with pytest.raises(json.JSONDecodeError) as broken:
        json.loads(f'[{{"fornavn": "{NAME}" "x"}}]')
    assert str(sanitise(broken.value, where="k.json")) == \
        "JSONDecodeError: k.json: not valid JSON at line 1, column 24 (Expecting ',' delimiter)"


def test_lxml_errors_keep_line_column_path_and_rule() -> None:
    with pytest.raises(etree.XMLSyntaxError) as syntax:
        etree.fromstring(f"<kandidat><navn>{NAME}</kandidat>".encode())
    schema = etree.XMLSchema(etree.fromstring(
        b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="kandidat"><xs:complexType>'
        b'<xs:sequence><xs:element name="navn"><xs:simpleType><xs:restriction base="xs:string">'
        b'<xs:maxLength value="3"/></xs:restriction></xs:simpleType></xs:element></xs:sequence></xs:complexType>'
        b'</xs:element></xs:schema>'))
    with pytest.raises(etree.DocumentInvalid) as invalid:
        schema.assertValid(etree.fromstring(f"<kandidat><navn>{NAME}</navn></kandidat>".encode()))
    with pytest.raises(xmlsafe.MalformedXmlError) as malformed:
        xmlsafe.parse(f"<kandidat><navn>{NAME}</kandidat>".encode())

    column = syntax.value.position[1]  # its log also holds earlier documents' errors
    assert str(sanitise(syntax.value)) == f"XMLSyntaxError: line 1, column {column}: ERR_TAG_NAME_MISMATCH"
    assert str(sanitise(invalid.value)) == \
        "DocumentInvalid: line 1, column 0, /kandidat/navn: SCHEMAV_CVC_MAXLENGTH_VALID"
    assert str(sanitise(malformed.value)) == f"MalformedXmlError: line 1, column {column}: ERR_TAG_NAME_MISMATCH"
    for exc in (syntax.value, invalid.value, malformed.value):
        shows_nothing_personal(sanitise(exc))


def test_xmlschema_errors_keep_line_path_and_the_failing_component() -> None:
    schema = xmlschema.XMLSchema(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="kandidat"><xs:complexType>'
        '<xs:sequence><xs:element name="navn"><xs:simpleType><xs:restriction base="xs:string">'
        '<xs:maxLength value="3"/></xs:restriction></xs:simpleType></xs:element></xs:sequence></xs:complexType>'
        '</xs:element></xs:schema>')
    with pytest.raises(xmlschema.XMLSchemaValidationError) as raised:
        schema.validate(etree.fromstring(f"<kandidat>\n<navn>{NAME}</navn></kandidat>".encode()))
    assert NAME in str(raised.value)

    assert str(sanitise(raised.value)) == "XMLSchemaValidationError: line 2, /kandidat/navn: XsdMaxLengthFacet"


def test_libxml2_text_keeps_the_schemas_names_and_drops_the_documents_values() -> None:
    message = (f"line 9: Element '{{http://pas.udir.no/Pamelding}}Etternavn': [facet 'maxLength'] The value "
               f"'{NAME}' has a length of '7'; this exceeds the allowed maximum length of '3'.")
    assert libxml2_text(message) == ("line 9: Element '{http://pas.udir.no/Pamelding}Etternavn': [facet 'maxLength'] "
                                     "The value '…' has a length of '…'; this exceeds the allowed maximum length "
                                     "of '…'.")


def test_httpx_errors_show_method_host_and_masked_path_never_query_or_body() -> None:
    request = httpx.Request("GET", f"https://beda.example/elever/{CIVIC}/meriter?epost={EMAIL}")
    status = httpx.HTTPStatusError("quoted", request=request, response=httpx.Response(404, text=NAME))
    timeout = httpx.ReadTimeout(f"timed out reading {EMAIL}", request=request)
    unsent = httpx.StreamConsumed()

    assert str(sanitise(status)) == "HTTPStatusError: GET https://beda.example/elever/20100203-****/meriter: HTTP 404"
    assert str(sanitise(timeout)) == "ReadTimeout: GET https://beda.example/elever/20100203-****/meriter"
    assert str(sanitise(unsent)) == "StreamConsumed"
    for exc in (status, timeout):
        shows_nothing_personal(sanitise(exc))


def test_an_exception_of_an_unknown_kind_keeps_only_its_type_and_where() -> None:
    # mask_text would hide the number, but not the name or the address: so nothing of the text is kept.
    for exc in (KeyError(NAME), ValueError(f"{NAME}, {STREET}: {CIVIC}"), RuntimeError(EMAIL)):
        reduced = sanitise(exc, where="rad 4")
        assert str(reduced) == f"{type(exc).__name__}: rad 4"
        assert isinstance(reduced, ValueError) is isinstance(exc, ValueError)
        shows_nothing_personal(reduced)


def test_skolflows_own_safe_exceptions_leave_as_they_are() -> None:
    with pytest.raises(InvalidIdentity) as invalid:
        validate_norwegian_fodselsnummer(CIVIC[1:])
    for exc in (ProductionGuardError("beda: profile 'test' may not reach gw.api.beda.uhr.se"), invalid.value,
                CandidateFileError("k.csv: no header"), SanitisedError("ValueError", "ValueError")):
        assert sanitise(exc) is exc


def test_a_remote_systems_words_are_kept_with_identity_numbers_and_addresses_masked() -> None:
    exc = RemoteError("dnp", 409, f"user {EMAIL} with civic number {CIVIC} already exists", method="POST",
                      url="/persons")

    assert sanitise(exc) is exc
    assert str(exc) == ("dnp answered 409 to POST /persons: user k***@skole.example.no with civic number "
                        "20100203-**** already exists")
    assert exc.body.startswith(f"user {EMAIL}")  # the ledger still gets the answer verbatim


def test_every_exception_named_safe_exists() -> None:
    for name in SAFE_BY_NAME:
        module, _, cls = name.rpartition(".")
        assert issubclass(getattr(importlib.import_module(module), cls), Exception), name


def test_a_sanitised_error_survives_pickling(tmp_path: Path) -> None:
    """Task runners (Dask) and result storage pickle exceptions."""
    reduced = sanitise(ValueError(NAME), where="k.csv")
    again = pickle.loads(pickle.dumps(reduced))
    assert type(again) is InvalidInput and str(again) == str(reduced) and again.kind == "ValueError"
