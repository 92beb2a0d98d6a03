"""Activity-run benchmark: from `RunApproved` of a run of about 100k proposals to the
run's `ActivityRunCompleted` (every notice executed: commands and history records out).

The state is bulk-loaded (`bench.bulk`): 150k accounts, of which about 66 % get a
proposal in the backlog run (as of 2026-11-20; procedures with `auto_approve` off, so
the run only proposes). The backlog run is timed too, then `RunApproved` for it is
published and the time to `ActivityRunCompleted` on `dunning.runs` measured, and the
time until the worker's table changelogs stop growing (`drained`).

    python -m bench.activity [--accounts 150000] [--workers 1] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench import common, run


def plot(results: list[dict], path: object) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    labels = ["backlog run", "backlog, drained", "activity run", "activity, drained"]
    width = 0.8 / len(results)
    for k, r in enumerate(results):
        values = [r["backlog"]["seconds"], r["backlog"]["drained_s"],
                  r["activity"]["seconds"], r["activity"]["drained_s"]]
        bars = ax.bar([i + k * width for i in range(4)], values, width,
                      label=f"{r['workers']} worker{'s' * (r['workers'] > 1)}")
        ax.bar_label(bars, labels=[f"{v:.1f}" for v in values], fontsize=8)
    ax.set_xticks([i + width * (len(results) - 1) / 2 for i in range(4)], labels)
    ax.set_ylabel("seconds")
    r0 = results[0]
    ax.set_title(f"{r0['accounts']:,} accounts, {r0['activity']['notices']:,} proposals "
                 "approved in one RunApproved")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=150_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=common.PARTITIONS)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--indexed", action="store_true")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy on the first worker during the backlog and activity runs")
    args = ap.parse_args()
    common.quiet()
    args.no_activity, args.no_daily, args.share, args.keep = False, True, 0.0, False
    results = []
    for w in args.workers:
        print(f"{args.accounts:,} accounts, {w} worker(s)", flush=True)
        results.append(asyncio.run(run.one(args.accounts, w, args)))
    rows = []
    for r in results:
        a = r["activity"]
        rows.append([r["accounts"], r["workers"], r["backlog"]["proposals"], a["seconds"],
                     a["drained_s"], a["notices"], a["commands"], a["notices_per_s"],
                     round(a["notices"] / a["drained_s"], 1),
                     f"{run.peak(r) / 2**20:.0f}"])
    print()
    print(common.table(rows, ["accounts", "workers", "proposals", "RunApproved → "
                              "ActivityRunCompleted s", "drained s", "notices", "commands",
                              "notices/s", "notices/s (drained)", "peak RSS MiB"]))
    name = f"activity-{args.accounts}"
    path = common.write_json(name, {"benchmark": "activity",
                                    "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                                    "machine": common.machine(), "results": results})
    plot(results, common.RESULTS / f"{name}.png")
    print(f"results: {path} and {name}.png")


if __name__ == "__main__":
    main()
