"""Wire models of Haldor's schedule import as skolflow defines it (DESIGN §4; schemas/haldor/haldor-schedule-api.json).

Haldor publishes no contract for importing schedule positions ("schemapositioner"). These models are
skolflow's own, kept in step with ``schemas/haldor/haldor-schedule-api.json``, so that the flow can be
pointed at the real API later by changing this connector only. Wire names are camelCase; Python
attributes are snake_case.

The rules Haldor applies to a position on its own (range, times) live here once, as pure functions,
so that the sandbox judges with them and the pipeline can check a position before sending it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

MAX_POSITIONS = 2000  # positions per PUT; more is answered 413
MAX_RANGE_DAYS = 93  # days in one [from, to] range, both ends included; more is answered 400

# Why Haldor rejects (does not store) a position: ``Rejection.reason``.
DATE_OUTSIDE_RANGE = "DATE_OUTSIDE_RANGE"
END_NOT_AFTER_START = "END_NOT_AFTER_START"
DUPLICATE_POSITION = "DUPLICATE_POSITION"  # the same (externalId, date) earlier in the same body
NO_KNOWN_TEACHER = "NO_KNOWN_TEACHER"
REJECTION_REASONS: tuple[str, ...] = (DATE_OUTSIDE_RANGE, END_NOT_AFTER_START, DUPLICATE_POSITION, NO_KNOWN_TEACHER)

PERSONNUMMER_PATTERN = r"^[0-9]{12}$"
TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


def _clock(value: Any) -> Any:
    """Let callers pass a ``datetime.time``; the wire carries ``HH:MM`` (zero-padded, so it sorts as text)."""
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    return value


Clock = Annotated[str, BeforeValidator(_clock), Field(pattern=TIME_PATTERN)]
Personnummer = Annotated[str, Field(pattern=PERSONNUMMER_PATTERN)]


class _Request(BaseModel):
    """What skolflow sends: unknown keys are refused, so a misspelt key is never silently 'absent'.

    Errors never quote the input: it may hold a personnummer.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              hide_input_in_errors=True)


class _Answer(BaseModel):
    """What Haldor answers: unknown keys are ignored, so an added field does not break the client."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              hide_input_in_errors=True)


class PersonRef(_Request):
    """A person as a position names them: by work e-mail or by personnummer, exactly one of the two.

    Which one a school uses is its choice (seed 002: the same key must exist in Skola24 and Haldor;
    e-mail is recommended because Haldor always has it from the customer's Microsoft tenant).
    """

    model_config = ConfigDict(frozen=True)

    email: str | None = Field(None, min_length=1)
    personnummer: Personnummer | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PersonRef:
        if (self.email is None) == (self.personnummer is None):
            raise ValueError("a person reference carries exactly one of email and personnummer")
        return self

    def to_wire(self) -> dict[str, str]:
        return self.model_dump(by_alias=True, exclude_none=True)


class User(_Answer):
    """A person Haldor knows at a school. E-mail always (from Microsoft), personnummer only sometimes."""

    id: str
    email: str
    personnummer: Personnummer | None = None
    role: Literal["student", "teacher"]


class UsersPage(_Answer):
    users: list[User]
    next_page_token: str | None = None


class Group(_Request):
    """A teaching group as Skola24 names it; ``members`` may be empty (Haldor keeps the group)."""

    external_id: str = Field(min_length=1)
    name: str
    members: list[PersonRef] = Field(default_factory=list)


class Position(_Request):
    """One lesson on one day. Haldor keys a stored position by (``external_id``, ``date``), so a Skola24
    lesson GUID that recurs every week is one position per date."""

    external_id: str = Field(min_length=1)  # the Skola24 lesson GUID
    subject: str
    date: dt.date
    start: Clock
    end: Clock
    rooms: list[str] = Field(default_factory=list)
    teachers: list[PersonRef] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)

    @property
    def key(self) -> tuple[str, dt.date]:
        return self.external_id, self.date

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ScheduleRequest(_Request):
    positions: list[Position]

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SchedulePage(_Answer):
    """``GET …/schedule``: the positions Haldor holds in the range."""

    positions: list[Position]


class Rejection(_Answer):
    """A position Haldor did not store; ``reason`` is one of :data:`REJECTION_REASONS`."""

    external_id: str
    date: dt.date | None = None  # skolflow's addition: the external id alone does not name one position
    reason: str


class ScheduleResult(_Answer):
    """Haldor's answer to a replace: counts of what changed, who it did not know, what it refused."""

    created: int
    updated: int
    removed: int
    unchanged: int
    unknown_persons: list[PersonRef] = Field(default_factory=list)
    rejected: list[Rejection] = Field(default_factory=list)

    @classmethod
    def combine(cls, results: Iterable[ScheduleResult]) -> ScheduleResult:
        """One answer for a replace sent as several calls: counts added, each unknown person named once."""
        results = list(results)
        unknown = dict.fromkeys(ref for result in results for ref in result.unknown_persons)
        return cls(
            created=sum(r.created for r in results),
            updated=sum(r.updated for r in results),
            removed=sum(r.removed for r in results),
            unchanged=sum(r.unchanged for r in results),
            unknown_persons=list(unknown),
            rejected=[rejection for r in results for rejection in r.rejected],
        )


class ErrorResponse(_Answer):
    """A refusal of the whole request (400, 401, 403, 404, 413): a stable code and an English message."""

    error: str
    message: str


def range_problem(start: dt.date, end: dt.date) -> str | None:
    """Why Haldor refuses [start, end] as a range (400), or None."""
    if start > end:
        return f"from {start.isoformat()} is after to {end.isoformat()}"
    days = (end - start).days + 1
    if days > MAX_RANGE_DAYS:
        return f"the range covers {days} days; at most {MAX_RANGE_DAYS} are allowed"
    return None


def timing_problem(position: Position, start: dt.date, end: dt.date) -> str | None:
    """The reason Haldor rejects a position on its own (before looking at persons), or None.

    The remaining rules need Haldor's state: a duplicate within the body, and at least one teacher
    Haldor knows (:data:`NO_KNOWN_TEACHER`).
    """
    if not start <= position.date <= end:
        return DATE_OUTSIDE_RANGE
    if position.end <= position.start:
        return END_NOT_AFTER_START
    return None
