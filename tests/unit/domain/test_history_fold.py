"""domain.history_fold: the account's dunning history rebuilt from its history records
agrees with the account the records were written from (the audit folds with it)."""

from domain import ids
from domain.activity_run import execute
from domain.history_fold import rebuild
from domain.reversal import reverse
from tests.unit.domain.builders import dunning_fields
from tests.unit.domain.test_activity_run import everything_account, first


def test_the_fold_of_a_notice_and_a_partial_reversal_gives_the_accounts_values() -> None:
    before = everything_account()
    after, notice = execute(before, first(before).proposal_id)
    rid = ids.reversal_id("req-1", notice.notice_id)
    back, reversal = reverse(after, notice.notice_id, ("A",), rid, "clerk", "sent in error")
    assert reversal.history is not None
    history = rebuild([notice.history, reversal.history])
    assert history.findings == []
    fields = dunning_fields(back)
    assert {i: d.values() for i, d in history.items.items()} == {
        i: fields[i] for i in history.items
    }
    folded = history.notices[notice.notice_id]
    assert folded.reversed_items == ["A"]
    assert folded.in_effect == back.notices[0].in_effect() is True
    whole = reverse(back, notice.notice_id, None, "rid-2", "clerk", "rest")[1].history
    assert whole is not None
    history.apply(whole, 3)
    assert not history.notices[notice.notice_id].in_effect


def test_a_record_that_disagrees_with_the_history_before_it_is_a_finding() -> None:
    before = everything_account()
    _, notice = execute(before, first(before).proposal_id)
    history = rebuild([notice.history, notice.history])
    assert [seq for seq, _ in history.findings] == [2, 2]
    stray = rebuild([])
    rid = ids.reversal_id("req-1", notice.notice_id)
    _, reversal = reverse(
        execute(before, first(before).proposal_id)[0], notice.notice_id, None, rid, "clerk", "x"
    )
    assert reversal.history is not None
    stray.apply(reversal.history, 1)
    assert stray.findings[0] == (1, f"unknown notice {notice.notice_id}")
