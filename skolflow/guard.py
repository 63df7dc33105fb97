"""The production guard (DESIGN §5): nothing reaches a production host by mistake.

Seed 000 is the failure this prevents: a school "testing" Beda from its test environment sent its
test students to Beda's production database, because Beda has no test environment and the
anslutningspart's credentials always reach production. So:

- profile ``sandbox`` talks only to sandboxes on this machine (loopback addresses);
- profile ``test`` never reaches a host known to be production, and refuses Beda outright;
- profile ``production`` reaches production only when the run also says ``confirm_production``.

It is applied in one place: every HTTP client skolflow builds comes from
:func:`skolflow.connectors.http.build_client`, which checks each request's URL against the run's
:class:`Door` before a connection is opened. A client built without one gets the default door, which
lets requests out to this machine only, so a code path that forgets to say what it may reach can
reach nothing real. Flows also check their targets up front, for a clear reason before any work.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit


class Profile(StrEnum):
    SANDBOX = "sandbox"
    TEST = "test"
    PRODUCTION = "production"


# Hosts whose every request is real. Systems without a test environment are listed in NO_TEST_ENVIRONMENT.
PRODUCTION_HOSTS: dict[str, frozenset[str]] = {
    "beda": frozenset({"gw.api.beda.uhr.se"}),
    "udir": frozenset({"eksamenapi.udir.no", "eksamen.udir.no"}),
    "dnp": frozenset({"api.skolverket.se"}),
    "dnp-open-data": frozenset({"api.skolverket.se"}),
}
# Not listed: Skolverket's authorisation server nutid-auth.sunet.se (system "dnp-auth"). It issues the tokens of
# DNP's verification environment as well as production's (Skolverket's environments.md: the verification
# environment accepts only its tokens), and a token request carries no pupil data, only the certificate's
# thumbprint and the DNP URL the token is for. So profile ``test`` may fetch a token there; the DNP URL the token
# is then used on is judged on its own, and a production DNP host stays refused in ``test``.
NO_TEST_ENVIRONMENT = frozenset({"beda"})


class ProductionGuardError(RuntimeError):
    """A run would reach a host its profile does not allow; raised before anything is sent."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_target(system: str, url: str, profile: Profile, confirm_production: bool = False) -> None:
    host = (urlsplit(url).hostname or "").lower()
    if not host:
        raise ProductionGuardError(f"{system}: {url!r} is not an absolute URL")
    if profile is Profile.SANDBOX:
        if not _is_loopback(host):
            raise ProductionGuardError(
                f"{system}: profile 'sandbox' only talks to sandboxes on this machine, not to {host}. "
                "Set SKOLFLOW_PROFILE=test or production to reach a real service.")
        return
    if profile is Profile.TEST:
        if system in NO_TEST_ENVIRONMENT:
            raise ProductionGuardError(
                f"{system}: refused in profile 'test'. Beda has no test environment: the anslutningspart's "
                "credentials always reach Beda's production database, so a test run would report test "
                "students for real. Use profile 'sandbox' to try the pipeline, or profile 'production' "
                "with confirm_production to report for real.")
        if host in PRODUCTION_HOSTS.get(system, frozenset()):
            raise ProductionGuardError(f"{system}: profile 'test' may not reach the production host {host}")
        return
    if not confirm_production:
        raise ProductionGuardError(
            f"{system}: profile 'production' reaches {host} for real; the run must also say "
            "confirm_production=True (CLI: --confirm-production). Nothing was sent.")


@dataclass(frozen=True)
class Door:
    """The guard as one run applies it: its profile and whether the run said ``confirm_production``.

    The default is the strictest door (this machine only), so that forgetting to pass one fails closed.
    """

    profile: Profile = Profile.SANDBOX
    confirm_production: bool = False

    def check(self, system: str, url: str) -> None:
        check_target(system, url, self.profile, self.confirm_production)
