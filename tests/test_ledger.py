import datetime as dt

from skolflow.ledger import Ledger, Outcome, RecordOutcome


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
