"""Where the SNN training step's time goes on the CPU, against its ReLU twin, before and after a change.

The paper-size models (VGG-16, ResNet-19, Spikformer-4-384) at a reduced width on CIFAR-shaped generated inputs:
the spiking network at T x batch B against its ANN twin (``model.neuron.type: relu``, `sltsearch.models.twin`: the
same layers, ReLU for every neuron, run once) on a batch of T x B, so both do the same conv / linear arithmetic and
the ratio is the price of the neurons and the time axis. A step is sltsearch's own ``train_one_epoch`` on one batch
(Adam, masks at 50 % re-applied after the step, state reset), one torch thread.

Two source trees are measured side by side in one run: ``--baseline`` (a commit, exported with ``git archive``) and
this checkout; each round runs one worker process per tree (alternating which goes first), and the SNN and ANN
steps alternate inside a worker, so a load change on a shared machine hits both alike. Per tree it reports the
median step times, the SNN/ANN ratio, the step split into phases (forward, backward, optimizer, masks, reset) and a
``torch.profiler`` breakdown by what the time is spent on (convolutions, BatchNorm, neurons, optimizer, masks,
copies and casts, the rest). ``--variants`` adds channels-last and ``torch.compile`` of the model (its compile time
reported) for this checkout.

    python benchmarks/snn_step_cpu.py --baseline 8d8ca89     # writes results/benchmarks/snn_step_cpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import load_average  # noqa: E402  (the load, worded one way for every report)

OUT = ROOT / "results" / "benchmarks" / "snn_step_cpu.md"
# reduced paper models: the presets' layouts at a quarter of their width (Spikformer: 96 dims, 4 blocks, 12 heads)
MODELS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "vgg16": ("spiking_vgg", "vgg16", {"width": 0.25}),
    "resnet19": ("spiking_resnet", "resnet19", {"width": 0.25, "hidden": 64}),
    "spikformer": (
        "spikformer",
        "cifar",
        {"embed_dim": 96, "depth": 4, "heads": 12, "mlp_ratio": 4.0, "patch_size": 4, "pep_channels": [12, 24, 48, 96]},
    ),
}
# the worker's CPU time (one torch thread; CPU autograd runs in the calling thread): on a shared machine it counts
# what the step computes, not the time other processes held the core
CLOCK = time.process_time
# the profiler times ops by the wall clock, which a busy machine inflates at random: shares over several steps
PROFILED_STEPS = 8
PHASES = ("forward", "backward", "optimizer", "masks", "reset")
CATEGORIES = (
    "convolution",
    "batch norm",
    "neurons",
    "matmul / linear",
    "pooling",
    "optimizer",
    "masks",
    "copies / casts",
    "other",
)


# ---------------------------------------------------------------- worker (runs in the measured tree)


def _build(name: str, snn: bool, image: tuple[int, ...], time_steps: int) -> Any:
    from sltsearch.models import build_model
    from sltsearch.spec import ModelSpec

    family, preset, options = MODELS[name]
    neuron = {} if snn else {"neuron": {"type": "relu"}}
    return build_model(
        ModelSpec(name=family, preset=preset, time_steps=time_steps, options=options, **neuron), image, 10
    )


def _category(event: Any) -> str:
    """What one profiled op's own time is spent on: its enclosing region first, then its own name."""
    parent = event
    while parent is not None:
        name = parent.name
        if name.startswith(("Optimizer.step", "Optimizer.zero_grad")):
            return "optimizer"
        if name.startswith("_FusedMultiStep") or "lif" in name.lower() or name.startswith("sltsearch.neurons"):
            return "neurons"
        if name == "sltsearch.masks":
            return "masks"
        parent = parent.cpu_parent
    name = event.name
    if "conv" in name:
        return "convolution"
    if "batch_norm" in name:
        return "batch norm"
    if "pool" in name:
        return "pooling"
    if any(k in name for k in ("mm", "matmul", "linear")):
        return "matmul / linear"
    if name in ("aten::copy_", "aten::_to_copy", "aten::to", "aten::clone", "aten::contiguous"):
        return "copies / casts"
    return "other"


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Time one tree's SNN and twin steps (alternating) and profile them; prints one JSON line."""
    import torch
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile, record_function

    import sltsearch.train as train_module
    from sltsearch.spec import TrainSpec
    from sltsearch.tickets import attach_masks, magnitude_prune
    from sltsearch.tickets.masks import apply_masks

    torch.set_num_threads(1)

    def labelled_masks(model: Any) -> None:
        with record_function("sltsearch.masks"):
            apply_masks(model)

    train_module.apply_masks = labelled_masks  # train_one_epoch's own call, labelled for the profiler
    dev = torch.device("cpu")
    image, t, b = tuple(args.image), args.time_steps, args.batch
    out: dict[str, Any] = {"src": str(Path(sys.modules["sltsearch"].__file__).parent), "models": {}}
    for name in args.models:
        row: dict[str, Any] = {}
        runs = {}
        for snn in (True, False):
            torch.manual_seed(0)
            model = _build(name, snn, image, t)
            if args.variant == "channels_last":
                model = model.to(memory_format=torch.channels_last)
            attach_masks(model, magnitude_prune(model, 0.5, "global"))
            compile_s = None
            if args.variant == "compile":
                started = time.perf_counter()
                model.forward = torch.compile(model.forward)
            opt = train_module.make_optimizer(model, TrainSpec(optimizer="adam", lr=1e-3))
            batch = b if snn else t * b
            gen = torch.Generator().manual_seed(1)
            x = torch.rand(batch, *image, generator=gen)
            if args.variant == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, 10, (batch,), generator=gen)
            for _ in range(args.warmup):
                train_module.train_one_epoch(model, [(x, y)], opt, dev)
            if args.variant == "compile":
                compile_s = time.perf_counter() - started
            runs["snn" if snn else "ann"] = (model, opt, x, y)
            row[("snn" if snn else "ann") + "_params"] = sum(p.numel() for p in model.parameters())
            if compile_s is not None:
                row[("snn" if snn else "ann") + "_compile_s"] = compile_s
        times: dict[str, list[float]] = {"snn": [], "ann": []}
        walls: dict[str, list[float]] = {"snn": [], "ann": []}
        for _ in range(args.steps):  # alternate, so a change of load hits both
            for kind, (model, opt, x, y) in runs.items():
                cpu, wall = CLOCK(), time.perf_counter()
                train_module.train_one_epoch(model, [(x, y)], opt, dev)
                times[kind].append(CLOCK() - cpu)
                walls[kind].append(time.perf_counter() - wall)
        for kind in runs:
            row[f"{kind}_ms"] = 1e3 * statistics.median(times[kind])
            row[f"{kind}_wall_ms"] = 1e3 * statistics.median(walls[kind])
        row["ratio"] = row["snn_ms"] / row["ann_ms"]
        row["wall_ratio"] = row["snn_wall_ms"] / row["ann_wall_ms"]
        for kind, (model, opt, x, y) in runs.items():  # the step split into phases (train_one_epoch's CPU path)
            phases: dict[str, list[float]] = defaultdict(list)
            model.train()
            for _ in range(max(3, args.steps // 2)):
                marks = [CLOCK()]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x).float(), y)
                marks.append(CLOCK())
                loss.backward()
                marks.append(CLOCK())
                opt.step()
                marks.append(CLOCK())
                apply_masks(model)
                marks.append(CLOCK())
                model.reset_state()
                loss.item()
                marks.append(CLOCK())
                for phase, start, end in zip(PHASES, marks, marks[1:], strict=False):
                    phases[phase].append(end - start)
            row[f"{kind}_phases_ms"] = {p: 1e3 * statistics.median(v) for p, v in phases.items()}
        if args.profile:
            for kind, (model, opt, x, y) in runs.items():
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    for _ in range(PROFILED_STEPS):
                        train_module.train_one_epoch(model, [(x, y)], opt, dev)
                spent: dict[str, float] = defaultdict(float)
                ops: dict[str, float] = defaultdict(float)
                for event in prof.events():
                    spent[_category(event)] += event.self_cpu_time_total / (1e3 * PROFILED_STEPS)  # ms per step
                    ops[event.name] += event.self_cpu_time_total / (1e3 * PROFILED_STEPS)
                row[f"{kind}_categories_ms"] = dict(spent)
                row[f"{kind}_top_ops_ms"] = dict(sorted(ops.items(), key=lambda kv: -kv[1])[:8])
        out["models"][name] = row
    return out


# ---------------------------------------------------------------- driver


def _export(commit: str, into: Path) -> Path:
    """``commit``'s sltsearch package in ``into`` (git archive), importable with PYTHONPATH=into."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "sltsearch"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def _run_worker(src: Path, args: argparse.Namespace, variant: str, profile: bool) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--models",
        *args.models,
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--batch",
        str(args.batch),
        "--time-steps",
        str(args.time_steps),
        "--image",
        *map(str, args.image),
        "--variant",
        variant,
    ] + (["--profile"] if profile else [])
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, cwd=src, env=env, capture_output=True, text=True, timeout=args.timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"worker in {src} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def _machine() -> dict[str, str]:
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def _median(rows: list[dict[str, Any]], model: str, key: str) -> float:
    return statistics.median(r["models"][model][key] for r in rows)


def report(
    args: argparse.Namespace,
    results: dict[str, list[dict[str, Any]]],
    profiles: dict[str, dict[str, Any]],
    info: dict[str, str],
    loads: tuple[tuple[float, ...], tuple[float, ...]],
    wall_s: float,
) -> str:
    trees = list(results)
    t, b = args.time_steps, args.batch
    lines = [
        "# The SNN training step on the CPU: where the time goes, before and after",
        "",
        f"Written by `python benchmarks/snn_step_cpu.py {' '.join(sys.argv[1:])}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in {wall_s:.0f} s.",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()) + f"; one torch thread per worker. Load average "
        f"(1, 5, 15 min) {', '.join(f'{x:.2f}' for x in loads[0])} before, {', '.join(f'{x:.2f}' for x in loads[1])} "
        "after (a shared machine: the medians over alternating steps and rounds are what to compare, not one step).",
        "",
        f"Models: the paper presets at a reduced size, inputs {list(args.image)} (CIFAR-shaped, generated, seed 1), "
        f"T = {t}, SNN batch {b}, twin batch {t * b}; weights seeded with torch.manual_seed(0), masks at 50 % "
        "(global magnitude) re-applied after every step, Adam lr 1e-3. "
        + "; ".join(f"{k}: {f} {p} {o}" for k, (f, p, o) in MODELS.items() if k in args.models)
        + ".",
        "",
        f"One step = sltsearch's `train_one_epoch` on one batch; median of {args.steps} steps per round (SNN and twin "
        f"alternating, after {args.warmup} warm-up steps), then the median over {args.rounds} rounds; each round runs "
        "one worker process per source tree, alternating which goes first. Times are the worker's CPU time "
        "(`time.process_time`: one torch thread, and CPU autograd runs in the calling thread), which on a shared "
        "machine counts what the step computes rather than the time other processes held the core; the wall-clock "
        "ratio is given too. Phases: the same step written out (`train_one_epoch`'s CPU path), timed per phase.",
        "",
        "## SNN / ANN step ratio, side by side",
        "",
        "| model | " + " | ".join(f"{tree}: SNN ms | ANN ms | SNN/ANN (wall)" for tree in trees) + " |",
        "|---|" + "---:|---:|---:|" * len(trees),
    ]
    for model in args.models:
        cells = []
        for tree in trees:
            rows = results[tree]
            cells.append(
                f"{_median(rows, model, 'snn_ms'):.1f} | {_median(rows, model, 'ann_ms'):.1f} | "
                f"{_median(rows, model, 'ratio'):.2f}x ({_median(rows, model, 'wall_ratio'):.2f}x)"
            )
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Per round (SNN/ANN): "
        + "; ".join(
            f"{tree} "
            + ", ".join(
                f"{m} " + "/".join(f"{r['models'][m]['ratio']:.2f}" for r in results[tree]) for m in args.models
            )
            for tree in trees
        )
        + ".",
        "",
    ]
    lines += [
        "## The step in phases (CPU ms, median)",
        "",
        "| tree | model | net | " + " | ".join(PHASES) + " | sum |",
        "|---|---|---|" + "---:|" * (len(PHASES) + 1),
    ]
    for tree in trees:
        for model in args.models:
            for kind in ("snn", "ann"):
                phases = {
                    p: statistics.median(r["models"][model][f"{kind}_phases_ms"][p] for r in results[tree])
                    for p in PHASES
                }
                lines.append(
                    f"| {tree} | {model} | {kind} | "
                    + " | ".join(f"{phases[p]:.2f}" for p in PHASES)
                    + f" | {sum(phases.values()):.2f} |"
                )
    lines += [
        "",
        "## torch.profiler: what the step's time is spent on (% of its ops' own time)",
        "",
        f"{PROFILED_STEPS} steps profiled per network. Every op's own time, attributed to its enclosing region (the "
        "fused neurons' autograd functions, the optimizer's step, the masks' multiply after the step) or else to its "
        "kind; the gradient hook's mask multiply runs inside backward and counts as `other`. The profiler reads the "
        "wall clock, which other processes on a busy machine inflate (the last column, against the CPU-time step "
        "above), at random and in proportion to each op's time: compare the shares, not the milliseconds.",
        "",
        "| tree | model | net | " + " | ".join(CATEGORIES) + " | profiled wall ms / step |",
        "|---|---|---|" + "---:|" * (len(CATEGORIES) + 1),
    ]
    for tree, prof in profiles.items():
        for model in args.models:
            for kind in ("snn", "ann"):
                cats = prof["models"][model][f"{kind}_categories_ms"]
                total = max(sum(cats.values()), 1e-9)
                lines.append(
                    f"| {tree} | {model} | {kind} | "
                    + " | ".join(f"{100 * cats.get(c, 0.0) / total:.1f} %" for c in CATEGORIES)
                    + f" | {total:.1f} |"
                )
    lines += ["", "Top ops by own time (% of the step's ops' own time, this checkout):", ""]
    last = profiles[trees[-1]]
    for model in args.models:
        for kind in ("snn", "ann"):
            top = last["models"][model][f"{kind}_top_ops_ms"]
            total = max(sum(last["models"][model][f"{kind}_categories_ms"].values()), 1e-9)
            lines.append(f"- {model} {kind}: " + ", ".join(f"{k} {100 * v / total:.1f} %" for k, v in top.items()))
    if args.variants_results:
        lines += [
            "",
            "## Variants of this checkout (same run)",
            "",
            "| variant | model | SNN ms | ANN ms | SNN/ANN | compile s (SNN / ANN) |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for variant, rows in args.variants_results.items():
            for model in args.models:
                if "error" in rows:
                    lines.append(f"| {variant} | {model} | | | error: {rows['error']} | |")
                    continue
                m = rows["models"][model]
                comp = f"{m['snn_compile_s']:.0f} / {m['ann_compile_s']:.0f}" if "snn_compile_s" in m else ""
                lines.append(
                    f"| {variant} | {model} | {m['snn_ms']:.1f} | {m['ann_ms']:.1f} | {m['ratio']:.2f}x | {comp} |"
                )
    lines += _findings(args, results, profiles)
    lines.append("")
    return "\n".join(lines)


def _share(prof: dict[str, Any], model: str, kind: str, category: str) -> float:
    cats = prof["models"][model][f"{kind}_categories_ms"]
    return cats.get(category, 0.0) / max(sum(cats.values()), 1e-9)


def _findings(
    args: argparse.Namespace, results: dict[str, list[dict[str, Any]]], profiles: dict[str, dict[str, Any]]
) -> list[str]:
    """What the tables say, computed from them (so a rerun restates it), and what was checked in the code."""
    trees = list(results)
    last = profiles[trees[-1]]
    lines = ["", "## Findings", ""]
    lines.append(
        "- Where the SNN step's own CPU time goes (this checkout): "
        + "; ".join(
            f"{m}: convolutions {100 * _share(last, m, 'snn', 'convolution'):.0f} %, neurons "
            f"{100 * _share(last, m, 'snn', 'neurons'):.0f} %, BatchNorm "
            f"{100 * _share(last, m, 'snn', 'batch norm'):.0f} %, optimizer "
            f"{100 * _share(last, m, 'snn', 'optimizer'):.0f} %, masks "
            f"{100 * _share(last, m, 'snn', 'masks'):.0f} %, copies / casts "
            f"{100 * _share(last, m, 'snn', 'copies / casts'):.0f} %"
            for m in args.models
        )
        + ". The SNN step does the twin's arithmetic plus the neurons, so on the CPU its ratio stays near 1 + the "
        "neurons' share."
    )
    if len(trees) > 1:
        base = profiles[trees[0]]
        casts = "; ".join(
            f"{m} {kind} {base['models'][m][f'{kind}_categories_ms'].get('copies / casts', 0.0):.2f} -> "
            f"{last['models'][m][f'{kind}_categories_ms'].get('copies / casts', 0.0):.2f} ms"
            for m in args.models
            for kind in ("snn", "ann")
        )
        lines.append(
            f"- Copies and casts per step, {trees[0]} -> this checkout: {casts}. The masks multiplied the gradient "
            "(hook) and the weights (after the step) by the boolean buffer, which torch cast to float each time, "
            "twice per layer and step; they are now cached in the weight's dtype and applied in one foreach multiply "
            "(`sltsearch.tickets.masks`, bit-for-bit the same weights: tests/test_masks_pruning.py)."
        )
    if len(trees) > 1:

        def phase(tree: str, model: str, kind: str, name: str) -> float:
            return statistics.median(r["models"][model][f"{kind}_phases_ms"][name] for r in results[tree])

        masks = "; ".join(
            f"{m} {phase(trees[0], m, 'snn', 'masks'):.2f} / {phase(trees[0], m, 'ann', 'masks'):.2f} -> "
            f"{phase(trees[-1], m, 'snn', 'masks'):.2f} / {phase(trees[-1], m, 'ann', 'masks'):.2f} ms"
            for m in args.models
        )
        ratios = ", ".join(
            f"{m} {_median(results[trees[0]], m, 'ratio'):.2f}x -> {_median(results[trees[-1]], m, 'ratio'):.2f}x"
            for m in args.models
        )
        lines.append(
            f"- The masks' phase after the step (CPU ms, SNN / ANN), {trees[0]} -> this checkout: {masks}. It is the "
            f"same work in both networks, so the SNN/ANN ratio does not move with it ({ratios})."
        )
    for variant, rows in getattr(args, "variants_results", {}).items():
        if "models" in rows:
            lines.append(
                f"- {variant}: SNN/ANN "
                + ", ".join(f"{m} {rows['models'][m]['ratio']:.2f}x" for m in args.models)
                + " (eager, this checkout: "
                + ", ".join(f"{m} {_median(results[trees[-1]], m, 'ratio'):.2f}x" for m in args.models)
                + "); its own worker, run after the rounds."
            )
    lines += [
        "- Conv and BatchNorm already run once over the merged T x B batch: spikingjelly's multi-step `layer.Conv2d`"
        " / `layer.BatchNorm2d` / `SeqToANNContainer` flatten [T, B] before the call (VGG, ResNet and Spikformer "
        "all use them); the only per-time-step loop is the neurons' recurrence (`sltsearch.models.fused_neurons`, a "
        "few in-place ops per step on the CPU, one Triton kernel on CUDA).",
        "- Not cut, because results would change: the direct encoder repeats the image T times, so the first "
        "convolution runs on T identical copies; convolving once and repeating would give the same forward, but "
        "BatchNorm's running variance counts T x B x H x W samples (its unbiased correction differs), so tickets "
        "would drift. Adam's update is a large share at these small sizes in both networks; it is torch's own "
        "optimizer, the same in both, and any change to it changes the numbers.",
        "- On the GPU the SNN step was 2.20x its twin on VGG-16 (results/benchmarks/gpu.md), far above the "
        "neurons' share of the arithmetic here: the rest is GPU-side (kernel launches per neuron layer and step, "
        "spikingjelly's dispatch, casts under autocast); `benchmarks/gpu.py` profiles the step's kernels there and "
        "times `torch.compile` and channels-last, so the next GPU session places it.",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=None, help="a commit to compare with (exported with git archive)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--time-steps", type=int, default=4)
    ap.add_argument("--image", type=int, nargs=3, default=[3, 32, 32])
    ap.add_argument("--variants", nargs="*", default=[], choices=["channels_last", "compile"])
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per worker process")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="eager", help=argparse.SUPPRESS)
    ap.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return 0
    started = time.perf_counter()
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        trees: dict[str, Path] = {}
        if args.baseline:
            try:
                trees[f"baseline {args.baseline}"] = _export(args.baseline, Path(tmp))
            except subprocess.CalledProcessError as err:
                print(
                    f"snn_step_cpu.py: --baseline {args.baseline}: not a commit of this repository ({err})",
                    file=sys.stderr,
                )
                return 2
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "sltsearch"], capture_output=True, text=True
        ).stdout.strip()
        trees[f"this checkout {head.stdout.strip()}{' + changes' if dirty else ''}"] = ROOT
        results: dict[str, list[dict[str, Any]]] = {tree: [] for tree in trees}
        for round_no in range(args.rounds):
            order = list(trees) if round_no % 2 == 0 else list(reversed(trees))
            for tree in order:
                print(f"round {round_no + 1}/{args.rounds}: {tree}", flush=True)
                results[tree].append(_run_worker(trees[tree], args, "eager", profile=False))
        profiles = {tree: _run_worker(src, args, "eager", profile=True) for tree, src in trees.items()}
        args.variants_results = {}
        for variant in args.variants:
            print(f"variant {variant}", flush=True)
            try:
                args.variants_results[variant] = _run_worker(ROOT, args, variant, profile=False)
            except (RuntimeError, subprocess.TimeoutExpired) as err:
                args.variants_results[variant] = {"error": str(err).strip().splitlines()[-1][:200]}
    text = report(args, results, profiles, _machine(), (load_before, load_average()), time.perf_counter() - started)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
