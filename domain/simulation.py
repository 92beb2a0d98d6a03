"""What-if runs (issue 18): stage 1 on an account with the procedures in force and with
changed ones, side by side, and the difference.

Pure: the caller brings the accounts (a copy of the workers' state) and both sets of
procedures; nothing is recorded on the account. A simulated proposal is exactly what
:func:`domain.proposal_run.propose` returns for the as-of day, so a real run with the
same procedures on the same state proposes the same (ids aside: they name the run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from domain.procedures import Procedure
from domain.proposal_run import Rates, propose
from domain.state import Account, Proposal

__all__ = ["GroupKey", "Simulation", "SummaryKey", "Totals"]

#: a proposal's dunning group on its account: (account id, procedure, currency, group)
GroupKey = tuple[str, str, str, str]
#: (level, procedure, currency): the lines of the summary
SummaryKey = tuple[int, str, str]
SIMULATION_RUN = "simulation"


def _key(p: Proposal) -> GroupKey:
    return (p.account_id, p.procedure_id, p.currency, p.dunning_group)


def _same(a: Proposal, b: Proposal) -> bool:
    """Two proposals of one group that would make the same notice."""
    return (a.level, a.charge, a.interest, a.total_due, a.activities) == (
        b.level, b.charge, b.interest, b.total_due, b.activities) and [
        (i.item_id, i.new_level, i.open_amount) for i in a.items] == [
        (i.item_id, i.new_level, i.open_amount) for i in b.items]


@dataclass(slots=True)
class Totals:
    proposals: int = 0
    #: currency's minor units
    total_due: int = 0


@dataclass(slots=True)
class Simulation:
    """The simulated proposals of every account fed in, and how they differ from what the
    procedures in force propose on the same state."""

    as_of: int
    accounts: int = 0
    #: accounts whose procedure neither set of procedures knows
    unknown_procedure: int = 0
    #: groups left out because an undecided proposal of a real run is pending for them
    pending_groups: int = 0
    proposals: list[Proposal] = field(default_factory=list)
    in_force: dict[SummaryKey, Totals] = field(default_factory=dict)
    simulated: dict[SummaryKey, Totals] = field(default_factory=dict)
    #: a proposal with the simulated procedures, none with those in force
    new: list[Proposal] = field(default_factory=list)
    #: a proposal with the procedures in force, none with the simulated ones
    gone: list[Proposal] = field(default_factory=list)
    #: both propose for the group, differently: (in force, simulated)
    changed: list[tuple[Proposal, Proposal]] = field(default_factory=list)
    #: the reference rates known (``dunning.rates``), as a real run has them
    rates: Rates = field(default_factory=dict)

    def add(self, account: Account, in_force: Mapping[str, Procedure],
            simulated: Mapping[str, Procedure]) -> None:
        """Stage 1 on ``account`` with both sets of procedures (one evaluation when they
        are the same object)."""
        self.accounts += 1
        mine = propose(account, simulated, self.as_of, SIMULATION_RUN, self.rates)
        theirs = mine if simulated is in_force else propose(
            account, in_force, self.as_of, SIMULATION_RUN, self.rates)
        if mine.unknown_procedure is not None:
            self.unknown_procedure += 1
        self.pending_groups += mine.pending_groups
        self.proposals.extend(mine.proposals)
        _count(self.simulated, mine.proposals)
        _count(self.in_force, theirs.proposals)
        if theirs is mine:
            return
        before = {_key(p): p for p in theirs.proposals}
        after = {_key(p): p for p in mine.proposals}
        for key, p in after.items():
            old = before.get(key)
            if old is None:
                self.new.append(p)
            elif not _same(old, p):
                self.changed.append((old, p))
        self.gone.extend(p for key, p in before.items() if key not in after)


def _count(into: dict[SummaryKey, Totals], proposals: Iterable[Proposal]) -> None:
    for p in proposals:
        t = into.get((p.level, p.procedure_id, p.currency))
        if t is None:
            t = into[(p.level, p.procedure_id, p.currency)] = Totals()
        t.proposals += 1
        t.total_due += p.total_due

