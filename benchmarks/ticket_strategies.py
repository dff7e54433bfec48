"""Benchmark: do cheaper ticket strategies bring a bundled search to its front sooner (issue 20, less work per front)?

Per task (digits: the bundled ``default`` space; MNIST-1D: ``mnist1d``) and seed, ``sltsearch run`` with the new
defaults (all cores), each as its own process into a fresh run folder, one after another:

- **imp**: the bundled space as it is (IMP only), the spec's budget (``--trials``);
- one run per **variant**: the same space with one cheaper strategy added as a searched choice, given twice the
  trials and the imp run's wall time as its clock (``search.timeout_s``): equal clock, so a cheaper trial buys
  more trials, never more time. Its tickets count up to the imp run's wall time.
  - ``early_time`` (Kim et al., ECCV 2022): ``time_steps_search`` in {null, 2}: masks searched at T = 2 (sharing the
    T = 2 dense run and rounds through the stage cache), the final mask trained once at the trial's T;
  - ``early_bird`` (You et al., ICLR 2020): ``strategy`` in {imp, early_bird}: one mask at ``prune_rate`` drawn
    from the dense run's epoch checkpoints once it stops changing, trained once.

``one_shot`` is no variant: at rate p it is IMP's first round under the same stage key (tests/test_keys.py), so it
adds no ticket the space lacks.

Hypervolume as in benchmarks/time_to_front.py: validation front (val accuracy max, energy min), one reference point
per task from the union of all its runs (the region of interest, ``--hv-min-accuracy``, and 1.1 x the highest
energy). Per seed: t95 = time to 95 % of the best hypervolume any of the seed's runs reaches by the imp run's end;
the ratio imp / variant. A variant **pays** on a task (benchmarks/fidelity.py's rule) when its median ratio is above
1.1x, every one of its runs gets there, and its hypervolume at the imp run's end is within the imp runs' seed
spread (mean variant >= mean imp - sd imp). One that pays must pay again on fresh seeds (``--seed``) before a bundled
space takes it.

    python benchmarks/ticket_strategies.py                       # 3 seeds, both tasks, both variants
    python benchmarks/ticket_strategies.py --tasks digits --seeds 1 --trials 2
Writes results/benchmarks/ticket_strategies.md (and .png). The last line is the one a script reads.
"""

from __future__ import annotations

import argparse
import math
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import Bench  # noqa: E402
from time_to_front import (  # noqa: E402
    OBJECTIVES,
    TASKS,
    Run,
    fmt_ratio,
    hv_curve,
    load_union,
    mean_sd,
    run_search,
    seeded_spec,
    time_to,
)

from sltsearch.results.pareto import hypervolume, pareto_front  # noqa: E402
from sltsearch.spec.spaces import resolve_spec_path  # noqa: E402

OUT = ROOT / "results" / "benchmarks" / "ticket_strategies.md"
BASE = "imp"
# variant -> the searched parameters it adds to the bundled space
VARIANTS: dict[str, dict[str, Any]] = {
    "early_time": {"time_steps_search": {"type": "categorical", "choices": [None, 2]}},
    "early_bird": {"strategy": {"type": "categorical", "choices": ["imp", "early_bird"]}},
}
PAYS_ABOVE = 1.1
TRIAL_FACTOR = 3  # a variant's trials: this many times the imp run's (its clock, not its budget, ends it)


def until(curve: list[tuple[float, float]], clock: float) -> list[tuple[float, float]]:
    """The curve's points up to ``clock`` seconds (equal clock: what a run had found by then)."""
    return [(s, hv) for s, hv in curve if s <= clock]


def variant_run(task: str, variant: str, seed: int, trials: int, clock: float, tmp: Path) -> Run:
    """The bundled space with ``variant``'s parameters added, more trials, ``clock`` seconds to spend."""
    space, _ = TASKS[task]
    changes = {f"space.{name}": value for name, value in VARIANTS[variant].items()}
    changes |= {"search.n_trials": TRIAL_FACTOR * trials, "search.timeout_s": round(clock, 1)}
    spec = seeded_spec(space, seed, None, False, tmp, label=variant, changes=changes)
    return run_search(task, variant, seed, spec, [], tmp)


def measure(task: str, variants: list[str], seeds: range, args: argparse.Namespace, tmp: Path) -> list[Run]:
    """Per seed: the imp run, then each variant on the imp run's clock."""
    space, _ = TASKS[task]
    trials = budget(task, args.trials)
    runs = []
    for seed in seeds:
        base = run_search(task, BASE, seed, seeded_spec(space, seed, trials, False, tmp, label=BASE), [], tmp)
        runs.append(base)
        runs += [variant_run(task, v, seed, trials, base.measured.seconds, tmp) for v in variants]
    return runs


def budget(task: str, trials: int | None) -> int:
    """The imp runs' trials: ``--trials``, or the bundled spec's own budget."""
    return trials or int(yaml.safe_load(resolve_spec_path(TASKS[task][0]).read_text())["search"]["n_trials"])


def task_section(
    task: str, runs: list[Run], variants: list[str], seeds: range, args: argparse.Namespace, title: str
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """A task's table per variant: per seed, imp and variant wall time, hypervolume at the imp's end, t95; ratio."""
    space, min_acc = TASKS[task]
    min_acc = args.hv_min_accuracy.get(task, min_acc)
    reference = {"val_accuracy": min_acc, "energy_uj": 1.1 * max(float(r.frame["energy_uj"].max()) for r in runs)}
    for run in runs:
        run.curve = hv_curve(run, reference)
    clock = {seed: next(r for r in runs if r.seed == seed and r.mode == BASE).measured.seconds for seed in seeds}
    for run in runs:
        if run.mode != BASE:
            run.curve = until(run.curve, clock[run.seed])
    union_hv = hypervolume(pareto_front(load_union(runs), OBJECTIVES), OBJECTIVES, reference)
    lines = [
        f"## {task} (`sltsearch run {space}`): {title}",
        "",
        f"Reference point ({min_acc}, {reference['energy_uj']:.4f} uJ): tickets above {min_acc:.0%} validation "
        f"accuracy; 1.1 x the highest energy of any ticket of the {len(runs)} runs. Hypervolume of the union of all "
        f"runs' tickets: {union_hv:.4f}.",
        "",
        "| seed | imp wall s (trials) | "
        + " | ".join(f"{v} trials by then" for v in variants)
        + " | imp HV | "
        + " | ".join(f"{v} HV" for v in variants)
        + " | imp t95 s | "
        + " | ".join(f"{v} t95 s | imp / {v}" for v in variants)
        + " | others' cores |",
        "|---|---:|" + "---:|" * (len(variants) * 4 + 2) + "---|",
    ]
    verdict: dict[str, dict[str, Any]] = {v: {"ratios": [], "hv": []} for v in variants}
    base_hv = []
    for seed in seeds:
        pair = {r.mode: r for r in runs if r.seed == seed}
        best = max(pair[m].curve[-1][1] for m in pair)
        t95 = {m: time_to(pair[m].curve, 0.95 * best) for m in pair}
        base_hv.append(pair[BASE].curve[-1][1])
        row = [str(seed), f"{clock[seed]:.1f} ({len(pair[BASE].ends)})"]
        row += [str(sum(1 for t in pair[v].ends.values() if t <= clock[seed])) for v in variants]
        row += [f"{pair[m].curve[-1][1]:.4f}" for m in (BASE, *variants)]
        row.append(f"{t95[BASE]:.1f}")
        for v in variants:
            ratio = t95[BASE] / t95[v] if math.isfinite(t95[v]) else 0.0  # 0: the variant never got there
            verdict[v]["ratios"].append(ratio)
            verdict[v]["hv"].append(pair[v].curve[-1][1])
            row += [f"{t95[v]:.1f}", f"{ratio:.2f}x"]
        row.append(", ".join(f"{pair[m].measured.others_cores:.2f}" for m in (BASE, *variants)))
        lines.append("| " + " | ".join(row) + " |")
    b_mean, b_sd = mean_sd(base_hv)
    lines += ["", f"imp hypervolume: {b_mean:.4f} ± {b_sd:.4f} (mean ± sd over seeds).", ""]
    for v in variants:
        v_mean, v_sd = mean_sd(verdict[v]["hv"])
        ratios = verdict[v]["ratios"]
        within = v_mean >= b_mean - b_sd
        pays = statistics.median(ratios) > PAYS_ABOVE and min(ratios) > 0 and within
        verdict[v] |= {"median": statistics.median(ratios), "within": within, "pays": pays}
        lines.append(
            f"- **{v}**: time to 95 %, imp / {v}: {fmt_ratio(ratios)} (0x: it never got there, inf: imp never did); "
            f"hypervolume at the imp run's end {v_mean:.4f} ± {v_sd:.4f}, **{'within' if within else 'below'}** the "
            f"imp runs' spread; **{'pays' if pays else 'does not pay'}**. "
            + front_kinds([r for r in runs if r.mode == v], clock, reference)
        )
    lines.append("")
    return lines, verdict


def front_kinds(runs: list[Run], clock: dict[int, float], reference: dict[str, float]) -> str:
    """Which kinds of ticket make the variant's fronts: each run's front in the region of interest at the imp
    run's end, counted over seeds (e.g. whether an early-time ticket, not an IMP round, is ever on it)."""
    counts: dict[str, int] = {}
    for run in runs:
        done = [n for n, t in run.ends.items() if t <= clock[run.seed]]
        seen = run.frame[run.frame["trial"].isin(done) & (run.frame["val_accuracy"] > reference["val_accuracy"])]
        for kind, n in pareto_front(seen, OBJECTIVES)["kind"].value_counts().items():
            counts[str(kind)] = counts.get(str(kind), 0) + int(n)
    listed = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"Its runs' fronts hold {sum(counts.values())} tickets: {listed or 'none'}."


def plot(runs: dict[str, list[Run]], variants: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 3.8), squeeze=False)
    colors = {BASE: "C0", **{v: f"C{i + 1}" for i, v in enumerate(variants)}}
    for ax, (task, task_runs) in zip(axes[0], runs.items(), strict=True):
        labelled: set[str] = set()
        for run in task_runs:
            xs, ys = zip(*run.curve, strict=True)
            ax.step(
                xs,
                ys,
                where="post",
                color=colors[run.mode],
                alpha=0.8,
                label=None if run.mode in labelled else run.mode,
            )
            labelled.add(run.mode)
        ax.set(title=task, xlabel="wall time (s)", ylabel="hypervolume (val acc x energy)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--confirm-seeds", type=int, default=3, help="fresh seeds a paying variant must pay on again")
    parser.add_argument("--trials", type=int, default=None, help="the imp runs' trials (default: the spec's)")
    parser.add_argument(
        "--hv-min-accuracy",
        nargs="*",
        default=[],
        metavar="TASK=ACC",
        help="region of interest per task (default: benchmarks/fidelity.py's)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders here (default: deleted)")
    args = parser.parse_args()
    args.out = args.out.resolve()
    args.hv_min_accuracy = {k: float(v) for k, v in (item.split("=", 1) for item in args.hv_min_accuracy)}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind like Ctrl-C: no search left running


    import torch  # noqa: F401 (the searches run in subprocesses; imported, the report names its version)

    bench = Bench()
    trials = args.trials or "the spec's"
    setup = (
        f"every run: `sltsearch run SPEC` (the new defaults: all cores); imp = the bundled space, "
        f"{trials} trials; a variant = the space plus "
        + "; ".join(f"{v}: `{yaml.safe_dump(VARIANTS[v], default_flow_style=True).strip()}`" for v in args.variants)
        + f", {TRIAL_FACTOR} x the trials, the imp run's wall time as `search.timeout_s`; seeds {args.seed}.."
        f"{args.seed + args.seeds - 1}, a variant that pays there again on seeds {args.seed + args.seeds}.."
        f"{args.seed + args.seeds + args.confirm_seeds - 1}"
    )
    print(f"command: {bench.command}\n{setup}", flush=True)
    lines: list[str] = []
    verdicts: dict[str, dict[str, dict[str, Any]]] = {}
    runs: dict[str, list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="sltsearch-strategies-") as tmpdir:
        tmp = Path(tmpdir) if args.keep is None else args.keep.resolve()
        tmp.mkdir(parents=True, exist_ok=True)
        for task in args.tasks:
            seeds = range(args.seed, args.seed + args.seeds)
            runs[task] = measure(task, args.variants, seeds, args, tmp)
            section, verdicts[task] = task_section(
                task, runs[task], args.variants, seeds, args, "the bundled space against it plus each variant"
            )
            lines += section
            paying = [v for v in args.variants if verdicts[task][v]["pays"]]
            if paying and args.confirm_seeds:
                fresh = range(seeds.stop, seeds.stop + args.confirm_seeds)
                again = measure(task, paying, fresh, args, tmp)
                section, confirmed = task_section(task, again, paying, fresh, args, "does it pay again on fresh seeds?")
                lines += section
                for v in paying:
                    verdicts[task][v] |= {"again": confirmed[v]["median"], "pays": confirmed[v]["pays"]}
    plot(runs, args.variants, args.out.with_suffix(".png"))
    lines += [
        f"Plot: `{args.out.with_suffix('.png').name}` (hypervolume against wall time, every seed; variants "
        "up to the imp run's end).",
        "",
    ]
    parts = []
    for v in args.variants:
        per_task = "; ".join(
            f"{task} {verdicts[task][v]['median']:.2f}x ({'within' if verdicts[task][v]['within'] else 'below'})"
            + (f", again {verdicts[task][v]['again']:.2f}x" if "again" in verdicts[task][v] else "")
            for task in args.tasks
        )
        paying = [task for task in args.tasks if verdicts[task][v]["pays"]]
        parts.append(f"{v} {per_task}: {'pays on ' + ', '.join(paying) if paying else 'does not pay'}")
    lines.append(bench.summary(["strategies " + " | ".join(parts)]))
    title = "Cheaper ticket strategies in the bundled spaces: do they reach the front sooner?"
    seeds = range(args.seed, args.seed + args.seeds + args.confirm_seeds)
    bench.write(args.out, [*bench.header(title, seeds=seeds, notes=[setup]), *lines],
                echo=False)
    print("\n".join(lines))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
