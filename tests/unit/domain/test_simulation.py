"""domain.simulation: stage 1 with the procedures in force and with changed ones, side by
side, nothing recorded on the account."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.proposal_run import propose
from domain.simulation import Simulation
from tests.unit.domain.builders import account, day, invoice, item, level, procedure, upsert
from tests.unit.domain.strategies import BASE, dunned_accounts, procedures

JAN = day("2024-01-10")


def _ignoring_ids(proposals):
    return [replace(p, proposal_id="", run_id="") for p in proposals]


def test_a_higher_minimum_takes_a_notice_away_and_a_lower_one_adds_one() -> None:
    """Level 1 after 7 days, minimum total 10.00 in force. On JAN+10: A owes 8.00 (no
    notice today), B owes 50.00 (a notice). With a minimum of 5.00 A gets a notice and B
    keeps its own; with 60.00 neither does: B's notice is gone."""
    in_force = {"P": procedure(level(1, 7, "0", "10.00"))}
    lower = {"P": procedure(level(1, 7, "0", "5.00"))}
    higher = {"P": procedure(level(1, 7, "0", "60.00"))}
    a = account(upsert(account_id="A"), invoice("IA", item("A1", 800, JAN), account_id="A"),
                account_id="A")
    b = account(upsert(account_id="B"), invoice("IB", item("B1", 5000, JAN), account_id="B"),
                account_id="B")

    sim = Simulation(JAN + 10)
    for acc in (a, b):
        sim.add(acc, in_force, lower)
    assert [p.account_id for p in sim.proposals] == ["A", "B"]
    assert [p.account_id for p in sim.new] == ["A"] and sim.gone == [] and sim.changed == []
    assert {k: (t.proposals, t.total_due) for k, t in sim.simulated.items()} == {
        (1, "P", "EUR"): (2, 5800)}
    assert {k: (t.proposals, t.total_due) for k, t in sim.in_force.items()} == {
        (1, "P", "EUR"): (1, 5000)}

    sim = Simulation(JAN + 10)
    for acc in (a, b):
        sim.add(acc, in_force, higher)
    assert sim.proposals == [] and [p.account_id for p in sim.gone] == ["B"]


def test_a_changed_charge_is_a_different_notice_for_the_same_group() -> None:
    in_force = {"P": procedure(level(1, 7, charge="5.00"))}
    dearer = {"P": procedure(level(1, 7, charge="7.50"))}
    a = account(upsert(), invoice("I", item("X", 5000, JAN)))
    sim = Simulation(JAN + 10)
    sim.add(a, in_force, dearer)
    ((before, after),) = sim.changed
    assert (before.charge, after.charge, after.total_due - before.total_due) == (500, 750, 250)
    assert sim.new == sim.gone == []


PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(dunned_accounts(), procedures("P"), st.integers(0, 400))
def test_the_simulation_is_stage_1_with_each_set_and_its_differences_add_up(
        dunned, other_p, days) -> None:
    acc, in_force = dunned
    simulated = {**in_force, "P": other_p}
    as_of = BASE + 60 + days
    sim = Simulation(as_of)
    sim.add(acc, in_force, simulated)
    mine = propose(acc, simulated, as_of, "real/1").proposals
    theirs = propose(acc, in_force, as_of, "real/1").proposals
    assert _ignoring_ids(sim.proposals) == _ignoring_ids(mine)
    assert sum(t.proposals for t in sim.simulated.values()) == len(mine)
    assert sum(t.proposals for t in sim.in_force.values()) == len(theirs)
    unchanged = len(mine) - len(sim.new) - len(sim.changed)
    assert unchanged == len(theirs) - len(sim.gone) - len(sim.changed) >= 0
    same = Simulation(as_of)
    same.add(acc, in_force, in_force)
    assert same.new == same.gone == same.changed == []
    assert same.simulated == same.in_force
