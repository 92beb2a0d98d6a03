"""The chain checker on records built in memory with the real codec: an intact log passes,
redeliveries are duplicates, and every kind of tampering is named by account, seq and
place on the topic."""

from __future__ import annotations

from audit.chain import ChainChecker, Verdict
from audit.problems import Location
from schemas.codec import Codec
from tests.unit.audit.builders import (
    CODEC,
    D1,
    Chain,
    change,
    encoded,
    flip,
    log,
    notice,
    replay,
    story,
)


def kinds(summary):
    return [p.kind for p in summary.problems]


def interleaved():
    """Two accounts of four records each, interleaved on one partition."""
    a, b = encoded(story("A")), encoded(story("B"))
    return [v for pair in zip(a, b, strict=True) for v in pair]


def test_an_intact_log_has_no_problem_and_every_record_is_applied():
    accounts, summary = replay(log(interleaved()))
    assert summary.ok, summary.lines()
    assert summary.records == summary.applied == 8
    assert set(accounts) == {"A", "B"}
    assert all(a.chain_intact and a.seq == 4 for a in accounts.values())
    assert summary.lines()[-1] == "OK"


def test_a_byte_identical_redelivery_is_a_counted_duplicate_not_a_problem():
    values = interleaved()
    redelivered = values[:5] + values[2:5] + values[5:]  # a crash after offset 4
    accounts, summary = replay(log(redelivered))
    assert summary.ok, summary.lines()
    assert summary.duplicates == 3 and summary.applied == 8
    assert accounts["A"].duplicates == 2 and accounts["B"].duplicates == 1


def test_a_different_record_with_a_seen_seq_is_a_fork():
    values = encoded(story("A"))
    other = encoded([notice("A", "PR-9/1", D1, 1, [change("z", (0, None, None),
                                                              (1, D1, None))])])
    accounts, summary = replay(log(values + other))  # a second chain: its seq 1 again
    fork = summary.problems[0]
    assert fork.kind == "fork" and fork.seq == 1 and fork.account_id == "A"
    assert fork.where == Location("dunning.history", 0, 4)
    assert "partition 0 offset 0" in fork.detail
    assert not accounts["A"].chain_intact


def test_a_flipped_byte_breaks_the_next_records_prev_hash_and_names_both_records():
    values = encoded(story("A"))
    key, value = values[1]
    run = b"PR-2/1"
    values[1] = (key, flip(value, run, b"PR-7/1"))  # still decodes, says another run
    accounts, summary = replay(log(values))
    p = summary.problems[0]
    assert (p.kind, p.account_id, p.seq) == ("prev_hash", "A", 3)
    assert p.where == Location("dunning.history", 0, 2)
    assert "seq 2 at dunning.history partition 0 offset 1" in p.detail
    # the record after the break is not trusted
    assert [q.kind for q in summary.problems] == ["prev_hash", "after_break"]
    assert accounts["A"].seq == 4 and not accounts["A"].chain_intact


def test_a_flipped_byte_that_makes_a_record_undecodable_is_named_by_its_place():
    values = encoded(story("A"))
    key, value = values[1]
    values[1] = (key, value[:-1] + bytes([value[-1] ^ 0xFF]))
    _, summary = replay(log(values))
    first = summary.problems[0]
    assert first.kind == "undecodable" and first.account_id == "A"
    assert first.where == Location("dunning.history", 0, 1)
    assert "gap" in kinds(summary)


def test_a_deleted_record_is_a_gap_and_a_deleted_first_record_a_bad_start():
    values = encoded(story("A"))
    _, summary = replay(log(values[:1] + values[2:]))
    gap = summary.problems[0]
    assert (gap.kind, gap.seq) == ("gap", 3)
    assert gap.detail.startswith("seq 2 missing: the previous record is seq 1 at "
                                 "dunning.history partition 0 offset 0")
    _, summary = replay(log(values[1:]))
    assert (summary.problems[0].kind, summary.problems[0].seq) == ("start", 2)
    assert summary.problems[0].detail == ("the account's first record has seq 2, not 1 "
                                          "(seq 1 missing)")


def test_two_swapped_records_are_a_gap_then_a_record_out_of_order():
    values = encoded(story("A"))
    swapped = [values[0], values[2], values[1], values[3]]
    _, summary = replay(log(swapped))
    assert kinds(summary)[:2] == ["gap", "out_of_order"]
    gap, late = summary.problems[:2]
    assert (gap.seq, gap.where.offset) == (3, 1)
    assert (late.seq, late.where.offset) == (2, 2)
    assert "comes after seq 3" in late.detail


def test_seq_one_must_have_an_empty_prev_hash():
    chain = Chain()
    chain.heads["A"] = (0, "ab" * 32)
    _, summary = replay(log(encoded(story("A")[:1], chain)))
    assert kinds(summary) == ["prev_hash"]
    assert "seq 1 must have an empty prev_hash" in summary.problems[0].detail


def test_a_record_keyed_by_another_account_and_records_that_are_not_history():
    recs = log(encoded(story("A")))
    recs[0] = (0, 0, b"B", recs[0][3])
    approval = CODEC.encode("ProposalApproved", {"event_id": "e", "proposal_id": "p",
                                                 "decided_by": "x"})
    recs += [(0, 4, b"A", None), (0, 5, b"A", b"\xc3\x01garbage!"), (0, 6, b"A", approval)]
    _, summary = replay(recs)
    assert kinds(summary) == ["key_mismatch", "empty", "undecodable", "not_history"]
    assert [p.where.offset for p in summary.problems] == [0, 4, 5, 6]


def test_an_account_on_two_partitions_is_reported():
    values = encoded(story("A"))
    _, summary = replay(log(values[:2], partition=0), log(values[2:], partition=1))
    assert "split" in kinds(summary)
    assert "start" in kinds(summary)  # partition 1 alone starts at seq 3


def test_checker_verdicts_directly():
    checker = ChainChecker()
    where = Location("t", 0, 0)
    assert checker.check("A", 1, "", b"v1", "h1", where) is Verdict.ACCEPT
    assert checker.check("A", 1, "", b"v1", "h1", where) is Verdict.DUPLICATE
    assert checker.check("A", 2, "h1", b"v2", "h2", where) is Verdict.ACCEPT
    assert checker.check("A", 4, "h3", b"v4", "h4", where) is Verdict.REJECT
    assert checker.check("A", 5, "h4", b"v5", "h5", where) is Verdict.REJECT  # after the gap
    checker.finish()
    assert [p.kind for p in checker.problems] == ["gap", "after_break"]
    assert checker.duplicates == 1


def test_confluent_framing_hashes_the_body_after_its_five_byte_header():
    codec = Codec("confluent")
    values = encoded(story("A"), Chain(codec))
    from audit.replay import Replay
    from config.settings import Settings

    r = Replay(Settings(wire_format="confluent"), codec=codec)
    accounts = r.feed_partition(log(values))
    assert r.summary.ok, r.summary.lines()
    assert accounts[0].seq == 4
