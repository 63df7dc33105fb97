"""The door respx unit tests open on purpose: their made-up remote hosts are mocked, never reached.

Connectors refuse every host but this machine's unless told otherwise (skolflow.guard.Door), so a unit test that
talks to ``https://beda.example.se`` through respx says so here, as a confirmed production run would.
"""

from skolflow.guard import Door, Profile

MOCKED_REMOTE = Door(Profile.PRODUCTION, confirm_production=True)
