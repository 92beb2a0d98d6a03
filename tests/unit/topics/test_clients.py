"""`key_for`: the key a producer gives a record, from the catalogue's key fields."""

from __future__ import annotations

from topics.clients import key_for


def test_account_scoped_topics_are_keyed_by_account_id() -> None:
    for topic in ("billing.accounts", "dunning.letters", "dunning.history", "no.such.topic"):
        assert key_for(topic, {"account_id": "ACC-1", "run_id": "R"}) == b"ACC-1"
        assert key_for(topic, {"run_id": "R"}) is None


def test_the_first_key_field_that_is_set_wins() -> None:
    assert key_for("billing.payment-runs", {"run_id": "PR-1"}) == b"PR-1"
    assert key_for("dunning.procedures", {"procedure_id": "STANDARD"}) == b"STANDARD"
    assert key_for("dunning.runs", {"run_id": "R/1", "account_id": "A"}) == b"R/1"
    decisions = "dunning.decisions"
    assert key_for(decisions, {"proposal_id": "P", "run_id": "R"}) == b"P"
    assert key_for(decisions, {"proposal_id": None, "run_id": "R"}) == b"R"
    assert key_for(decisions, {"payment_run_id": "PR"}) == b"PR"
    assert key_for(decisions, {"notice_id": "N", "run_id": ""}) == b"N"
    assert key_for(decisions, {"account_id": "A"}) is None


def test_a_dead_letter_gets_no_key_from_its_fields() -> None:
    assert key_for("dunning.dead-letters", {"source_topic": "billing.invoices"}) is None
