"""Haldor, the learning platform that receives timetables: client, wire models and sandbox.

Haldor publishes no contract for schedule import; what lives here is skolflow's model of it
(DESIGN §4, schemas/haldor/haldor-schedule-api.json). The sandbox
(``skolflow.connectors.haldor.sandbox``) is not imported here, so that using the client does not
pull in FastAPI.
"""

from skolflow.connectors.haldor.client import HaldorClient, Window, plan_windows
from skolflow.connectors.haldor.models import (
    DATE_OUTSIDE_RANGE,
    DUPLICATE_POSITION,
    END_NOT_AFTER_START,
    MAX_POSITIONS,
    MAX_RANGE_DAYS,
    NO_KNOWN_TEACHER,
    REJECTION_REASONS,
    Group,
    PersonRef,
    Position,
    Rejection,
    ScheduleResult,
    User,
    range_problem,
    timing_problem,
)

__all__ = [
    "DATE_OUTSIDE_RANGE",
    "DUPLICATE_POSITION",
    "END_NOT_AFTER_START",
    "MAX_POSITIONS",
    "MAX_RANGE_DAYS",
    "NO_KNOWN_TEACHER",
    "REJECTION_REASONS",
    "Group",
    "HaldorClient",
    "PersonRef",
    "Position",
    "Rejection",
    "ScheduleResult",
    "User",
    "Window",
    "plan_windows",
    "range_problem",
    "timing_problem",
]
