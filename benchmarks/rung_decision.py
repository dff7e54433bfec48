"""One MO-ASHA rung decision: its cost must not grow with the ticket table in a way that matters.

For tables of 1,000 and 100,000 rows (5 tickets per trial: the dense round and 4 IMP rounds, random validation
accuracy and energy, so a rung holds one ticket per trial: 200 and 20,000 entries), the benchmark times, side
by side in one run, a decision at rung 1 for a new trial whose round-1 ticket was just appended:

- former: the whole ticket table read (``load_tickets``), the rung's rows taken from it, and the former
  ranking (front peeling with an n x n x m array per front; skipped above ``--old-rank-max`` entries, where
  it needs gigabytes);
- now: `RungStopper.should_stop` as the drivers call it, with the process's `RungView` warm (a running driver's
  view; only the trial's rewritten part is read again), and once cold (a new process: a resume reads every
  part once), for a ticket on the rung's first front (full ranking) and one outside the top 1/eta (stopped
  by the O(n) dominance count). The append of the ticket before each decision is not timed.

The table's parts are aged 60 s after writing (files of finished trials are older than the view's 2 s
"racily fresh" window). Median of repeated decisions, in milliseconds.

    .venv/bin/python benchmarks/rung_decision.py     # writes results/benchmarks/rung_decision.md
    .venv/bin/python benchmarks/rung_decision.py --sizes 1000 5000 --out -   # a quick check, no file
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import Bench  # noqa: E402

from sltsearch.results.record import Ticket  # noqa: E402
from sltsearch.results.store import TicketStore, load_tickets, part_path  # noqa: E402
from sltsearch.search.early_stop import RungStopper  # noqa: E402
from sltsearch.search.mo_asha import (  # noqa: E402
    MOASHA,
    as_losses,
    crowding_distances,
    pairwise_ranks,
    rung_rows,
)
from sltsearch.spec import parse_spec  # noqa: E402

OUT = ROOT / "results" / "benchmarks" / "rung_decision.md"
PER_TRIAL = 5
PARAMS = {"rounds": 4}


def spec() -> Any:
    return parse_spec({
        "name": "bench", "seed": 0,
        "data": {"name": "digits"}, "model": {"name": "spiking_cnn", "preset": "tiny", "time_steps": 2},
        "tickets": {"rounds": 4, "prune_rate": 0.5},
        "search": {"early_stopping": {"rule": "mo_asha", "eta": 3, "min_rungs": 1}},
        "space": {"rounds": {"type": "int", "low": 1, "high": 4}},
    })


def ticket(trial: int, round_: int, val: float, energy: float) -> Ticket:
    return Ticket(
        trial, round_, "imp" if round_ else "dense", dict(PARAMS), 0, 2, sparsity=0.5, density=0.5,
        nonzero_params=100, prunable_params=200, val_accuracy=val, test_accuracy=val, energy_uj=energy, macs=1.0,
        acs=1.0, firing_rate=0.1, best_epoch=3, epochs_trained=10, wall_time_s=1.0, stage_key=f"k{trial}-{round_}",
        layer_sparsity={"conv1": 0.5, "fc": 0.5}, status="ok",
    )


def fill(run_dir: Path, rows: int, rng: np.random.Generator) -> None:
    """``rows`` tickets as one part per trial (written directly, fast), aged 60 s."""
    past = time.time() - 60
    for trial in range(rows // PER_TRIAL):
        frame = pd.DataFrame([ticket(trial, r, *rng.random(2)).row() for r in range(PER_TRIAL)])
        path = part_path(run_dir, trial)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False, write_page_checksum=True)
        os.utime(path, (past, past))


def former_decision(stopper: RungStopper, number: int, metrics: dict[str, float], rung: int, rank: bool) -> bool:
    """The former decision: the whole table read, then (``rank``) the former ranking."""
    rows = rung_rows(load_tickets(stopper.run_dir), rung, exclude_trial=number)
    others = [{k: float(row[k]) for k in stopper.rule.objectives} for row in rows.to_dict("records")]
    if not rank:
        return False
    rule: MOASHA = stopper.rule
    losses = as_losses([metrics, *others], rule.objectives)
    ranks = pairwise_ranks(losses)  # the former `nondominated_ranks`
    same = np.flatnonzero(ranks == ranks[0])
    crowd = crowding_distances(losses[same])
    better = int((ranks < ranks[0]).sum() + (crowd > crowd[0]).sum())
    return better >= rule.keep_count(len(losses))


def timed(fn, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(size: int, repeats: int, old_rank_max: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    root = Path(tempfile.mkdtemp(prefix="sltsearch-rung-"))
    try:
        fill(root, size, rng)
        sp = spec()
        number = size // PER_TRIAL  # the new trial
        store = TicketStore(root)
        best = ticket(number, 1, 1.0, 0.0)  # dominates the rung: on its first front, fully ranked
        worse = ticket(number, 1, 0.5, 0.5)  # a middling ticket: stopped by the dominance count
        store.append([ticket(number, 0, 0.5, 0.5), best], status="running")

        def decide(t: Ticket, stopper: RungStopper) -> bool:
            store.append([t], status="running")  # the trial's round-1 ticket is appended, then decided on
            return stopper.should_stop(number, PARAMS, t, 1)

        def timed_decisions(t: Ticket, stopper: RungStopper) -> float:
            """Median time of the decision alone (the append before it is not timed)."""
            times = []
            for _ in range(repeats):
                store.append([t], status="running")
                start = time.perf_counter()
                stopper.should_stop(number, PARAMS, t, 1)
                times.append(time.perf_counter() - start)
            return 1000 * statistics.median(times)

        store.append([best], status="running")
        start = time.perf_counter()
        cold_stop = RungStopper(sp, root).should_stop(number, PARAMS, best, 1)
        cold_ms = 1000 * (time.perf_counter() - start)
        warm = RungStopper(sp, root)
        decide(best, warm)  # warms the view
        best_ms = timed_decisions(best, warm)
        worse_ms = timed_decisions(worse, warm)
        assert not cold_stop and decide(worse, warm), "the best ticket continues, the middling one stops"
        entries = len(warm.view.rows(1, exclude_trial=number)) + 1
        old_repeats = 1 if size >= 50_000 else max(1, min(3, repeats))
        read_ms = timed(lambda: former_decision(warm, number, _metrics(best), 1, rank=False), old_repeats)
        old_rank = entries <= old_rank_max
        old_ms = (
            timed(lambda: former_decision(warm, number, _metrics(best), 1, rank=True), old_repeats)
            if old_rank else math.nan
        )
        if old_rank:  # the former code decides the same
            assert not former_decision(warm, number, _metrics(best), 1, rank=True)
            assert former_decision(warm, number, _metrics(worse), 1, rank=True)
        return {"size": size, "entries": entries, "old_read_ms": read_ms, "old_ms": old_ms, "cold_ms": cold_ms,
                "best_ms": best_ms, "worse_ms": worse_ms}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _metrics(t: Ticket) -> dict[str, float]:
    return {"val_accuracy": t.val_accuracy, "energy_uj": t.energy_uj}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--old-rank-max", type=int, default=5_000, help="largest rung the former ranking runs on")
    parser.add_argument("--out", default=str(OUT), help="report file, '-' for none")
    args = parser.parse_args()
    bench = Bench()
    results = []
    for size in args.sizes:
        r = measure(size, args.repeats, args.old_rank_max)
        results.append(r)
        print(
            f"{size:>7} rows ({r['entries']} at the rung): former read {r['old_read_ms']:.1f} ms, "
            f"former read + rank {r['old_ms']:.1f} ms | now warm {r['best_ms']:.2f} ms (first front), "
            f"{r['worse_ms']:.2f} ms (stopped), cold {r['cold_ms']:.1f} ms"
        )

    def ms(v: float) -> str:
        return "not run" if math.isnan(v) else f"{v:.1f}"

    first, last = results[0], results[-1]
    lines = [
        *bench.header("MO-ASHA: cost of one rung decision", notes=[f"Versions: pandas {pd.__version__}"]),
        f"{PER_TRIAL} tickets per trial, 2 objectives (val_accuracy max, energy_uj min), eta 3; median of "
        f"{args.repeats} decisions, the append of the ticket before each not timed (former: median of "
        f"{max(1, min(3, args.repeats))}, one run at 50,000 rows and more); the former ranking is not run above "
        f"{args.old_rank_max:,} entries (its n x n x 2 arrays per front need gigabytes).",
        "",
        "| rows | entries at the rung | former: read table (ms) | former: read + rank (ms) | now: warm, first-front "
        "ticket (ms) | now: warm, stopped ticket (ms) | now: cold, first decision of a process (ms) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {r['size']:,} | {r['entries']:,} | {r['old_read_ms']:.1f} | {ms(r['old_ms'])} | {r['best_ms']:.2f} "
            f"| {r['worse_ms']:.2f} | {r['cold_ms']:.1f} |"
            for r in results
        ],
        "",
        f"Now, warm, at {last['size']:,} rows / at {first['size']:,} rows: {last['best_ms'] / first['best_ms']:.1f}x "
        f"(first-front ticket), {last['worse_ms'] / first['worse_ms']:.1f}x (stopped ticket); the former read "
        f"alone: {last['old_read_ms'] / first['old_read_ms']:.1f}x. Former read / now warm at {last['size']:,} "
        f"rows: {last['old_read_ms'] / last['best_ms']:.0f}x.",
        "",
    ]
    if args.out != "-":
        bench.write(Path(args.out), lines, echo=False)
        print(f"wrote {args.out}")
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
