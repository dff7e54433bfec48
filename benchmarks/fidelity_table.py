"""Tabulate a bundled search space: every configuration's tickets at every IMP round, for exact replays.

A space whose parameters are all stepped (ints, stepped floats, choices) holds finitely many configurations.
With ``rounds`` as the resource, a trial at ``rounds = R`` computes exactly the first R rounds of the trial at
the highest ``rounds`` with the same other values (a round's cache key is its pruning schedule so far), so one
trajectory per configuration of the other parameters, run to the most rounds, holds every ticket any search
over the space can produce. `benchmarks/fidelity.py` replays searches and early-stopping rules over the table
(samplers, seeds, rules) in seconds, with the measured cost of every stage as its clock.

Each trajectory is run by `run_trial` on one shared stage cache (dense runs are shared across trajectories of
the same T and recipe, as in a search). Rows: the configuration, round, kind, the measured metrics and the
stage's compute seconds (``cost_s``: its ``wall_time_s`` where this table computed it, never a cache hit).
The table is written after every trajectory, so an interrupted run resumes (its cache holds what was done).

    python benchmarks/fidelity_table.py default --cache /tmp/fid_digits --out results/benchmarks/fidelity_digits.csv
    python benchmarks/fidelity_table.py mnist1d --cache /tmp/fid_mnist1d --out results/benchmarks/fidelity_mnist1d.csv
    python benchmarks/fidelity_table.py default --calibrate 5 --cache - --out results/benchmarks/fidelity_digits.csv

``--calibrate`` times one training epoch and one measurement per T (the fastest of 5) into ``<out>.cost.json``:
the replays' clock (a stage costs epochs x epoch + measurement), steadier than the stages' own seconds on a
shared machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import load_now  # noqa: E402

from sltsearch.spec import ParamSpec, Spec, load_spec  # noqa: E402
from sltsearch.spec.spaces import resolve_spec_path  # noqa: E402
from sltsearch.trial import TrialContext, run_trial  # noqa: E402
from sltsearch.trial.cache import StageCache  # noqa: E402

RESOURCE = "rounds"  # the searched parameter that is the resource (IMP rounds)
COLUMNS = ["round", "kind", "val_accuracy", "test_accuracy", "energy_uj", "sparsity", "stage_key", "cost_s", "epochs",
           "history"]


def cost_file(table: Path) -> Path:
    """The calibrated stage costs beside a table (``fidelity_digits.csv`` -> ``fidelity_digits.cost.json``)."""
    return table.with_suffix(".cost.json")


def grid_values(param: ParamSpec) -> list[Any]:
    """Every value a sampler can draw for a stepped parameter (ints, stepped floats, choices)."""
    if param.type == "categorical":
        return list(param.choices or [])
    if param.log or (param.type == "float" and not param.step):
        raise SystemExit(f"a continuous parameter cannot be tabulated: {param}")
    step = param.step or 1
    count = int(round((float(param.high) - float(param.low)) / step + 1e-9)) + 1
    cast = int if param.type == "int" else float
    return [cast(round(float(param.low) + i * step, 10)) for i in range(count)]


def configurations(spec: Spec) -> list[dict[str, Any]]:
    """Every configuration of the space's parameters other than the resource, the resource at its highest."""
    if RESOURCE not in spec.space:
        raise SystemExit(f"the space has no '{RESOURCE}' parameter to tabulate over")
    names = [n for n in spec.space if n != RESOURCE]
    top = int(spec.space[RESOURCE].high)
    return [
        {**dict(zip(names, values, strict=True)), RESOURCE: top}
        for values in itertools.product(*(grid_values(spec.space[n]) for n in names))
    ]


def with_history(table: pd.DataFrame, cache: StageCache) -> pd.DataFrame:
    """Fill the ``history`` column (the stage's validation accuracy after every epoch of its training, a JSON
    list, from the stage's metadata in the cache) where it is missing: the look a shorter training would give."""
    if "history" not in table:
        table["history"] = None
    for i in table.index[table["history"].isna()]:
        kind = "dense" if table.at[i, "round"] == 0 else "imp"
        meta = cache.folder(kind, table.at[i, "stage_key"]) / "meta.json"
        if meta.is_file():
            history = json.loads(meta.read_text()).get("history", [])
            table.at[i, "history"] = json.dumps([round(h["val_accuracy"], 6) for h in history])
    return table


def tabulate(spec: Spec, cache_dir: Path, out: Path, threads: int) -> pd.DataFrame:
    import torch

    torch.set_num_threads(threads)
    cache = StageCache(cache_dir)
    configs = configurations(spec)
    done = pd.read_csv(out) if out.exists() else pd.DataFrame()
    names = [n for n in spec.space if n != RESOURCE]
    seen = set() if done.empty else {tuple(r) for r in done[names].drop_duplicates().itertuples(index=False)}
    frames = [done] if not done.empty else []
    started = time.perf_counter()
    for i, params in enumerate(configs):
        if tuple(params[n] for n in names) in seen:
            continue
        t0 = time.perf_counter()
        tickets = run_trial(spec, params, TrialContext(trial_number=i, cache=cache, device="cpu"))
        rows = [
            {
                **{n: params[n] for n in names},
                "round": tk.round,
                "kind": tk.kind,
                "val_accuracy": tk.val_accuracy,
                "test_accuracy": tk.test_accuracy,
                "energy_uj": tk.energy_uj,
                "sparsity": tk.sparsity,
                "stage_key": tk.stage_key,
                "cost_s": 0.0 if tk.cached else tk.wall_time_s,
                "epochs": tk.epochs_trained,
            }
            for tk in sorted(tickets, key=lambda t: t.round)
        ]
        frames.append(pd.DataFrame(rows))
        table = with_history(pd.concat(frames, ignore_index=True), cache)
        tmp = out.with_suffix(".tmp")
        table.to_csv(tmp, index=False)
        os.replace(tmp, out)
        print(f"{i + 1}/{len(configs)} {params}: {time.perf_counter() - t0:.1f} s "
              f"(total {time.perf_counter() - started:.0f} s, load {load_now()})", flush=True)
    if not frames:
        return pd.DataFrame(columns=[*names, *COLUMNS])
    table = with_history(pd.concat(frames, ignore_index=True), cache)
    table.to_csv(out, index=False)
    return table


def calibrate(spec: Spec, repeats: int, threads: int) -> dict[str, dict[str, float]]:
    """Seconds of one training epoch (with its validation pass, also on its own) and of one ticket measurement
    per T, the fastest of ``repeats`` tries, so a busy machine's noise hardly enters the replays' clock (a stage
    costs ``epochs x epoch_s + measure_s``, see `benchmarks/fidelity.py`)."""
    import torch

    from sltsearch.train import evaluate, make_optimizer, train_one_epoch
    from sltsearch.trial import prepare, stages

    torch.set_num_threads(threads)
    choices = spec.space["time_steps"].choices if "time_steps" in spec.space else [spec.model.time_steps]
    out: dict[str, dict[str, float]] = {}
    for steps in choices or []:
        tspec = spec.with_params({"time_steps": steps})
        setup = prepare(tspec, TrialContext(device="cpu"))
        model = stages.new_model(setup)
        optimizer = make_optimizer(model, tspec.train)
        loader = stages.train_loader(setup, tspec.seed)
        train, val, measure = [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            train_one_epoch(model, loader, optimizer, setup.device)
            t1 = time.perf_counter()
            evaluate(model, setup.val_loader, setup.device)
            t2 = time.perf_counter()
            stages.measured_values(setup, model)
            train.append(t1 - t0)
            val.append(t2 - t1)
            measure.append(time.perf_counter() - t2)
        out[str(steps)] = {"epoch_s": min(train) + min(val), "val_s": min(val), "measure_s": min(measure)}
        print(f"T={steps}: epoch {min(train):.3f} s + validation {min(val):.3f} s, measurement {min(measure):.3f} s",
              flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("space", help="bundled space name or spec file")
    parser.add_argument("--cache", type=Path, required=True, help="stage cache folder (kept, so a rerun resumes)")
    parser.add_argument("--out", type=Path, required=True, help="CSV table (rewritten after every trajectory)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calibrate", type=int, default=0, metavar="REPEATS",
                        help="only time an epoch and a measurement per T (fastest of REPEATS) into OUT.cost.json")
    args = parser.parse_args()
    spec = load_spec(resolve_spec_path(args.space))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.calibrate:
        costs = calibrate(spec, args.calibrate, args.threads)
        cost_file(args.out).write_text(json.dumps({"threads": args.threads, "per_time_steps": costs}, indent=1))
        print(f"-> {cost_file(args.out)}")
        return
    table = tabulate(spec, args.cache, args.out, args.threads)
    print(f"{len(table)} rows -> {args.out}")


if __name__ == "__main__":
    main()
