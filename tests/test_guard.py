import pytest

from skolflow.guard import ProductionGuardError, check_target
from skolflow.settings import Profile

BEDA_PROD = "https://gw.api.beda.uhr.se"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:9000/api", "http://[::1]:80"])
def test_sandbox_profile_reaches_local_sandboxes(url: str) -> None:
    check_target("beda", url, Profile.SANDBOX)


@pytest.mark.parametrize("url", [BEDA_PROD, "https://beda.test.example.se"])
def test_sandbox_profile_never_leaves_the_machine(url: str) -> None:
    with pytest.raises(ProductionGuardError, match="only talks to sandboxes"):
        check_target("beda", url, Profile.SANDBOX, confirm_production=True)


def test_beda_in_test_profile_is_refused_not_redirected() -> None:
    with pytest.raises(ProductionGuardError, match="Beda has no test environment"):
        check_target("beda", "https://beda-staging.kommun.se", Profile.TEST)


def test_test_profile_may_reach_other_test_services() -> None:
    check_target("betyg", "https://test.skolplattform.kommun.se", Profile.TEST)


def test_production_needs_explicit_confirmation() -> None:
    with pytest.raises(ProductionGuardError, match="confirm_production"):
        check_target("beda", BEDA_PROD, Profile.PRODUCTION)
    check_target("beda", BEDA_PROD, Profile.PRODUCTION, confirm_production=True)


@pytest.mark.parametrize(("system", "production", "test"), [
    ("udir", "https://eksamenapi.udir.no", "https://eksamenapi-sas.udir.no"),
    ("dnp", "https://api.skolverket.se/provtjanst/provisioning/v1",
     "https://apigw-pre.skolverket.se/provtjanst/verifieringstest/provisioning/v1")])
def test_test_profile_never_reaches_udir_or_dnp_production(system: str, production: str, test: str) -> None:
    with pytest.raises(ProductionGuardError, match="may not reach the production host"):
        check_target(system, production, Profile.TEST)
    check_target(system, test, Profile.TEST)
