"""Exceptions reduced to what may be shown: where (file, record id), field path and rule — never the input.

Prefect writes what an exception says into logs, state messages, events and the console, and several
kinds quote what they were reading: ``repr(UnicodeDecodeError)`` holds the whole file, pydantic's errors
their ``input_value`` (and some ``msg`` texts a piece of it), lxml's and xmlschema's the offending value,
httpx's the URL with its query. :func:`sanitise` is the one place that knows which is which (DESIGN §5,
sanitised errors); :mod:`skolflow.boundary` applies it to everything that leaves a task or a flow, and a
reader that knows which record failed applies it earlier, with the record's id.

An exception of a kind not known here keeps its type name only: its text could be anything, and
:func:`skolflow.identity.mask_text` masks identity numbers but not names or addresses.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any

import httpx
from lxml import etree
from pydantic import ValidationError

from skolflow.connectors.http import RemoteError
from skolflow.connectors.xmlsafe import XmlDocumentError
from skolflow.guard import ProductionGuardError
from skolflow.identity import InvalidIdentity, mask_email, mask_text

MAX_PROBLEMS = 10  # per exception; the rest are counted

# Context pydantic takes from the model, never from the input (``error`` and ``tag``, for instance, can quote it).
MODEL_CONTEXT = ("expected", "pattern", "min_length", "max_length", "gt", "ge", "lt", "le", "multiple_of",
                 "max_digits", "decimal_places")

# skolflow's own exceptions whose messages are built only from masked or impersonal parts, named rather than
# imported: their modules import Prefect (a plain module cannot) or import this one.
SAFE_BY_NAME = frozenset({
    "skolflow.blocks.MissingCredentials",
    "skolflow.deployments.DeploymentConfigError",
    "skolflow.tasks.schools.SchoolConfigError",
    "skolflow.connectors.dnp.client.PayloadTooLarge",
    "skolflow.connectors.dnp.client.JobTimeout",
    "skolflow.connectors.ss12000.client.PagingError",
})

_EMAIL = re.compile(r"[^\s@'\"<>()\[\]{},;:/]+@[^\s@'\"<>()\[\]{},;:/]+\.[A-Za-z]{2,}")
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
# libxml2 quotes the schema's names after these words, and the document's values everywhere else.
_LIBXML2_NAMES = frozenset({"Element", "element", "attribute", "facet", "type", "pattern"})


class SafeError(Exception):
    """An exception whose message skolflow builds only from what may be shown; it leaves every boundary as it is."""


class SanitisedError(SafeError):
    """What an exception came to after :func:`sanitise`; ``kind`` is the original's type name."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


class InvalidInput(SanitisedError, ValueError):
    """A sanitised ``ValueError`` (decode, validation, parse errors): still caught by ``except ValueError``."""


def scrub(text: str) -> str:
    """Identity numbers and e-mail addresses masked; for text that is shown on purpose (a remote system's words)."""
    return _EMAIL.sub(lambda match: mask_email(match.group()), mask_text(text))


def libxml2_text(message: str) -> str:
    """A libxml2 (lxml) message with the document's values taken out, the schema's names kept.

    For messages that are already text (``xmlsafe.schema_errors``); an lxml exception is reduced from its
    error log instead. ``Element 'Fornavn': [facet 'maxLength'] The value 'Kari …' has a length of '61'``
    becomes ``Element 'Fornavn': [facet 'maxLength'] The value '…' has a length of '…'``.
    """

    def shown(quoted: re.Match[str]) -> str:
        before = message[:quoted.start()].split()
        return quoted.group() if before and before[-1].strip("[(") in _LIBXML2_NAMES else "'…'"

    return scrub(re.sub(r"'[^'\n]*'", shown, message))


def sanitise(exc: BaseException, *, where: str = "", json_document: str | bytes | None = None) -> BaseException:
    """``exc`` itself when its message may be shown, else an exception saying only where, which field, which rule.

    ``where`` names the file or request; ``json_document`` is the JSON a pydantic error was raised on, so
    that each problem names the record (the outermost object on its path with an ``id``) it is in.
    Raise the result ``from None``: the original must not travel along as ``__cause__``. A signal that is
    not an ``Exception`` (cancellation, interrupt) carries no input and is returned as it is.
    """
    if not isinstance(exc, Exception) or _shown_as_is(exc):
        return exc
    if isinstance(exc, RemoteError):
        # The remote system's own words are shown (DESIGN §5), with identity numbers already masked; an
        # address it echoes is masked here too. The body stays on the exception for the ledger.
        exc.args = tuple(scrub(str(arg)) for arg in exc.args)
        return exc
    return _reduced(exc, where, _detail(exc, json_document))


def _shown_as_is(exc: Exception) -> bool:
    if isinstance(exc, SafeError | ProductionGuardError | InvalidIdentity):
        return True
    return any(f"{cls.__module__}.{cls.__qualname__}" in SAFE_BY_NAME for cls in type(exc).__mro__)


def _reduced(exc: Exception, where: str, detail: str) -> SanitisedError:
    kind = type(exc).__name__
    message = ": ".join(part for part in (kind, where, detail) if part)
    reduced = InvalidInput(message, kind) if isinstance(exc, ValueError) else SanitisedError(message, kind)
    # The frames say where it happened (file, line, code); they hold no message.
    return reduced.with_traceback(exc.__traceback__)


def _detail(exc: Exception, json_document: str | bytes | None) -> str:
    """What may be said about ``exc``: position, path and rule, or nothing for a kind not known here."""
    if isinstance(exc, UnicodeDecodeError | UnicodeEncodeError):
        verb = "readable" if isinstance(exc, UnicodeDecodeError) else "writable"
        unit = "byte" if isinstance(exc, UnicodeDecodeError) else "character"
        return f"not {verb} as {exc.encoding} at {unit} {exc.start}"
    if isinstance(exc, ValidationError):
        return _validation(exc, json_document)
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
    if isinstance(exc, etree.LxmlError):
        return _lxml(exc)
    if isinstance(exc, XmlDocumentError):
        # skolflow's own message, but it may quote the document (a value, lxml's text): the lxml error it
        # was raised from says where; without one, the message is kept with quoted values taken out.
        cause = exc.__cause__ or exc.__context__
        return _lxml(cause) if isinstance(cause, etree.LxmlError) else _QUOTED.sub("'…'", scrub(str(exc)))
    if isinstance(exc, httpx.HTTPError):
        return _http(exc)
    xmlschema = sys.modules.get("xmlschema")  # not imported by anything: then none of its errors can exist
    if xmlschema is not None and isinstance(exc, xmlschema.XMLSchemaValidationError):
        line = f"line {exc.sourceline}, " if exc.sourceline else ""
        return f"{line}{exc.path or '?'}: {type(exc.validator).__name__}"
    return ""


def _validation(exc: ValidationError, json_document: str | bytes | None) -> str:
    document = _json(json_document)
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        record, loc = _record(document, error["loc"])
        context = ", ".join(f"{key}={error['ctx'][key]}" for key in MODEL_CONTEXT if key in error.get("ctx", {}))
        problems.append("".join((f"record {scrub(record)}: " if record else "", _path(loc) or "(document)", ": ",
                                 error["type"], f" ({context})" if context else "")))
    return f"{exc.title}: {_listed(problems)}"


def _json(document: str | bytes | None) -> Any:
    if document is None:
        return None
    try:
        return json.loads(document)
    except ValueError:
        return None


def _record(document: Any, loc: Sequence[int | str]) -> tuple[str | None, Sequence[int | str]]:
    """The id of the outermost object with one on ``loc``'s way through ``document``, and the path below it."""
    node = document
    for depth in range(len(loc) + 1):
        if isinstance(node, dict) and isinstance(node.get("id"), str | int):
            return str(node["id"]), loc[depth:]
        if depth == len(loc):
            break
        try:
            node = node[loc[depth]]
        except (KeyError, IndexError, TypeError):
            break
    return None, loc


def _path(loc: Sequence[int | str]) -> str:
    """``addresses[0].type``; a key that came from the input (a dict's) is scrubbed like any text."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f"{'.' if path else ''}{scrub(str(part))}"
    return path


def _lxml(exc: etree.LxmlError) -> str:
    """Line, column, element path and libxml2's rule name for each error; libxml2's text quotes values."""
    entries = [entry for entry in exc.error_log if entry.level >= etree.ErrorLevels.ERROR]
    if isinstance(exc, etree.XMLSyntaxError):
        # Its log is a copy of the thread's, earlier documents' errors included: only its own entry counts.
        entries = [entry for entry in entries if (entry.type, entry.line) == (exc.code, exc.lineno)][-1:]
    return _listed([f"line {entry.line}, column {entry.column}{f', {entry.path}' if entry.path else ''}: "
                    f"{entry.type_name}" for entry in entries])


def _http(exc: httpx.HTTPError) -> str:
    """Method, host and masked path; never the query, the body or httpx's text (which quotes the URL)."""
    try:
        request = exc.request
    except RuntimeError:  # raised without a request: nothing to say but its type
        return ""
    url = request.url
    port = f":{url.port}" if url.port else ""
    detail = f"{request.method} {url.scheme}://{url.host}{port}{scrub(url.path)}"
    if isinstance(exc, httpx.HTTPStatusError):
        detail += f": HTTP {exc.response.status_code}"
    return detail


def _listed(problems: list[str]) -> str:
    more = len(problems) - MAX_PROBLEMS
    return "; ".join(problems[:MAX_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
