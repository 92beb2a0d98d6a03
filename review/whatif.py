"""The what-if page (issue 18 on the review page): `dunning runs simulate` in the browser.

The same evaluation as the command (`processors.simulation`): stage 1 on a copy of the
workers' state with the procedures in force and, if given, with those of a pasted
procedures file; nothing is published. It runs on a thread of its own, so the pages stay
responsive while it reads the state.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import yaml

from config.settings import Settings
from domain.money import from_minor
from domain.procedures import ProcedureError, parse_procedures
from processors import convert
from processors.simulation import SimulationRun, simulate

#: differences listed per kind on the page
SHOWN = 100


def _summary(run: SimulationRun) -> list[dict[str, Any]]:
    sim = run.simulation
    out = []
    for key in sorted(set(sim.simulated) | set(sim.in_force)):
        level, procedure, currency = key
        a, b = sim.simulated.get(key), sim.in_force.get(key)
        out.append({"level": level, "procedure": procedure, "currency": currency,
                    "proposals": a.proposals if a else 0,
                    "total": from_minor(a.total_due if a else 0, currency),
                    "in_force": b.proposals if b else 0,
                    "in_force_total": from_minor(b.total_due if b else 0, currency)})
    return out


def _brief(p: Any) -> dict[str, Any]:
    return {"account_id": p.account_id, "procedure": p.procedure_id, "currency": p.currency,
            "group": p.dunning_group, "level": p.level,
            "total": from_minor(p.total_due, p.currency)}


def result_of(run: SimulationRun) -> dict[str, Any]:
    """What the page shows of a simulation."""
    sim = run.simulation
    return {"accounts": sim.accounts, "proposals": len(sim.proposals),
            "changed": run.changed, "summary": _summary(run), "missing": run.missing,
            "new": [_brief(p) for p in sim.new[:SHOWN]], "new_count": len(sim.new),
            "gone": [_brief(p) for p in sim.gone[:SHOWN]], "gone_count": len(sim.gone),
            "different": [(_brief(a), _brief(b)) for a, b in sim.changed[:SHOWN]],
            "different_count": len(sim.changed), "pending": sim.pending_groups}


async def run_whatif(settings: Settings, as_of_text: str, procedures: str,
                     accounts: str) -> dict[str, Any]:
    """Parse the form's values and simulate on a thread of its own; `ValueError` (or a
    YAML or procedure error) for values that cannot be used."""
    as_of = date.fromisoformat(as_of_text)
    changes = parse_procedures(yaml.safe_load(procedures)) if procedures.strip() else ()
    run = await asyncio.to_thread(asyncio.run, simulate(
        settings, convert.day(as_of), changes, accounts.split() or None))
    return result_of(run)


#: what `run_whatif` raises for values that cannot be used
BAD_INPUT = (ValueError, yaml.YAMLError, ProcedureError)
