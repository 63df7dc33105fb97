"""Skola24 (Nova Software) export services as skolflow models them: client, wire models, XML codec, sandbox.

Skola24 publishes no contract; skolflow's model is in ``schemas/skola24/`` (DESIGN §4) and stays behind
this package, so the real one can replace it without touching flows. The sandbox
(``skolflow.connectors.skola24.sandbox.create_app``) is not imported here, so that using the client never
pulls in FastAPI.
"""

from skolflow.connectors.skola24.client import Skola24Client, Skola24Error, date_ranges
from skolflow.connectors.skola24.codec import (
    NAMESPACE,
    InvalidDocumentError,
    decode_error,
    decode_lessons,
    decode_organisation,
    encode_error,
    encode_lessons,
    encode_organisation,
    validate_schema,
)
from skolflow.connectors.skola24.models import (
    MAX_RANGE_DAYS,
    ErrorBody,
    Group,
    Lesson,
    LessonExport,
    Organisation,
    Person,
    School,
)

__all__ = [
    "MAX_RANGE_DAYS",
    "NAMESPACE",
    "ErrorBody",
    "Group",
    "InvalidDocumentError",
    "Lesson",
    "LessonExport",
    "Organisation",
    "Person",
    "School",
    "Skola24Client",
    "Skola24Error",
    "date_ranges",
    "decode_error",
    "decode_lessons",
    "decode_organisation",
    "encode_error",
    "encode_lessons",
    "encode_organisation",
    "validate_schema",
]
