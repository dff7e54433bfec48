"""Benchmark: the search against the paper's recipe run by hand, at equal compute.

**recipe** = what a reader of Cheng et al. (arXiv 2309.13302) writes as a for-loop: one IMP trajectory per T of
the bundled space (global magnitude pruning at a fixed rate per round to ~97 % sparsity, late rewinding to
epoch 1, every round's ticket kept, direct encoding), the bundled spec otherwise (network, training, data split,
objectives). Two rates, 0.4 (7 rounds) and 0.2 (16 rounds); the recipe's figures are the better rate's by final
validation hypervolume, per seed. **search** = ``sltsearch run SPACE`` on the bundled space with today's
defaults, given the compute budget (``--budget-epochs``) of the costlier recipe run of its seed, so its curve
reaches the recipe's compute. Each run is its own ``sltsearch run`` process (2 workers by default) into a fresh
run folder; seeds are the spec's ``seed``.

Compute = epochs trained x T, summed over the stages a run trained (cached stages are free): machine-independent,
and what GPU-hours scale with. A run's hypervolume-against-compute curve orders its tickets by the time the search
stored them (``measured_at``) and adds each ticket's stage cost. Hypervolume: validation accuracy (max) vs energy
(min), reference = (``--hv-min-accuracy`` of the task, 1.1 x the highest energy of any ticket of the task's
runs); "test" = the hypervolume of the validation front's tickets scored on test accuracy (never selected on).

Per task: the compute the search needs to reach the recipe's final validation hypervolume, as recipe / search
(median, range over seeds; never reaching it counts 0x); the search's hypervolume at the recipe's total compute
(mean +- sd; above / within / below the recipe's mean +- sd); the same on test; a plot. Then the default
``sltsearch run`` wall time. The last line is the one a script reads:

    Summary: recipe digits <r>x compute, hv <above|within|below>, test <...>; mnist1d ...; default run <s> s

    python benchmarks/recipe.py                                   # the issue's sizes (seeds 0, 1, 2)
    python benchmarks/recipe.py --tasks digits --seeds 1 --rates 0.4 --skip-default-run   # a quick look
Writes results/benchmarks/recipe.md (and .png).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import Bench  # noqa: E402
from threads import SLTSEARCH_DEFAULTS, Measured, cli_env, run_measured  # noqa: E402

from sltsearch.results.pareto import hypervolume, pareto_front  # noqa: E402
from sltsearch.results.store import load_tickets, stage_compute  # noqa: E402
from sltsearch.spec.spaces import resolve_spec_path  # noqa: E402

OUT = ROOT / "results" / "benchmarks" / "recipe.md"
VAL = {"val_accuracy": "maximize", "energy_uj": "minimize"}
TASKS = {"digits": ("default", 0.9), "mnist1d": ("mnist1d", 0.85)}  # bundled space, region of interest
RECIPE_REWIND = 1
RECIPE_SPARSITY = 0.97


@dataclass
class Run:
    task: str
    mode: str  # recipe-0.4 | recipe-0.2 | search
    seed: int
    measured: Measured
    frame: Any
    compute: float = 0.0


def rounds_for(rate: float, sparsity: float = RECIPE_SPARSITY) -> int:
    """The recipe's rounds: the fewest at ``rate`` that reach ``sparsity``."""
    return math.ceil(math.log(1.0 - sparsity) / math.log(1.0 - rate) - 1e-9)


def recipe_spec(space: str, seed: int, rate: float, folder: Path) -> Path:
    """The bundled spec as the paper's recipe: one IMP trajectory per T of its space, nothing else searched."""
    data = yaml.safe_load(resolve_spec_path(space).read_text())
    choices = data["space"]["time_steps"]["choices"]
    data["seed"] = seed
    data["name"] = f"recipe-{space}-{rate}"
    data["model"]["encoder"] = "direct"
    data["tickets"] = {"strategy": "imp", "scope": "global", "prune_rate": rate, "rounds": rounds_for(rate),
                       "rewind_epoch": RECIPE_REWIND}
    data["search"] = {"backend": "optuna", "sampler": "random", "n_trials": len(choices)}
    data["space"] = {"time_steps": {"type": "categorical", "choices": choices}}
    path = folder / f"{space}-seed{seed}-recipe-{rate}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def search_spec(space: str, seed: int, folder: Path) -> Path:
    data = yaml.safe_load(resolve_spec_path(space).read_text())
    data["seed"] = seed
    path = folder / f"{space}-seed{seed}-search.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_one(task: str, mode: str, seed: int, spec: Path, extra: list[str], tmp: Path, reuse: bool = False) -> Run:
    """One ``sltsearch run`` into ``tmp``; with ``reuse``, a run this script finished there before is read back
    (its timing from the file written beside it), so tasks can run in separate processes and meet in one report."""
    run_dir = tmp / f"{task}-{mode}-{seed}"
    saved = tmp / f"{task}-{mode}-{seed}.measured.json"
    if reuse and saved.is_file():
        measured = Measured(**json.loads(saved.read_text()))
    else:
        command = [sys.executable, "-c", SLTSEARCH_DEFAULTS, "run", str(spec), "--run-dir", str(run_dir), "--quiet",
                   *extra]
        measured = run_measured(command, cli_env(), None, busy=False, cwd=ROOT)
        if measured.returncode != 0:
            raise SystemExit(f"{task} {mode} seed {seed} failed (exit {measured.returncode}): "
                             f"{shlex.join(command)}\n{measured.stderr[-3000:]}")
        saved.write_text(json.dumps(asdict(measured)))
    frame = load_tickets(run_dir)
    frame = frame[frame["status"] == "ok"].sort_values("measured_at", kind="stable").reset_index(drop=True)
    cost = [stage_compute(row) for row in frame.to_dict("records")]
    frame = frame.assign(stage_compute=cost, compute=[sum(cost[: i + 1]) for i in range(len(cost))])
    run = Run(task, mode, seed, measured, frame, float(sum(cost)))
    print(f"{task} {mode} seed {seed}: {measured.seconds:.1f} s, {frame['trial'].nunique()} trials, "
          f"{run.compute:.0f} epochs x T, others used {measured.others_cores:.2f} cores", flush=True)
    return run


def hv_val(frame: Any, ref: dict[str, float]) -> float:
    return hypervolume(pareto_front(frame, VAL), VAL, ref) if len(frame) else 0.0


def hv_test(frame: Any, ref: dict[str, float]) -> float:
    """The validation front's tickets, scored on test accuracy (reported, never selected on)."""
    if not len(frame):
        return 0.0
    front = pareto_front(frame, VAL).copy()
    front["val_accuracy"] = front["test_accuracy"]
    return hypervolume(front, VAL, ref)


def curve(run: Run, ref: dict[str, float]) -> list[tuple[float, float, float]]:
    """(compute, val hv, test hv) after every ticket, (0, 0, 0) first."""
    points = [(0.0, 0.0, 0.0)]
    frame = run.frame
    for i in range(len(frame)):
        seen = frame.iloc[: i + 1]
        points.append((float(frame["compute"].iloc[i]), hv_val(seen, ref), hv_test(seen, ref)))
    return points


def at(points: list[tuple[float, float, float]], compute: float) -> tuple[float, float]:
    """(val hv, test hv) of the last point within ``compute`` (tickets of cached stages share their compute)."""
    within = [p for p in points if p[0] <= compute + 1e-9]
    return within[-1][1], within[-1][2]


def reach(points: list[tuple[float, float, float]], target: float) -> float:
    return next((c for c, v, _ in points if v >= target - 1e-12), math.inf)


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def verdict(values: list[float], baseline: list[float]) -> str:
    mean, _ = mean_sd(values)
    base, sd = mean_sd(baseline)
    return "above" if mean > base + sd else "below" if mean < base - sd else "within"


def task_section(task: str, runs: list[Run], seeds: list[int], min_acc: float) -> tuple[list[str], str, dict[str, Any]]:
    ref = {"val_accuracy": min_acc, "energy_uj": 1.1 * max(float(r.frame["energy_uj"].max()) for r in runs)}
    curves = {(r.mode, r.seed): curve(r, ref) for r in runs}
    rows, ratios, s_val, s_test, r_val, r_test, plots = [], [], [], [], [], [], {}
    for seed in seeds:
        recipes = {float(r.mode.removeprefix("recipe-")): r for r in runs
                   if r.mode.startswith("recipe-") and r.seed == seed}
        rates = sorted(recipes, reverse=True)
        best_rate = max(rates, key=lambda rate: curves[(f"recipe-{rate}", seed)][-1][1])
        recipe = recipes[best_rate]
        rc = curves[(recipe.mode, seed)]
        sc = curves[("search", seed)]
        search = next(r for r in runs if r.mode == "search" and r.seed == seed)
        need = reach(sc, rc[-1][1])
        ratio = recipe.compute / need if math.isfinite(need) and need > 0 else (math.inf if need == 0 else 0.0)
        sv, st = at(sc, recipe.compute)
        ratios.append(ratio)
        s_val.append(sv)
        s_test.append(st)
        r_val.append(rc[-1][1])
        r_test.append(rc[-1][2])
        plots[seed] = (rc, sc, best_rate)
        others = {rate: f"{curves[(f'recipe-{rate}', seed)][-1][1]:.4f}" for rate in rates}
        rows.append(
            f"| {seed} | {best_rate} ({', '.join(f'{k}: {v}' for k, v in others.items())}) | {recipe.compute:.0f} | "
            f"{rc[-1][1]:.4f} | {rc[-1][2]:.4f} | {recipe.measured.seconds:.0f} | "
            f"{'never' if not math.isfinite(need) else f'{need:.0f}'} | {ratio:.2f}x | {sv:.4f} | {st:.4f} | "
            f"{search.compute:.0f} | {sc[-1][1]:.4f} | {search.frame['trial'].nunique()} | "
            f"{search.measured.seconds:.0f} | {recipe.measured.others_cores:.2f}, {search.measured.others_cores:.2f} |"
        )
    med = statistics.median(ratios)
    hv, test = verdict(s_val, r_val), verdict(s_test, r_test)
    sm, ss = mean_sd(s_val)
    rm, rs = mean_sd(r_val)
    tm, ts = mean_sd(s_test)
    qm, qs = mean_sd(r_test)
    space, _ = TASKS[task]
    lines = [
        f"## {task} (`sltsearch run {space}` against the recipe on its spec)",
        "",
        f"Reference point: validation accuracy {min_acc}, energy {ref['energy_uj']:.4f} uJ (1.1 x the highest "
        f"energy of any ticket of the task's {len(runs)} runs).",
        "",
        "| seed | recipe rate (final val hv per rate) | recipe compute | recipe hv val | recipe hv test "
        "| recipe wall s | search compute to reach it | recipe / search | search hv val at recipe compute "
        "| search hv test at recipe compute | search compute (all) | search hv val (all) | search trials "
        "| search wall s | others' cores (recipe, search) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        f"- compute to reach the recipe's front: **{med:.2f}x** (range {min(ratios):.2f}..{max(ratios):.2f}); goal "
        ">= 2x, aim 3x",
        f"- validation hv at the recipe's compute: search {sm:.4f} +- {ss:.4f} vs recipe {rm:.4f} +- {rs:.4f}: "
        f"**{hv}**",
        f"- test hv at the recipe's compute: search {tm:.4f} +- {ts:.4f} vs recipe {qm:.4f} +- {qs:.4f}: **{test}**",
        "",
        "Which tickets make up the search's final fronts (seeds together): "
        + front_mix([r for r in runs if r.mode == "search"]),
        "",
    ]
    return lines, f"{task} {med:.2f}x compute, hv {hv}, test {test}", plots


def front_mix(runs: list[Run]) -> str:
    """How many front tickets of each kind of configuration (T, encoder, scope) the search runs hold."""
    counts: dict[str, int] = {}
    for run in runs:
        front = pareto_front(run.frame, VAL)
        for _, row in front.iterrows():
            key = (f"T={int(row['time_steps'])} {row.get('encoder') or 'direct'} "
                   f"{row.get('param_scope', 'global') if isinstance(row.get('param_scope'), str) else 'global'}")
            counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"


def plot(sections: dict[str, dict[int, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sections), figsize=(6 * len(sections), 4.2), squeeze=False)
    for ax, (task, seeds) in zip(axes[0], sections.items(), strict=True):
        for i, (_, (rc, sc, _rate)) in enumerate(sorted(seeds.items())):
            ax.step([p[0] for p in rc], [p[1] for p in rc], where="post", color="tab:gray", alpha=0.8,
                    label="recipe (the better rate of each seed)" if i == 0 else None)
            ax.step([p[0] for p in sc], [p[1] for p in sc], where="post", color="tab:blue", alpha=0.8,
                    label="search" if i == 0 else None)
        ax.set_title(f"{task}: validation hypervolume vs compute (seeds {', '.join(map(str, sorted(seeds)))})")
        ax.set_xlabel("compute (epochs x T trained)")
        ax.set_ylabel("hypervolume")
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def default_run(tmp: Path) -> Measured:
    """The bundled default search as a user starts it, into a fresh folder (never a resume of an earlier one)."""
    run_dir = tmp / "default-run"
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [sys.executable, "-c", SLTSEARCH_DEFAULTS, "run", "--run-dir", str(run_dir), "--quiet"]
    measured = run_measured(command, cli_env(), None, busy=False, cwd=ROOT)
    if measured.returncode != 0:
        raise SystemExit(f"the default run failed: {measured.stderr[-2000:]}")
    print(f"default run: {measured.seconds:.1f} s, others used {measured.others_cores:.2f} cores", flush=True)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rates", nargs="+", type=float, default=[0.4, 0.2])
    parser.add_argument("--search-args", default="", help="extra flags for the search's `sltsearch run`")
    parser.add_argument("--skip-default-run", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--only-existing", action="store_true",
                        help="with --reuse: leave out the recipe rates not run for a task and seed (the table says "
                        "which rates each seed had)")
    parser.add_argument("--reuse", action="store_true",
                        help="read back the runs this script finished in --keep before instead of running them again")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--note", action="append", default=[], help="a line for the report's header (how it was run)")
    args = parser.parse_args()
    bench = Bench()
    seeds = list(range(args.seed, args.seed + args.seeds))
    with tempfile.TemporaryDirectory(prefix="recipe-") as scratch:
        tmp = args.keep or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        runs: dict[str, list[Run]] = {}
        for task in args.tasks:
            space, _ = TASKS[task]
            runs[task] = []
            for seed in seeds:
                rates = [r for r in args.rates if not args.only_existing
                         or (tmp / f"{task}-recipe-{r}-{seed}.measured.json").is_file()]
                recipes = [run_one(task, f"recipe-{rate}", seed, recipe_spec(space, seed, rate, tmp), [], tmp,
                                   args.reuse) for rate in rates]
                runs[task] += recipes
                budget = max(r.compute for r in recipes)
                extra = ["--budget-epochs", f"{budget:g}", *shlex.split(args.search_args)]
                runs[task].append(run_one(task, "search", seed, search_spec(space, seed, tmp), extra, tmp, args.reuse))
        default = None if args.skip_default_run else default_run(tmp)
    lines, summaries, plots = [], [], {}
    for task in args.tasks:
        section, summary, plots[task] = task_section(task, runs[task], seeds, TASKS[task][1])
        lines += section
        summaries.append(summary)
    png = args.out.with_suffix(".png")
    plot(plots, png)
    default_s = f"{default.seconds:.0f}" if default else "not run"
    notes = [
        f"Recipe rates {', '.join(map(str, args.rates))} (rounds {', '.join(str(rounds_for(r)) for r in args.rates)}), "
        f"rewind epoch {RECIPE_REWIND}. Compute is machine-independent; wall times are not (the load and the cores "
        "other processes used during each run are beside them).",
        *args.note,
    ]
    header = [
        *bench.header("The search against the paper's recipe, at equal compute", seeds=seeds, notes=notes),
        __doc__.split("\n\n")[1].replace("\n", " "),
        "",
        __doc__.split("\n\n")[2].replace("\n", " "),
        "",
        f"![hypervolume against compute]({png.name})",
        "",
    ]
    default_line = ["## The default run", "",
                    f"`sltsearch run` (the bundled default space and budget): {default_s} s"
                    + (f", others used {default.others_cores:.2f} cores meanwhile." if default else "."), ""]
    summary = bench.summary([f"recipe {summaries[0]}", *summaries[1:], f"default run {default_s} s"])
    bench.write(args.out, header + lines + default_line + [summary])


if __name__ == "__main__":
    main()
