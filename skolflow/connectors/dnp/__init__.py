"""DNP, Skolverket's digital national tests: Provisioning API client, rules, open-data ids, sandboxes.

The official contracts are copied in schemas/dnp/. The sandboxes (``sandbox``, ``opendata_sandbox``)
are not imported here, so that using the clients does not pull in FastAPI.
"""

from skolflow.connectors.dnp.client import (
    MAX_PAYLOAD_BYTES,
    PRODUCTION_URL,
    READ_CALLS_PER_SECOND,
    VERIFICATION_URL,
    WRITE_CALLS_PER_SECOND,
    DnpClient,
    DnpError,
    JobTimeout,
    PayloadTooLarge,
    RateBudget,
    chunk_by_size,
    encode_record,
    shared_budget,
)
from skolflow.connectors.dnp.models import (
    Activity,
    AsynchronousResponse,
    Duty,
    DutyAssignment,
    Email,
    Enrolment,
    Group,
    GroupMembership,
    LogEntry,
    ObjectReference,
    Person,
    RecordResult,
)
from skolflow.connectors.dnp.opendata import OpenDataClient, skolverket_id

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "PRODUCTION_URL",
    "READ_CALLS_PER_SECOND",
    "VERIFICATION_URL",
    "WRITE_CALLS_PER_SECOND",
    "Activity",
    "AsynchronousResponse",
    "DnpClient",
    "DnpError",
    "Duty",
    "DutyAssignment",
    "Email",
    "Enrolment",
    "Group",
    "GroupMembership",
    "JobTimeout",
    "LogEntry",
    "ObjectReference",
    "OpenDataClient",
    "PayloadTooLarge",
    "Person",
    "RateBudget",
    "RecordResult",
    "chunk_by_size",
    "encode_record",
    "shared_budget",
    "skolverket_id",
]
