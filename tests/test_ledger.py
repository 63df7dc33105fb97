import datetime as dt

from skolflow.ledger import Ledger, Outcome, RecordOutcome
from skolflow.ledger.models import Waiting


def test_run_lifecycle_and_history(ledger: Ledger) -> None:
    run_id = ledger.start_run("betyg_to_beda", "212000-0142", parameters={"what": "both"}, dry_run=False)
    ledger.record([
        RecordOutcome(run_id=run_id, pipeline="betyg_to_beda", scope="212000-0142", record_key="201509161234",
                      content_hash="h1", outcome=Outcome.ACCEPTED),
        RecordOutcome(run_id=run_id, pipeline="betyg_to_beda", scope="212000-0142", record_key="201509161242",
                      content_hash="h2", outcome=Outcome.REJECTED,
                      errors=[{"kod": "BETYG_OGILTIGT", "falt": "kursbetyg[0].betyg", "meddelande": "x"}]),
    ])
    ledger.finish_run(run_id, "completed", {"accepted": 1, "rejected": 1})
    [run] = ledger.runs("betyg_to_beda")
    assert (run.status, run.summary, run.parameters) == ("completed", {"accepted": 1, "rejected": 1}, {"what": "both"})
    rejected = [o for o in ledger.outcomes("betyg_to_beda", run_id=run_id) if o.outcome == Outcome.REJECTED]
    assert rejected[0].errors[0]["kod"] == "BETYG_OGILTIGT"


def test_sent_state_is_upserted_per_record(ledger: Ledger) -> None:
    ledger.accept("p", "s", "r1", {"a": ("h1", {"x": 1}), "b": ("h2", {})})
    ledger.accept("p", "s", "r2", {"a": ("h3", {"x": 2})})
    state = ledger.sent_state("p", "s", ["a", "b", "c"])
    assert {k: v.content_hash for k, v in state.items()} == {"a": "h3", "b": "h2"}
    assert state["a"].content == {"x": 2} and state["a"].run_id == "r2"
    assert ledger.sent_state("p", "other-scope", ["a"]) == {}


def test_unsettled_is_judged_by_the_latest_outcome_only(ledger: Ledger) -> None:
    run_id = ledger.start_run("p", "s", parameters={}, dry_run=False)
    ledger.record([RecordOutcome(run_id=run_id, pipeline="p", scope="s", record_key=k, content_hash="h",
                                 outcome=Outcome.PENDING) for k in ("a", "b", "c")])
    ledger.record([RecordOutcome(run_id=run_id, pipeline="p", scope="s", record_key="a", content_hash="h",
                                 outcome=Outcome.ACCEPTED),
                   RecordOutcome(run_id=run_id, pipeline="p", scope="s", record_key="c", content_hash="h2",
                                 outcome=Outcome.FAILED)])
    assert ledger.unsettled("p", "s", ["a", "b", "c", "d"]) == {"b": "h", "c": "h2"}
    assert ledger.unsettled("p", "other", ["b"]) == {}


def test_watermark_moves_per_pipeline_and_scope(ledger: Ledger) -> None:
    assert ledger.watermark("p", "s") is None
    first, second = dt.datetime(2026, 11, 1, 2, 0, tzinfo=dt.UTC), dt.datetime(2026, 11, 2, 2, 0, tzinfo=dt.UTC)
    ledger.set_watermark("p", "s", first, "r1")
    ledger.set_watermark("p", "s", second, "r2")
    ledger.set_watermark("p", "t", first, "r3")
    assert ledger.watermark("p", "s") == second
    assert ledger.watermark("p", "t") == first


def test_calls_keep_both_bodies_in_order_per_step(ledger: Ledger) -> None:
    from skolflow.ledger import ApiCall

    run_id = ledger.start_run("dnp_provisioning", "h", parameters={}, dry_run=False)
    for step, job in (("persons", "j1"), ("duties", "j2"), ("persons", "j3")):
        ledger.record_call(ApiCall(run_id=run_id, pipeline="dnp_provisioning", step=step, method="POST",
                                   path=f"/{step}/bulk", status_code=202, reference=job,
                                   request_body='{"data":[]}', response_body=f'{{"jobId":"{job}"}}'))
    assert [c.reference for c in ledger.calls(run_id)] == ["j1", "j2", "j3"]
    assert [c.reference for c in ledger.calls(run_id, "persons")] == ["j1", "j3"]
    assert ledger.calls(run_id, "persons")[0].request_body == '{"data":[]}'


def test_held_lists_a_scope_and_forget_removes_records(ledger: Ledger) -> None:
    ledger.accept("p", "s", "r1", {"a": ("h1", {}), "b": ("h2", {}), "c": ("h3", {})})
    ledger.accept("p", "other", "r1", {"a": ("h9", {})})
    ledger.forget("p", "s", ["b", "zz"])
    assert sorted(ledger.held("p", "s")) == ["a", "c"]
    assert sorted(ledger.held("p", "other")) == ["a"]


def waiting_row(key: str, *, personnummer: str = "", payload: str = "v1", kod: str = "ELEV_OKAND") -> Waiting:
    return Waiting(pipeline="p", scope="s", record_key=key, personnummer=personnummer, unit="12345678",
                   payload={"betyg": payload}, errors=[{"kod": kod, "falt": "elev", "meddelande": "x"}])


def test_a_waiting_record_is_kept_and_tried_again_until_released(ledger: Ledger) -> None:
    ledger.wait("p", "s", "r1", [waiting_row("a"), waiting_row("b")])
    ledger.wait("p", "other", "r1", [waiting_row("a")])
    [first_a, _] = ledger.waiting("p", "s")
    ledger.wait("p", "s", "r2", [waiting_row("a", personnummer="201509161234", payload="v2", kod="SKOLENHET_OKAND")])

    rows = {row.record_key: row for row in ledger.waiting("p", "s")}
    assert set(rows) == {"a", "b"}
    a = rows["a"]
    assert (a.tries, a.first_run_id, a.last_run_id, a.payload, a.personnummer) == (2, "r1", "r2", {"betyg": "v2"},
                                                                                    "201509161234")
    assert a.errors[0]["kod"] == "SKOLENHET_OKAND"
    assert a.first_seen == first_a.first_seen and a.last_tried >= first_a.last_tried
    assert rows["b"].tries == 1

    ledger.release("p", "s", ["a", "zz"])
    assert [row.record_key for row in ledger.waiting("p", "s")] == ["b"]
    assert [row.record_key for row in ledger.waiting("p", "other")] == ["a"]  # another scope's is its own
    assert len(ledger.waiting("p")) == 2


def test_a_dismissed_record_is_left_alone_until_the_source_sends_it_again(ledger: Ledger) -> None:
    ledger.wait("p", "s", "r1", [waiting_row("a", personnummer="201509161234"), waiting_row("b")])

    [dismissed] = ledger.dismiss("p", "201509161234", by="admin", reason="flyttat utomlands")
    assert (dismissed.record_key, dismissed.dismissed_by, dismissed.dismissed_reason) == ("a", "admin",
                                                                                          "flyttat utomlands")
    assert ledger.dismiss("p", "a", by="admin", reason="again") == []  # already dismissed
    assert ledger.dismiss("p", "b", by="admin", reason="x", scope="other") == []
    assert [row.record_key for row in ledger.waiting("p", "s")] == ["b"]
    assert [(row.record_key, row.dismissed_by) for row in ledger.waiting("p", "s", dismissed=True)] == [("a", "admin")]

    # A run still holding the old version tries it once more: the dismissal stands.
    ledger.wait("p", "s", "r2", [waiting_row("a")])
    assert [row.record_key for row in ledger.waiting("p", "s", dismissed=True)] == ["a"]

    # The platform sends the student again: a new version is a new question, and the wait starts over.
    ledger.wait("p", "s", "r3", [waiting_row("a", payload="v2")], resent={"a"})
    rows = {row.record_key: row for row in ledger.waiting("p", "s")}
    assert rows["a"].dismissed_at is None and rows["a"].dismissed_by == ""
    assert (rows["a"].tries, rows["a"].first_run_id, rows["a"].payload) == (1, "r3", {"betyg": "v2"})
    assert ledger.waiting("p", "s", dismissed=True) == []
