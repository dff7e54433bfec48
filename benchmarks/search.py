"""Benchmark of the search driver on digits: work never done twice, MO-ASHA, Ray workers, driver overhead.

1. Cache: the same search with the stage cache on and off (same seed, so the same parameters): wall-time
   ratio, identical tickets, the share of stage time in dense runs vs IMP rounds, and stage trainings
   (ticket rows whose stage was computed, ``cached == False``) against the distinct stages the search needed.
2. Early stopping: hypervolume of the validation front against wall time, each sampler with and without
   MO-ASHA, over seeds; the figure is the wall time to reach 95 % of the best final hypervolume (of the pair).
3. Workers: the same search with 1 and 2 concurrent Ray trials (1 torch thread each): trials per hour
   ratio and Ray's overhead; the driver's overhead (wall time outside `run_trial` as a share of the time
   inside it) is timed exactly on the Optuna backend's sequential search of part 1.

Every timing is printed with the machine's load average beside it. The spec is a reduced default space
(see ``base_spec``) so that the whole benchmark fits a shared 2-core machine; the command line scales it.

    .venv/bin/python benchmarks/search.py                       # the issue's sizes (20 / 3 seeds / 12)
    .venv/bin/python benchmarks/search.py --trials 8 --seeds 1 --samplers random --worker-trials 6
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import Bench, load_now  # noqa: E402

from sltsearch.results.pareto import hypervolume, pareto_front  # noqa: E402
from sltsearch.results.record import row_params  # noqa: E402
from sltsearch.results.store import load_tickets  # noqa: E402
from sltsearch.search import optuna_backend  # noqa: E402
from sltsearch.search.early_stop import RungStopper  # noqa: E402
from sltsearch.search.execute import TrialRunner  # noqa: E402
from sltsearch.search.mo_asha import MOASHA, RUNG_KINDS, rung_rounds, rung_rows  # noqa: E402
from sltsearch.spec import Spec, parse_spec  # noqa: E402
from sltsearch.trial import TrialContext, run_trial  # noqa: E402
from sltsearch.trial.cache import StageCache  # noqa: E402

OUT = ROOT / "results" / "benchmarks"
OBJECTIVES = {"val_accuracy": "maximize", "energy_uj": "minimize"}
ASHA = {"eta": 3, "min_rungs": 1}  # part 2's MO-ASHA settings (the searches' and the replayed rule's)
COMPARED = ["ticket_id", "sparsity", "val_accuracy", "test_accuracy", "energy_uj", "macs", "acs"]


RUNGS_TEXT = {
    "geometric": "geometric (rounds 1, 3, 9, ...: ASHA's spacing, the default)",
    "every_round": "every round (each round from round 1 is a rung)",
}


def base_spec(args: argparse.Namespace, max_rounds: int = 4, *, fixed_rounds: bool = False, **search: Any) -> Spec:
    """The default space on digits, shortened: ``--epochs`` per stage, T in {2, 4}, 1-``max_rounds`` IMP rounds
    searched, or (``fixed_rounds``) every trial up to ``max_rounds`` rounds, the resource not searched."""
    rounds = {"rounds": {"type": "int", "low": 1, "high": max_rounds}} if not fixed_rounds else {}
    return parse_spec(
        {
            "name": "bench",
            "seed": args.seed,
            "data": {"name": args.data, "batch_size": 64,
                     **({"options": {"num_samples": args.samples}} if args.data == "mnist1d" else {})},
            "model": {"name": "spiking_cnn", "preset": "tiny", "time_steps": 4},
            "train": {"epochs": args.epochs},
            **({"tickets": {"rounds": max_rounds}} if fixed_rounds else {}),
            "objective": {"metrics": OBJECTIVES, "energy": {"samples": 128}},
            "search": {"n_trials": args.trials, "population_size": 4, **search},
            "space": {
                "prune_rate": {"type": "float", "low": 0.3, "high": 0.8, "step": 0.1},
                **rounds,
                "rewind_epoch": {"type": "int", "low": 0, "high": max(0, args.epochs - 1)},
                "time_steps": {"type": "categorical", "choices": [2, 4]},
            },
        }
    )


def search(spec: Spec, run_dir: Path, *, cache: bool = True, stopper: bool = False) -> dict[str, Any]:
    """One Optuna-backend search through the driver seam; per-trial timings and the ticket table."""
    run_dir.mkdir(parents=True, exist_ok=True)
    runner = TrialRunner(spec, run_dir, device="cpu")
    if not cache:
        runner.cache = StageCache(None)  # recompute every stage
    study = optuna_backend.open_study(spec, run_dir)
    rung = RungStopper(spec, run_dir) if stopper else None
    inside = 0.0
    curve: list[tuple[float, int]] = []
    start = time.perf_counter()

    def run_one(number: int, params: dict[str, Any]) -> Any:
        nonlocal inside
        t0 = time.perf_counter()
        try:
            return runner(number, params, on_ticket=rung.on_ticket(number, params) if rung else None)
        finally:
            inside += time.perf_counter() - t0

    def on_end(end: optuna_backend.TrialEnd) -> None:
        curve.append((time.perf_counter() - start, end.number))

    optuna_backend.optimize(spec, study, run_one, on_trial_end=on_end)
    wall = time.perf_counter() - start
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    return {"wall": wall, "inside": inside, "curve": curve, "frame": load_tickets(run_dir), "states": states}


def trainings(frame: pd.DataFrame) -> tuple[int, int, int]:
    """(stage trainings, distinct stages, trained twice) from the ticket rows' ``cached`` flags."""
    computed = frame[~frame["cached"].astype(bool)]
    per_key = computed.groupby("stage_key").size()
    return int(len(computed)), int(frame["stage_key"].nunique()), int((per_key - 1).clip(lower=0).sum())


def cached_rerun(spec: Spec, run_dir: Path, frame: pd.DataFrame) -> tuple[float, int, int]:
    """Every trial of a finished search run again on its stage cache (all hits): (wall s, tickets, stages trained).

    What a cached stage still costs when its ticket is made (loading, building the row; no training and, with
    the measurement stored beside the stage, no evaluation)."""
    cache = StageCache(run_dir / "cache")
    params = [row_params(frame[frame["trial"] == n].iloc[0]) for n in sorted(frame["trial"].unique())]
    start = time.perf_counter()
    rows = 0
    for number, values in enumerate(params):
        rows += len(run_trial(spec, values, TrialContext(trial_number=number, cache=cache, device="cpu")))
    return time.perf_counter() - start, rows, cache.misses


def part_cache(args: argparse.Namespace, tmp: Path, lines: list[str]) -> dict[str, Any]:
    spec = base_spec(args, sampler="random")
    on = search(spec, tmp / "cache_on")
    load_on = load_now()
    rerun_wall, rerun_rows, rerun_trained = cached_rerun(spec, tmp / "cache_on", on["frame"])
    load_rerun = load_now()
    off = search(spec, tmp / "cache_off", cache=False)
    load_off = load_now()
    a = on["frame"].sort_values("ticket_id").reset_index(drop=True)
    b = off["frame"].sort_values("ticket_id").reset_index(drop=True)
    same = a[COMPARED].equals(b[COMPARED])
    n_train, distinct, twice = trainings(on["frame"])
    n_train_off, _, _ = trainings(off["frame"])
    stage_time = b.groupby(b["kind"].eq("dense").map({True: "dense", False: "rounds"}))["wall_time_s"].sum()
    hit = a[a["cached"].astype(bool)]
    hit_time = hit.groupby(hit["kind"].eq("dense").map({True: "dense", False: "rounds"}))["wall_time_s"].mean()

    def mean_s(group: str) -> str:
        return f"{hit_time[group]:.3f} s" if group in hit_time else "n/a (none cached)"

    ratio = off["wall"] / on["wall"]
    overhead = (on["wall"] - on["inside"]) / on["inside"]
    lines += [
        "## 1. Work never done twice (stage cache on vs off)",
        "",
        f"Random sampler, seed {args.seed}, {args.trials} trials, {args.epochs} epoch(s) per stage, one process, "
        f"`torch.set_num_threads({args.threads})`.",
        "",
        "| | wall s | stage trainings | distinct stages | trained twice | machine load after |",
        "|---|---|---|---|---|---|",
        f"| cache on | {on['wall']:.1f} | {n_train} | {distinct} | {twice} | {load_on} |",
        f"| cache off | {off['wall']:.1f} | {n_train_off} | {distinct} | {n_train_off - distinct} | {load_off} |",
        "",
        f"- wall-time ratio off / on: **{ratio:.2f}x**; tickets identical (ids, sparsity, val/test accuracy, "
        f"energy, MACs, ACs): **{same}** ({len(a)} tickets)",
        f"- stage time with every stage computed (cache off): dense runs {stage_time.get('dense', 0):.1f} s "
        f"({100 * stage_time.get('dense', 0) / stage_time.sum():.0f} %), IMP rounds and controls "
        f"{stage_time.get('rounds', 0):.1f} s",
        f"- stage trainings with the cache: {n_train} for {distinct} distinct stages; trained twice: {twice} "
        "(counted from the ticket rows: a row with `cached = False` is a stage computed by its trial)",
        f"- a ticket whose stage was cached (cache on, {len(hit)} rows; its stored measurement is read back, the "
        f"model is not evaluated): mean wall time {mean_s('dense')} for a dense row, {mean_s('rounds')} for an "
        "IMP round or control",
        f"- the same {args.trials} trials run again on the filled cache (`run_trial` per trial, every stage a hit): "
        f"{rerun_wall:.2f} s for {rerun_rows} tickets, {rerun_trained} stages trained ({load_rerun})",
        "",
    ]
    return {"ratio": ratio, "twice": twice, "overhead": overhead, "on": on}


def hv_curve(result: dict[str, Any], reference: dict[str, float]) -> list[tuple[float, float]]:
    """(seconds, hypervolume of the finished trials' tickets so far) after every trial."""
    frame = result["frame"]
    points = []
    for seconds, number in result["curve"]:
        seen = frame[frame["trial"] <= number]
        points.append((seconds, hypervolume(pareto_front(seen, OBJECTIVES), OBJECTIVES, reference)))
    return points


def time_to(curve: list[tuple[float, float]], target: float) -> float:
    return next((s for s, hv in curve if hv >= target), float("inf"))


def trials_to(curve: list[tuple[float, float]], target: float) -> int:
    return next((i + 1 for i, (_, hv) in enumerate(curve) if hv >= target), len(curve) + 1)


def _t95(plain: dict[str, Any], asha: dict[str, Any], reference: dict[str, float]) -> dict[str, Any]:
    """Both searches' hypervolume curves, final values, and wall time / trials to 95 % of the better final."""
    c0, c1 = hv_curve(plain, reference), hv_curve(asha, reference)
    best = max(c0[-1][1], c1[-1][1])
    if best <= 0:  # no ticket above the reference point: no front to reach, no speed-up to report
        raise SystemExit(f"no ticket beats the hypervolume reference point {reference}: lower --hv-min-accuracy "
                         "or train longer (--epochs)")
    t0, t1 = time_to(c0, 0.95 * best), time_to(c1, 0.95 * best)
    return {"hv": (c0[-1][1], c1[-1][1]), "t": (t0, t1), "speedup": t0 / t1,
            "trials": (trials_to(c0, 0.95 * best), trials_to(c1, 0.95 * best))}


def replay_rule(frame: pd.DataFrame, rule: MOASHA, min_accuracy: float) -> dict[str, Any]:
    """MO-ASHA's decisions replayed on a search run without early stopping, trial by trial in order (each trial
    ranked at its rungs among the earlier trials' tickets, as a sequential search would): which trials it
    would stop at which rung, and how many of the trials holding a ticket of the final front (region of
    interest: val accuracy >= ``min_accuracy``) it would have stopped before that ticket was measured.
    A rule whose early rungs predict the last round well stops few front trials (its fidelity on the task)."""
    front = pareto_front(frame, OBJECTIVES)
    front = front[front["val_accuracy"] >= min_accuracy]
    front_round = front.groupby("trial")["round"].max()  # the latest round of each trial that is on the front
    stops: dict[int, int] = {}  # trial -> the rung it would stop at
    for number in sorted(frame["trial"].unique()):
        mine = frame[(frame["trial"] == number) & frame["kind"].isin(RUNG_KINDS)]
        last = int(mine["round"].max()) if not mine.empty else 0
        earlier = frame[frame["trial"] < number]
        for rung in rung_rounds(rule.min_rungs, rule.eta, last - 1, rule.spacing):  # never after its last round
            own = mine[mine["round"] == rung].iloc[0]
            others = [{k: float(r[k]) for k in rule.objectives} for _, r in rung_rows(earlier, rung).iterrows()]
            if rule.should_stop(rung, {k: float(own[k]) for k in rule.objectives}, others):
                stops[int(number)] = rung
                break
    lost = {t: stops[t] for t, r in front_round.items() if t in stops and r > stops[t]}
    rates = frame.drop_duplicates("trial").set_index("trial")["param_prune_rate"]
    return {"trials": int(frame["trial"].nunique()), "stops": stops, "front_trials": len(front_round),
            "lost": lost, "rates": rates}


def truncated(result: dict[str, Any], *, seconds: float | None = None, trials: int | None = None) -> dict[str, Any]:
    """The search as if it had stopped at a wall-time budget or after its first ``trials`` finished trials."""
    finished = [(t, n) for t, n in result["curve"] if result["states"][n] in ("COMPLETE", "PRUNED")]
    if trials is not None:
        finished = finished[:trials]
    if seconds is not None:
        finished = [(t, n) for t, n in finished if t <= seconds]
    states = [result["states"][n] for _, n in finished]
    return {**result, "curve": finished, "wall": finished[-1][0] if finished else 0.0, "states": states}


def part_asha(args: argparse.Namespace, tmp: Path, lines: list[str]) -> float | None:
    args = argparse.Namespace(**{**vars(args), "trials": args.asha_trials or args.trials})
    budget = args.trials * args.asha_budget  # the MO-ASHA search's trials: enough to fill the plain one's time
    loads = []
    variants: list[str | None] = [None, *args.asha_rungs]  # None: no early stopping
    runs: dict[tuple[str, int, str | None], dict[str, Any]] = {}
    for sampler in args.samplers:
        for seed in range(args.seed, args.seed + args.seeds):
            for rungs in variants:
                extra = {"early_stopping": {**ASHA, "rungs": rungs}} if rungs else {}
                trials = budget if rungs else args.trials
                spec = base_spec(argparse.Namespace(**{**vars(args), "seed": seed, "trials": trials}),
                                 args.asha_rounds, fixed_rounds=args.asha_fixed_rounds, sampler=sampler, **extra)
                done = runs[(sampler, seed, rungs)] = search(spec, tmp / f"asha_{sampler}_{seed}_{rungs}",
                                                             stopper=bool(rungs))
                loads.append(load_now())
                print(f"part 2: {sampler} seed {seed} mo-asha {rungs or 'off'}: {done['wall']:.1f} s, "
                      f"{done['states'].count('PRUNED')} pruned, {loads[-1]}", flush=True)
    energy_max = max(r["frame"]["energy_uj"].max() for r in runs.values())
    # the region of interest: tickets above --hv-min-accuracy (declared before the run, stated in the report);
    # the whole range (accuracy 0 up) is reported beside it
    reference = {"val_accuracy": args.hv_min_accuracy, "energy_uj": 1.1 * energy_max}
    whole = {"val_accuracy": 0.0, "energy_uj": 1.1 * energy_max}
    dense_val = statistics.mean(
        float(r["frame"].loc[r["frame"]["kind"] == "dense", "val_accuracy"].mean()) for r in runs.values()
    )
    rounds_text = (
        f"Every trial up to {args.asha_rounds} IMP rounds (the resource, fixed: ASHA's protocol, the baseline runs "
        "every configuration to the full budget)" if args.asha_fixed_rounds
        else f"1-{args.asha_rounds} IMP rounds searched (the `rounds` parameter)"
    )
    lines += [
        f"## 2. Early stopping (MO-ASHA, eta {ASHA['eta']}, min_rungs {ASHA['min_rungs']})",
        "",
        f"{rounds_text}; rungs: {'; '.join(RUNGS_TEXT[r] for r in args.asha_rungs)}. "
        f"Seeds {args.seed}..{args.seed + args.seeds - 1}. Hypervolume "
        f"of the validation front (val accuracy max, energy min) w.r.t. the reference point "
        f"({args.hv_min_accuracy}, {reference['energy_uj']:.4f} uJ): the front of tickets above "
        f"{100 * args.hv_min_accuracy:.0f} % validation accuracy (dense: {100 * dense_val:.1f} % on average), "
        "where a user picks a "
        "ticket; with the reference at accuracy 0 one early ticket already holds most of the area (last column).",
        "",
        f"**Equal wall time** (the protocol of ASHA and MO-ASHA papers, declared before this run): the search "
        f"without early stopping runs {args.trials} trials; the search with MO-ASHA runs for the same wall time "
        f"(its first trials up to that time, of at most {budget}), so the time a stopped trial saves goes to new "
        "trials. t95 = wall time until the hypervolume first reaches 95 % of the better final hypervolume of the "
        "pair (inf: never within the budget). **Same trial budget**: the MO-ASHA search cut after its first "
        f"{args.trials} finished trials (the same parameters as a {args.trials}-trial search: the samplers are "
        "seeded and see only earlier trials), so it ends sooner and can at best find the same front.",
        "",
    ]
    medians = [_asha_table(args, runs, rungs, reference, whole, lines) for rungs in args.asha_rungs]
    lines += [f"Machine load after each search: {'; '.join(loads)}.", ""]
    _plot(args, {(sa, se, r): (truncated(res, seconds=runs[(sa, se, None)]["wall"]) if r else res)
                 for (sa, se, r), res in runs.items()}, reference)
    plot_name = args.out.with_suffix(".png").name
    lines += [f"Plot: `{plot_name}` (hypervolume against wall time, every seed, without and with MO-ASHA under "
              "each rung spacing, equal wall time).", ""]
    return medians[0]


def _asha_table(args: argparse.Namespace, runs: dict, rungs: str, reference: dict[str, float],
                whole: dict[str, float], lines: list[str]) -> float:
    """One rung spacing against the searches without early stopping: the table and its medians."""
    lines += [
        f"### Rungs: {RUNGS_TEXT[rungs]}",
        "",
        "| sampler | seed | final HV without | final HV with | t95 without s | t95 with s | speed-up "
        "| trials to t95 without / with | trials with (pruned) "
        "| same budget: final HV with, speed-up, wall without / with s | speed-up (acc ref 0) "
        "| replay: front trials stopped |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rule = MOASHA(OBJECTIVES, **ASHA, spacing=rungs)
    replays = []
    speedups, same_speedups, speedups_whole, losses, finals = [], [], [], [], {False: [], True: []}
    walls, first = [], []
    for sampler in args.samplers:
        for seed in range(args.seed, args.seed + args.seeds):
            plain = truncated(runs[(sampler, seed, None)])
            timed = truncated(runs[(sampler, seed, rungs)], seconds=plain["wall"])
            same = truncated(runs[(sampler, seed, rungs)], trials=args.trials)
            roi, all_, sb = _t95(plain, timed, reference), _t95(plain, timed, whole), _t95(plain, same, reference)
            speedups.append(roi["speedup"])
            same_speedups.append(sb["speedup"])
            speedups_whole.append(all_["speedup"])
            walls.append(plain["wall"] / same["wall"])
            first.append(roi["trials"][0])
            losses.append(roi["hv"][0] - roi["hv"][1])
            finals[False].append(roi["hv"][0])
            finals[True].append(roi["hv"][1])
            replay = replay_rule(plain["frame"], rule, args.hv_min_accuracy)
            replays.append(replay)
            lines.append(
                f"| {sampler} | {seed} | {roi['hv'][0]:.4f} | {roi['hv'][1]:.4f} | {roi['t'][0]:.1f} | "
                f"{roi['t'][1]:.1f} | {roi['speedup']:.2f}x | {_count(roi['trials'][0], plain)} / "
                f"{_count(roi['trials'][1], timed)} | {len(timed['curve'])} ({timed['states'].count('PRUNED')}) "
                f"| {sb['hv'][1]:.4f}, {sb['speedup']:.2f}x, {plain['wall']:.1f} / {same['wall']:.1f} "
                f"| {all_['speedup']:.2f}x | {len(replay['lost'])} of {replay['front_trials']} |"
            )
    median = statistics.median(speedups)

    def never(values: list[float]) -> str:
        # 0x: the search with MO-ASHA never reached 95 % of the better final hypervolume (inf: the one without)
        return (f"never reached: with MO-ASHA {sum(1 for x in values if x == 0)}, without "
                f"{sum(1 for x in values if math.isinf(x))}")

    sd = {k: statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in finals.items()}
    lines += [
        "",
        f"Equal wall time: speed-up to 95 % of the best final hypervolume, median **{median:.2f}x** (min..max "
        f"{min(speedups):.2f}..{max(speedups):.2f}, {len(speedups)} pairs; {never(speedups)}); with the "
        f"reference at accuracy 0: median {statistics.median(speedups_whole):.2f}x (min..max "
        f"{min(speedups_whole):.2f}..{max(speedups_whole):.2f}).",
        f"Final hypervolume without / with MO-ASHA: {statistics.mean(finals[False]):.4f} ± {sd[False]:.4f} / "
        f"{statistics.mean(finals[True]):.4f} ± {sd[True]:.4f} (mean ± sd over all pairs); mean loss "
        f"{statistics.mean(losses):.4f} against a spread (sd without) of {sd[False]:.4f}: "
        f"{'within' if statistics.mean(losses) <= sd[False] else 'beyond'} the spread.",
        f"Same trial budget: speed-up median {statistics.median(same_speedups):.2f}x (min..max "
        f"{min(same_speedups):.2f}..{max(same_speedups):.2f}; {never(same_speedups)}); whole-search wall time "
        f"without / with MO-ASHA: mean {statistics.mean(walls):.2f}x (min..max {min(walls):.2f}..{max(walls):.2f}).",
        f"Trials to t95 without MO-ASHA: {sum(1 for t in first if t == 1)} of {len(first)} pairs reach it with their "
        f"first trial, {sum(1 for t in first if t <= 3)} within 3 (no early-stopping rule shortens a search that "
        "is done by then: MO-ASHA never stops a rung's first trial).",
        *_replay_lines(replays),
        "",
    ]
    return median


def _count(trials: int, result: dict[str, Any]) -> str:
    """Trials to a level, or 'never' when the curve never reaches it (`trials_to` returns one past the end)."""
    return str(trials) if trials <= len(result["curve"]) else "never"


def _replay_lines(replays: list[dict[str, Any]]) -> list[str]:
    """The replayed decisions over all pairs: how often the rule would cut a front trial, and the prune rates
    of the trials it stops at the first rung against those it keeps there."""
    front, lost = sum(r["front_trials"] for r in replays), sum(len(r["lost"]) for r in replays)
    stopped_rates = [float(r["rates"][t]) for r in replays for t, rung in r["stops"].items() if rung == 1]
    kept_rates = [float(r["rates"][t]) for r in replays for t in r["rates"].index if r["stops"].get(t) != 1]

    def mean(values: list[float]) -> str:
        return f"{statistics.mean(values):.2f}" if values else "n/a"

    return [
        "Replay (the rule's decisions replayed on each search without early stopping, trial by trial in order, "
        "each trial ranked among the earlier trials' tickets at its rungs; last column): the rule would stop "
        f"{lost} of the {front} trials that hold a ticket of the final front (region of interest) before that "
        f"ticket was measured; it stops {len(stopped_rates)} of {sum(r['trials'] for r in replays)} trials at the "
        f"first rung, whose mean prune rate is {mean(stopped_rates)} against {mean(kept_rates)} for the trials "
        "it keeps there.",
    ]


def _plot(args: argparse.Namespace, runs: dict, reference: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.samplers), figsize=(5 * len(args.samplers), 3.5), squeeze=False)
    for ax, sampler in zip(axes[0], args.samplers, strict=True):
        for (s, seed, rungs), result in runs.items():
            if s != sampler:
                continue
            xs, ys = zip(*hv_curve(result, reference), strict=True)
            color = "C0" if rungs is None else f"C{1 + args.asha_rungs.index(rungs)}"
            label = "no early stopping" if rungs is None else f"MO-ASHA, rungs {rungs}"
            ax.step(xs, ys, where="post", color=color, alpha=0.8, label=label if seed == args.seed else None)
        ax.set(title=f"{sampler}, seeds {args.seed}..{args.seed + args.seeds - 1}", xlabel="wall time (s)",
               ylabel="hypervolume (val acc x energy)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)


def part_workers(args: argparse.Namespace, tmp: Path, lines: list[str]) -> float | None:
    import sltsearch

    epochs = args.worker_epochs or args.epochs
    spec = base_spec(argparse.Namespace(**{**vars(args), "trials": args.worker_trials, "epochs": epochs}),
                     sampler="random", backend="ray")
    rates, loads, twice, overhead, phases, stage_s = {}, {}, {}, {}, {}, {}
    for workers in (1, 2):
        marks: list[tuple[str, float]] = []  # (event, when) of the run's trial events
        t0 = time.perf_counter()
        result = sltsearch.run(spec, run_dir=tmp / f"workers_{workers}", workers=workers, cpus_per_trial=1, threads=1,
                               on_event=lambda event, m=marks: m.append((type(event).__name__, time.perf_counter())))
        wall = time.perf_counter() - t0
        starts = [when - t0 for event, when in marks if event == "TrialStart"]
        ends = [when - t0 for event, when in marks if event == "TrialEnd"]
        rates[workers] = 3600 * args.worker_trials / wall
        loads[workers] = load_now()
        twice[workers] = trainings(result.tickets)
        staged = float(result.tickets["wall_time_s"].sum())  # measured stage time (training + measuring)
        overhead[workers] = (workers * wall - staged) / staged
        # start-up (checks, Ray start, first worker) / the trials / the end (front, Ray shutdown)
        phases[workers] = (min(starts), max(ends) - min(starts), wall - max(ends))
        computed = result.tickets[~result.tickets["cached"].astype(bool)]
        stage_s[workers] = float(computed["wall_time_s"].sum())  # the stages this search trained and measured
    ratio = rates[2] / rates[1]
    trials_ratio = phases[1][1] / phases[2][1]
    lines += [
        "## 3. Ray workers",
        "",
        f"{args.worker_trials} trials, random sampler, seed {args.seed}, {epochs} epoch(s) per stage, 1 CPU and 1 "
        "torch thread per trial, a private local Ray started by each search (its start-up included), separate "
        "run folders (no shared cache). Overhead = worker time (workers x wall) not spent in the tickets' "
        "measured stages (training + measuring), as a share of that stage time: Ray start-up, worker start, "
        "imports, data loading, the driver and idle workers.",
        "",
        "| workers | trials per hour | overhead | machine load after |",
        "|---|---|---|---|",
        f"| 1 | {rates[1]:.0f} | {100 * overhead[1]:.0f} % | {loads[1]} |",
        f"| 2 | {rates[2]:.0f} | {100 * overhead[2]:.0f} % | {loads[2]} |",
        "",
        f"Trials per hour, 2 vs 1 workers: **{ratio:.2f}x**. Stage trainings / distinct stages / trained twice "
        f"(from the ticket rows): 1 worker {twice[1]}, 2 workers {twice[2]} (concurrent trials wait on the stage "
        "lock instead of training a shared dense run twice).",
        "",
        "Where the time goes (s): start-up until the first trial starts (pre-run checks, Ray start, the first "
        "worker's imports) / the trials (first start to last end) / the end (front, Ray shutdown): "
        f"1 worker {phases[1][0]:.1f} / {phases[1][1]:.1f} / {phases[1][2]:.1f}, 2 workers {phases[2][0]:.1f} / "
        f"{phases[2][1]:.1f} / {phases[2][2]:.1f}. The trials alone run **{trials_ratio:.2f}x** faster with 2 "
        f"workers. The stages computed (training + measuring) took {stage_s[1]:.1f} s in all with 1 worker and "
        f"{stage_s[2]:.1f} s with 2 ({100 * (stage_s[2] / stage_s[1] - 1):+.0f} %: two trainings share the 2 "
        "cores with Ray's own processes and the driver), so the trials phase can gain at most "
        f"{2 * stage_s[1] / stage_s[2]:.2f}x; a trial that needs the dense run another worker is training waits "
        "for it.",
        "",
    ]
    lines += [
        "The Summary's overhead is the Optuna backend's (part 1, timed exactly around `run_trial`); this table's "
        "is Ray's, by the coarser definition above.",
        "",
    ]
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--asha-trials", type=int, default=None, help="trials per search in part 2 (default --trials)")
    parser.add_argument("--asha-rounds", type=int, default=8, help="most IMP rounds (rungs) in part 2's space")
    parser.add_argument("--asha-rungs", nargs="+", default=["geometric"], choices=list(RUNGS_TEXT),
                        help="MO-ASHA rung spacings compared in part 2 (the first gives the Summary's figure)")
    parser.add_argument("--asha-fixed-rounds", action="store_true",
                        help="part 2: every trial runs up to --asha-rounds rounds (the resource, not searched), "
                        "as ASHA's protocol gives every configuration of the baseline the full budget")
    parser.add_argument("--asha-budget", type=int, default=2,
                        help="the MO-ASHA search runs this many times part 2's trials, cut at the plain one's time")
    parser.add_argument("--hv-min-accuracy", type=float, default=0.9,
                        help="part 2's hypervolume reference accuracy (the region of interest)")
    parser.add_argument("--data", choices=["digits", "mnist1d"], default="digits")
    parser.add_argument("--samples", type=int, default=2000, help="mnist1d samples generated (train+val+test)")
    parser.add_argument("--out", type=Path, default=OUT / "search.md", help="the report (its plot: same name, .png)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--samplers", nargs="+", default=["nsga2", "tpe", "random"])
    parser.add_argument("--worker-trials", type=int, default=12)
    parser.add_argument("--worker-epochs", type=int, default=None, help="epochs per stage in part 3 (default --epochs)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip", nargs="*", default=[], choices=["cache", "asha", "workers"])
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    bench = Bench()
    lines: list[str] = []
    summary: dict[str, Any] = {"cache": None, "twice": None, "asha": None, "workers": None, "overhead": None}

    def fmt(value: float | None, pattern: str) -> str:
        return "n/a" if value is None else pattern.format(value)

    def write(final: bool) -> None:
        """The report so far (written after every part, so an interrupted run keeps what it measured)."""
        overhead = None if summary["overhead"] is None else 100 * summary["overhead"]
        tail = [
            bench.summary([
                f"cache {fmt(summary['cache'], '{:.2f}')}x", f"trained twice {fmt(summary['twice'], '{}')}",
                f"mo-asha {fmt(summary['asha'], '{:.2f}')}x", f"workers {fmt(summary['workers'], '{:.2f}')}x",
                f"overhead {fmt(overhead, '{:.1f}')} %",
            ])
        ]
        if not final:
            tail = ["(interrupted here: the parts below were not measured)", "", *tail]
        header = bench.header(f"Search driver benchmark ({args.data})", seeds=args.seeds, threads=args.threads)
        bench.write(args.out, header + lines + tail, echo=False)

    with tempfile.TemporaryDirectory(prefix="sltsearch-bench-") as tmpdir:
        tmp = Path(tmpdir)
        # untimed warm-up (imports, first-call costs), so the first timed search does not pay for them
        search(base_spec(argparse.Namespace(**{**vars(args), "trials": 1}), sampler="random"), tmp / "warmup")
        if "cache" not in args.skip:
            cache = part_cache(args, tmp, lines)
            summary.update(cache=cache["ratio"], twice=cache["twice"], overhead=cache["overhead"])
            lines += [
                "## Driver overhead",
                "",
                f"Optuna backend, part 1's cached search: wall time outside `run_trial` "
                f"{cache['on']['wall'] - cache['on']['inside']:.2f} s over {cache['on']['inside']:.1f} s inside "
                f"it: **{100 * cache['overhead']:.1f} %**.",
                "",
            ]
        else:
            lines += ["## 1. Work never done twice", "", "Not run (--skip cache).", ""]
        write(False)
        if "asha" not in args.skip:
            summary["asha"] = part_asha(args, tmp, lines)
        else:
            lines += ["## 2. Early stopping", "", "Not run (--skip asha).", ""]
        write(False)
        if "workers" not in args.skip:
            summary["workers"] = part_workers(args, tmp, lines)
        else:
            lines += ["## 3. Ray workers", "", "Not run (--skip workers).", ""]
    lines += [
        "## Reading these numbers",
        "",
        "- Stages here are short (a tiny CNN on digits); a cached stage's ticket reuses the measurement stored "
        "with the stage (no evaluation), so what a cache hit saves is its training and its measurement; the "
        "wall-time ratio grows with the training recipe, the count of stage trainings against distinct stages "
        "does not depend on it.",
        "- MO-ASHA: a search that reaches the 95 % level within its first few trials (column 'trials to t95') "
        "leaves early stopping nothing to shorten. Where the search with MO-ASHA never reaches it (0x), a trial "
        "holding a front ticket was stopped at an early rung before that ticket's round (under the random "
        "sampler the parameters are the same with and without, so nothing else differs): the replay column counts "
        "how often the rule's early rungs cut such a trial on this task, i.e. how well an early round predicts "
        "the late ones. The whole-search wall ratio shows what the rule saves on a fixed trial budget.",
        "- Workers: the machine has 2 cores, shared with other jobs (load beside every timing): 2x is the "
        "ceiling and the other jobs' load lowers it; each timing includes starting a private Ray.",
        "",
    ]
    write(True)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
