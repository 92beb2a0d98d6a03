"""Check the bulk loader against real ingest: a worker reading bulk-loaded state answers
`GET /accounts/{id}/` exactly as a worker that ingested the same events through Kafka,
and proposes the same in a proposal run.

On a fresh embedded broker, two namespaces:

* ingest – the events of N accounts (`bench.gen`) published to the input topics, one
           worker with an empty state dir applies them;
* bulk   – the same N accounts written by `bench.bulk` into the worker's RocksDB table
           partitions before it starts.

Then for every account the two `GET /accounts/{id}/` bodies are compared (including
`next_evaluation_date`, the due index), and after the backlog `PaymentRunCompleted` in
both namespaces, the `ProposalRunCompleted` counts and the `DunningProposed` records
(all fields but `event_id`).

    python -m bench.verify_bulk [--accounts 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import replace
from typing import Any

import aiohttp

from bench import bulk, common, gen
from config.settings import Settings
from schemas.codec import Codec
from topics.broker import free_port
from topics.clients import read_all


async def _account(w: common.Proc, session: aiohttp.ClientSession, acc: str) -> Any:
    async with session.get(f"http://127.0.0.1:{w.port}/accounts/{acc}/") as resp:
        return resp.status, await resp.json()


async def _compare_accounts(w_ing: common.Proc, w_blk: common.Proc,
                            session: aiohttp.ClientSession, n: int) -> dict[str, Any]:
    """Each account's state as both workers show it: how many differ, and the first."""
    differ = []
    for i in range(n):
        acc = gen.account_id(i)
        a = await _account(w_ing, session, acc)
        c = await _account(w_blk, session, acc)
        if a != c:
            differ.append({"account": acc, "ingest": a, "bulk": c})
    return {"accounts_compared": n, "accounts_differing": len(differ),
            "first_difference": differ[0] if differ else None}


async def _proposal_run(s: Settings, codec: Codec) -> tuple[dict[str, Any], list[str]]:
    """The proposal run of the payment run in one namespace: its counts, and its proposals
    (without event ids) as sorted JSON."""
    async with common.RunsWatcher(s, codec) as watcher:
        _, _, pr = gen.payment_run(gen.AS_OF)
        await common.publish(s, [gen.payment_run(gen.AS_OF)])
        _, done = await watcher.wait("ProposalRunCompleted", f"{pr['run_id']}/1", 120)
    props = [r.record for r in await read_all(s, "dunning.proposals")]
    return (
        {k: done[k] for k in ("accounts_evaluated", "proposals", "accounts_unknown_procedure")},
        sorted(json.dumps({k: v for k, v in p.items() if k != "event_id"},
                          sort_keys=True, default=str) for p in props))


async def verify(n: int, seed: int) -> dict[str, Any]:
    work = common.workdir("verify-bulk")
    codec = Codec.from_settings(Settings())
    with common.broker(work) as b:
        ing = common.namespace(b, work / "ingest")
        blk = common.namespace(b, work / "bulk")
        for s in (ing, blk):
            await common.provision(s)
        bulk.load(bulk.Spec(n, seed), replace(blk, state_dir=work / "bulk-w"), processes=1,
                  verbose=False)
        w_ing = common.worker(replace(ing, web_port=free_port(), state_dir=work / "ingest-w"),
                              work / "logs", "ingest")
        w_blk = common.worker(replace(blk, web_port=free_port(), state_dir=work / "bulk-w"),
                              work / "logs", "bulk")
        out: dict[str, Any] = {"accounts": n}
        try:
            w_ing.start()
            w_blk.start()
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
                await w_ing.wait_ready(session)
                await w_blk.wait_ready(session)
                # published once the worker has its procedures, as the bulk loader has them
                total = await common.publish(ing, list(gen.events(range(n), seed)))
                out["events"] = total
                deadline = time.monotonic() + 300
                while common.applied_total(await w_ing.counters(session)) < total:
                    if time.monotonic() > deadline:
                        raise TimeoutError("ingest did not finish")
                    await asyncio.sleep(0.2)
                out.update(await _compare_accounts(w_ing, w_blk, session, n))
                # the same proposal run in both namespaces
                runs = {name: await _proposal_run(s, codec)
                        for name, s in (("ingest", ing), ("bulk", blk))}
                out["run_ingest"], out["run_bulk"] = runs["ingest"][0], runs["bulk"][0]
                out["proposals_equal"] = runs["ingest"][1] == runs["bulk"][1]
                out["proposals"] = len(runs["ingest"][1])
        finally:
            w_ing.stop()
            w_blk.stop()
            common.drop_state(work)
    out["ok"] = (out["accounts_differing"] == 0 and out["proposals_equal"]
                 and out["run_ingest"] == out["run_bulk"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    common.quiet()
    result = asyncio.run(verify(args.accounts, args.seed))
    print(common.table([[result["accounts"], result["events"], result["accounts_differing"],
                         result["proposals"], result["proposals_equal"],
                         result["run_ingest"], result["run_bulk"], result["ok"]]],
                       ["accounts", "events", "GET differing", "proposals",
                        "proposals equal", "run (ingest)", "run (bulk)", "ok"]))
    if result["first_difference"]:
        print(json.dumps(result["first_difference"], indent=1)[:4000])
    path = common.write_json(f"verify-bulk-{args.accounts}", result)
    print(f"results: {path}")
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
