"""Benchmark: how soon a search reaches its front, today's behaviour against the new defaults.

One run, side by side, on digits (the bundled ``default`` space) and MNIST-1D (``mnist1d``: the same network,
recipe and space on generated 1-D sequences), ``--seeds`` seeds each (the spec's ``seed``), the same trial
budget (``--trials``, default: the spec's own):

- **baseline** = today's behaviour pinned by flags: ``sltsearch run SPEC --workers 1 --threads 1`` with
  ``search.early_stopping: null`` in the spec (one trial at a time, one torch thread, no early stopping);
- **new** = the new defaults: plain ``sltsearch run SPEC`` (``--new-args`` adds flags, e.g. to stand in for
  defaults not merged yet).

Each search runs as its own ``sltsearch`` process into a fresh run folder, one after another. A trial's tickets
count from the moment its part file (``tickets/trial-N.parquet``) was last written, i.e. when the trial ended,
on the clock of the process's start (start-up included). Hypervolume of the validation front (val accuracy
max, energy min) against one reference point per task, taken from the union of all runs of the task: the
region of interest (``--hv-min-accuracy``) and 1.1 x the highest energy of any ticket. Reported: time to 95 %
of the better final hypervolume of each seed's pair, the ratio baseline / new (median, range), the final
hypervolume (mean +- sd; the new one must lie within the baseline's seed spread), and a plot.

Then the default run, ``sltsearch run`` (the ``default`` space and budget, nothing else), old against new:
old = the code at ``--old-ref`` (3b09291, before this work), extracted with ``git archive`` into a temporary
folder and run with the same Python; and the busy-core ratio of the new default run (one core kept busy by
``python -c "while True: pass"`` against the same run on the machine as it is: `benchmarks/threads.py`'s
method and guard, at most 2x). Beside every timing: how many cores all other processes used meanwhile.

    python benchmarks/time_to_front.py                           # the issue's sizes
    python benchmarks/time_to_front.py --tasks digits --seeds 1 --trials 2 --skip default-run busy-core
Writes results/benchmarks/time_to_front.md (and .png). The last line is the one a script reads.
"""

from __future__ import annotations

import argparse
import math
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fidelity import TASKS as FIDELITY_TASKS  # noqa: E402
from harness import Bench  # noqa: E402
from threads import SLTSEARCH_DEFAULTS, Measured, cli_env, run_measured, timed_run  # noqa: E402

from sltsearch.results.pareto import hypervolume, pareto_front  # noqa: E402
from sltsearch.results.store import TICKETS_DIR, load_tickets  # noqa: E402
from sltsearch.spec.space import set_path  # noqa: E402
from sltsearch.spec.spaces import resolve_spec_path  # noqa: E402

OUT = ROOT / "results" / "benchmarks" / "time_to_front.md"
OBJECTIVES = {"val_accuracy": "maximize", "energy_uj": "minimize"}
# task -> (bundled space, region of interest: the validation accuracy the hypervolume counts from), as the
# fidelity replays declare them
TASKS = {task: (space, roi) for task, (_, space, roi) in FIDELITY_TASKS.items()}
BASELINE_ARGS = "--workers 1 --threads 1"
MODES = ("baseline", "new")
GUARD = 2.0  # one busy core may cost at most this many times the quiet time (benchmarks/threads.py)


@dataclass
class Run:
    """One search: its wall time, its trials' end times (s from its start), its tickets, the machine meanwhile."""

    task: str
    mode: str
    seed: int
    measured: Measured
    ends: dict[int, float] = field(default_factory=dict)
    frame: Any = None
    curve: list[tuple[float, float]] = field(default_factory=list)


def seeded_spec(space: str, seed: int, trials: int | None, baseline: bool, folder: Path,
                label: str | None = None, changes: dict[str, Any] | None = None) -> Path:
    """The bundled space with its seed (and budget) set; the baseline's with early stopping pinned off.

    ``changes`` (dotted path -> value, e.g. ``space.strategy`` or ``search.timeout_s``) are set last: how a
    variant of the bundled search is written (benchmarks/ticket_strategies.py)."""
    data = yaml.safe_load(resolve_spec_path(space).read_text())
    data["seed"] = seed
    search = data.setdefault("search", {})
    if trials is not None:
        search["n_trials"] = trials
    if baseline:
        search["early_stopping"] = None
    for path, value in (changes or {}).items():
        data = set_path(data, path, value)
    path = folder / f"{space}-seed{seed}-{label or ('baseline' if baseline else 'new')}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def trial_ends(run_dir: Path, started_at: float) -> dict[int, float]:
    """Trial number -> seconds from the process start to its part file's last write (the trial's end)."""
    ends = {}
    for part in (run_dir / TICKETS_DIR).glob("trial-*.parquet"):
        ends[int(part.stem.split("-")[1])] = part.stat().st_mtime - started_at
    return ends


def search(task: str, mode: str, seed: int, args: argparse.Namespace, tmp: Path) -> Run:
    space, _ = TASKS[task]
    spec = seeded_spec(space, seed, args.trials, mode == "baseline", tmp)
    return run_search(task, mode, seed, spec, shlex.split(args.baseline_args if mode == "baseline" else args.new_args),
                      tmp)


def run_search(task: str, mode: str, seed: int, spec: Path, extra: list[str], tmp: Path) -> Run:
    """``sltsearch run SPEC`` as its own process into a fresh run folder: its clock, trial ends and tickets."""
    run_dir = tmp / f"{task}-{mode}-{seed}"
    command = [sys.executable, "-c", SLTSEARCH_DEFAULTS, "run", str(spec), "--run-dir", str(run_dir), "--quiet",
               *extra]
    measured = run_measured(command, cli_env(), None, busy=False, cwd=ROOT)
    if measured.returncode != 0:
        raise SystemExit(f"{task} {mode} seed {seed} failed (exit {measured.returncode}): "
                         f"{' '.join(shlex.quote(c) for c in command)}\n{measured.stderr[-3000:]}")
    run = Run(task, mode, seed, measured, trial_ends(run_dir, measured.started_at), load_tickets(run_dir))
    print(f"{task} {mode} seed {seed}: {measured.seconds:.1f} s, {len(run.ends)} trials, others used "
          f"{measured.others_cores:.2f} cores", flush=True)
    return run


def hv_curve(run: Run, reference: dict[str, float]) -> list[tuple[float, float]]:
    """(seconds, hypervolume of the tickets of every trial ended by then) at every trial end; (0, 0) first."""
    frame = run.frame
    points = [(0.0, 0.0)]
    for end in sorted(set(run.ends.values())):
        done = [n for n, t in run.ends.items() if t <= end]
        seen = frame[frame["trial"].isin(done)]
        points.append((end, hypervolume(pareto_front(seen, OBJECTIVES), OBJECTIVES, reference)))
    return points


def time_to(curve: list[tuple[float, float]], target: float) -> float:
    return next((s for s, hv in curve if hv >= target), math.inf)


def fmt_ratio(values: list[float]) -> str:
    if not values:
        return "n/a"
    med = statistics.median(values)
    return f"{med:.2f}x (range {min(values):.2f}..{max(values):.2f})"


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def task_section(task: str, runs: list[Run], args: argparse.Namespace) -> tuple[list[str], float, bool]:
    """A task's table: per seed, both searches' wall time, final hypervolume, time to 95 %; the ratio."""
    space, min_acc = TASKS[task]
    min_acc = args.hv_min_accuracy.get(task, min_acc)
    energy_max = max(float(r.frame["energy_uj"].max()) for r in runs)
    reference = {"val_accuracy": min_acc, "energy_uj": 1.1 * energy_max}
    for run in runs:
        run.curve = hv_curve(run, reference)
    union = load_union(runs)
    union_hv = hypervolume(pareto_front(union, OBJECTIVES), OBJECTIVES, reference)
    lines = [
        f"## {task} (`sltsearch run {space}`)",
        "",
        f"Reference point ({min_acc}, {reference['energy_uj']:.4f} uJ): tickets above {min_acc:.0%} validation "
        f"accuracy; 1.1 x the highest energy of any ticket of the {len(runs)} runs. Hypervolume of the union of all "
        f"runs' tickets: {union_hv:.4f}.",
        "",
        "| seed | baseline wall s | new wall s | baseline final HV | new final HV | baseline t95 s | new t95 s "
        "| baseline / new | others' cores (baseline, new) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    ratios, finals = [], {m: [] for m in MODES}
    for seed in range(args.seed, args.seed + args.seeds):
        pair = {r.mode: r for r in runs if r.seed == seed}
        best = max(pair[m].curve[-1][1] for m in MODES)
        t95 = {m: time_to(pair[m].curve, 0.95 * best) for m in MODES}
        ratio = t95["baseline"] / t95["new"] if math.isfinite(t95["new"]) else 0.0  # inf when only new got there
        ratios.append(ratio)
        for m in MODES:
            finals[m].append(pair[m].curve[-1][1])
        lines.append(
            f"| {seed} | {pair['baseline'].measured.seconds:.1f} | {pair['new'].measured.seconds:.1f} | "
            f"{pair['baseline'].curve[-1][1]:.4f} | {pair['new'].curve[-1][1]:.4f} | {t95['baseline']:.1f} | "
            f"{t95['new']:.1f} | {ratio:.2f}x | {pair['baseline'].measured.others_cores:.2f}, "
            f"{pair['new'].measured.others_cores:.2f} |"
        )
    (b_mean, b_sd), (n_mean, n_sd) = mean_sd(finals["baseline"]), mean_sd(finals["new"])
    within = n_mean >= b_mean - b_sd
    median = statistics.median(ratios)
    lines += [
        "",
        f"Time to 95 % of the better final hypervolume, baseline / new: **{fmt_ratio(ratios)}** "
        "(0x: the new search never reached it; inf: the baseline never did).",
        f"Final hypervolume: baseline {b_mean:.4f} ± {b_sd:.4f}, new {n_mean:.4f} ± {n_sd:.4f} (mean ± sd over "
        f"seeds): the new one is **{'within' if within else 'below'}** the baseline's seed spread "
        "(mean new >= mean baseline - sd baseline).",
        "",
    ]
    return lines, median, within


def load_union(runs: list[Run]) -> Any:
    import pandas as pd

    return pd.concat([r.frame.assign(run=f"{r.mode}-{r.seed}") for r in runs], ignore_index=True)


def plot(runs: dict[str, list[Run]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 3.8), squeeze=False)
    for ax, (task, task_runs) in zip(axes[0], runs.items(), strict=True):
        for run in task_runs:
            xs, ys = zip(*run.curve, strict=True)
            color = "C0" if run.mode == "baseline" else "C1"
            first = run.seed == min(r.seed for r in task_runs)
            ax.step(xs, ys, where="post", color=color, alpha=0.8, label=run.mode if first else None)
        ax.set(title=task, xlabel="wall time (s)", ylabel="hypervolume (val acc x energy)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def old_checkout(ref: str, folder: Path) -> Path:
    """The code at ``ref`` (its sltsearch package and bundled spaces), extracted with ``git archive``."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "sltsearch", "search_spaces"],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"git archive {ref} failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def default_run_section(args: argparse.Namespace, tmp: Path) -> tuple[list[str], float | None, float | None,
                                                                       float | None]:
    """`sltsearch run` (default space and budget) old vs new, and the new one's busy-core ratio."""
    # this checkout's default.yaml for both: the old code would otherwise resolve "default" to its own space
    spec = argparse.Namespace(space=str(resolve_spec_path("default")), trials=args.default_trials)
    lines = ["## The default run", ""]
    old = new = busy = None
    if "default-run" not in args.skip:
        root = old_checkout(args.old_ref, tmp / "old")
        probe = subprocess.run([sys.executable, "-c", "import sltsearch; print(sltsearch.__file__)"],
                               env=cli_env(root), cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        if not probe.startswith(str(root)):
            raise SystemExit(f"the old checkout is not the one imported ({probe}): check PYTHONPATH handling")
        timings = {"old": timed_run("sltsearch", "quiet", spec, None, root=root),
                   "new": timed_run("sltsearch", "quiet", spec, None)}
        old, new = timings["old"].seconds, timings["new"].seconds
        lines += [
            f"`sltsearch run default --trials {args.default_trials}` (this checkout's default space for both; its own "
            f"budget is 10) into a fresh run folder; old = the code at {args.old_ref} (extracted with `git archive`, "
            "same Python and packages), new = this checkout, no other flags.",
            "",
            "| code | wall s | others' cores | load before |",
            "|---|---:|---:|---:|",
            *(f"| {name} | {t.seconds:.1f} | {t.others_cores:.2f} | {t.load_before} |" for name, t in timings.items()),
            "",
            f"Default run: **{old:.1f} s -> {new:.1f} s** ({old / new:.2f}x).",
            "",
        ]
    if "busy-core" not in args.skip:
        quiet = new if new is not None else timed_run("sltsearch", "quiet", spec, None).seconds
        hog = timed_run("sltsearch", "one busy core", spec, args.cap * quiet)
        busy = hog.seconds / quiet
        mark = ">" if hog.stopped else ""
        lines += [
            f"One busy core (`benchmarks/threads.py`'s method): the new default run took {mark}{hog.seconds:.1f} s "
            f"with one core kept busy against {quiet:.1f} s without: **{mark}{busy:.2f}x** (guard: at most "
            f"{GUARD:.0f}x: {'holds' if busy <= GUARD and not hog.stopped else 'BROKEN'}); others' cores "
            f"{hog.others_cores:.2f}.",
            "",
        ]
    return lines, old, new, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--trials", type=int, default=None, help="trials per search (default: the spec's)")
    parser.add_argument("--baseline-args", default=BASELINE_ARGS, help="flags pinning today's behaviour")
    parser.add_argument("--new-args", default="", help="flags added to the new defaults' run (default: none)")
    parser.add_argument("--hv-min-accuracy", nargs="*", default=[], metavar="TASK=ACC",
                        help="region of interest per task (default: benchmarks/fidelity.py's, digits=0.9, "
                        "mnist1d=0.85)")
    parser.add_argument("--old-ref", default="3b09291", help="the code the default run is compared with")
    parser.add_argument("--default-trials", type=int, default=10, help="the default run's budget (the spec's)")
    parser.add_argument("--cap", type=float, default=8.0, help="stop the busy-core run after this many quiet times")
    parser.add_argument("--skip", nargs="*", default=[], choices=["default-run", "busy-core"])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.hv_min_accuracy = {k: float(v) for k, v in (item.split("=", 1) for item in args.hv_min_accuracy)}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind like Ctrl-C: no search left running


    import torch  # noqa: F401 (the searches run in subprocesses; imported, the report names its version)

    bench = Bench()
    trials = args.trials or "the spec's"
    setup = (
        f"baseline: `sltsearch run SPEC {args.baseline_args}` with `search.early_stopping: null`; new: "
        f"`sltsearch run SPEC{' ' + args.new_args if args.new_args else ''}`; "
        f"{trials} trials, seeds {args.seed}..{args.seed + args.seeds - 1}"
    )
    print(f"command: {bench.command}\n{setup}", flush=True)
    lines: list[str] = []
    medians, within_all, runs = {}, [], {}
    with tempfile.TemporaryDirectory(prefix="sltsearch-ttf-") as tmpdir:
        tmp = Path(tmpdir)
        for task in args.tasks:
            runs[task] = [search(task, mode, seed, args, tmp)
                          for seed in range(args.seed, args.seed + args.seeds) for mode in MODES]
            section, medians[task], within = task_section(task, runs[task], args)
            within_all.append(within)
            lines += section
        plot(runs, args.out.with_suffix(".png"))
        lines += [f"Plot: `{args.out.with_suffix('.png').name}` (hypervolume against wall time, every seed).", ""]
        section, old, new, busy = default_run_section(args, tmp)
        lines += section

    def fmt(value: float | None, pattern: str) -> str:
        return "n/a" if value is None else pattern.format(value)

    lines.append(bench.summary([
        f"time-to-front digits {fmt(medians.get('digits'), '{:.2f}')}x",
        f"mnist1d {fmt(medians.get('mnist1d'), '{:.2f}')}x", f"final hv {'within' if all(within_all) else 'below'}",
        f"default run {fmt(old, '{:.0f}')} s -> {fmt(new, '{:.0f}')} s", f"busy core {fmt(busy, '{:.2f}')}x",
    ]))
    title = "Time to the front: today's behaviour against the new defaults"
    seeds = range(args.seed, args.seed + args.seeds)
    bench.write(args.out, [*bench.header(title, seeds=seeds, notes=[setup]), *lines], echo=False)
    print("\n".join(lines))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
