"""Benchmark the tiny model zoo: SNN training-step time vs the same network as a plain ANN, and accuracy.

For every registered family among spiking_cnn, spiking_vgg, spiking_resnet, spikformer (preset ``tiny``):

1. *Step time*: one training step (forward, cross-entropy, backward, Adam step, state reset) of the SNN on
   a digits-shaped batch [B, 1, 8, 8] at T time steps, against the same body built with ReLU in place of
   every neuron, in single-step mode (no time loop), on a batch of T*B samples: the ANN does the same
   conv/linear arithmetic, so the ratio is the overhead of the neurons and the time loop (arithmetic
   lower bound = 1). SNN and ANN steps alternate in one loop after warm-up; the median is reported.
2. *Accuracy*: dense test accuracy after the default recipe (``Spec()`` defaults: Adam lr 1e-2, cosine,
   10 epochs, batch 32, T=4, best-val epoch) on digits and on MNIST-1D (5,000 samples, 60/20/20 split).
   Runs go to a process pool (one torch thread each) and are cached in a JSONL file, so a rerun with
   more seeds only trains the missing runs.

    .venv/bin/python benchmarks/models.py --seeds 3            # writes results/benchmarks/models.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import Bench, load_average  # noqa: E402
from spikingjelly.activation_based import neuron  # noqa: E402

from sltsearch.models import MODELS, build_model  # noqa: E402
from sltsearch.models.fused_neurons import FusedIFNode, FusedLIFNode  # noqa: E402
from sltsearch.spec import ModelSpec, Spec  # noqa: E402

FAMILIES = ["spiking_cnn", "spiking_vgg", "spiking_resnet", "spikformer"]
DATASETS = ["digits", "mnist1d"]


def _step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, snn: bool) -> None:
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()
    if snn:
        functional.reset_net(model)


def _with_spikingjelly_neurons(model: nn.Module) -> nn.Module:
    """The same model with spikingjelly's own LIF/IF nodes in place of sltsearch's fused CPU nodes."""
    for mod in model.modules():
        if isinstance(mod, FusedLIFNode):
            mod.__class__ = neuron.LIFNode
        elif isinstance(mod, FusedIFNode):
            mod.__class__ = neuron.IFNode
    return model


def time_family(name: str, t: int, batch: int, steps: int, warmup: int) -> dict:
    """Median step times of the SNN (fused neurons), the SNN with spikingjelly's neurons, and the ANN."""
    torch.manual_seed(0)
    shape = (1, 8, 8)
    spec = ModelSpec(name=name, preset="tiny", time_steps=t)
    snn = build_model(spec, shape, 10)
    snn_sj = _with_spikingjelly_neurons(build_model(spec, shape, 10))
    family = MODELS[name]
    row: dict = {"model": name, "params": sum(p.numel() for p in snn.parameters())}
    try:
        ann = family.build(shape, 10, nn.ReLU, dict(family.presets["tiny"]))
        functional.set_step_mode(ann, "s")
        ann(torch.rand(2 * t, *shape))
    except Exception as err:  # a body that needs the time axis cannot run as a plain ANN
        ann = None
        row["ann_error"] = f"{type(err).__name__}: {err}"[:120]
    x, y = torch.rand(batch, *shape), torch.randint(0, 10, (batch,))
    xa, ya = torch.rand(batch * t, *shape), torch.randint(0, 10, (batch * t,))
    runs = [("snn_ms", snn, x, y, True), ("snn_sj_ms", snn_sj, x, y, True)]
    if ann is not None:
        runs.append(("ann_ms", ann, xa, ya, False))
    opts = {key: torch.optim.Adam(model.parameters(), lr=1e-3) for key, model, *_ in runs}
    times: dict[str, list[float]] = {key: [] for key, *_ in runs}
    for i in range(warmup + steps):
        for key, model, xs, ys, is_snn in runs:  # interleaved, so load changes hit every variant alike
            t0 = time.perf_counter()
            _step(model, opts[key], xs, ys, is_snn)
            if i >= warmup:
                times[key].append(time.perf_counter() - t0)
    for key, vals in times.items():
        row[key] = 1e3 * statistics.median(vals)
    if ann is not None:
        row["ratio"] = row["snn_ms"] / row["ann_ms"]
        row["ratio_sj"] = row["snn_sj_ms"] / row["ann_ms"]
    return row


def train_run(job: tuple[str, str, int]) -> dict:
    name, dataset, seed = job
    torch.set_num_threads(1)
    from sltsearch.data import build_data, make_loader
    from sltsearch.train import evaluate, fit

    spec = Spec.model_validate({"seed": seed, "data": {"name": dataset}, "model": {"name": name, "preset": "tiny"}})
    torch.manual_seed(seed)
    cpu = torch.device("cpu")
    t0 = time.perf_counter()
    try:
        data = build_data(spec.data)
        model = build_model(spec.model, data.input_shape, data.num_classes)
        res = fit(
            model,
            make_loader(data.train, spec.data.batch_size, True, seed),
            make_loader(data.val, spec.data.eval_batch_size, False),
            spec.train,
            cpu,
        )
        test = evaluate(model, make_loader(data.test, spec.data.eval_batch_size, False), cpu)
    except Exception as err:
        return {"model": name, "data": dataset, "seed": seed, "error": f"{type(err).__name__}: {err}"[:160]}
    return {
        "model": name,
        "data": dataset,
        "seed": seed,
        "val": res.val_accuracy,
        "test": test,
        "train_s": time.perf_counter() - t0,
    }


def _fmt_acc(vals: list[float]) -> str:
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return f"{100 * vals[0]:.1f} (n=1)"
    return f"{100 * statistics.mean(vals):.1f} ± {100 * statistics.stdev(vals):.1f} (n={len(vals)})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--time-steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", default="/tmp/sltsearch_bench_models.jsonl")
    ap.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "models.md"))
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--families", nargs="+", default=FAMILIES, choices=FAMILIES, help="model families to run")
    ap.add_argument("--timing-from", default=None, help="stdout log of an earlier run: reuse its timing rows")
    args = ap.parse_args()
    bench = Bench()

    families = [f for f in args.families if f in MODELS]
    threads = torch.get_num_threads()
    cache = Path(args.cache)
    done: dict[tuple[str, str, int], dict] = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            r = json.loads(line)
            done[(r["model"], r["data"], r["seed"])] = r
    jobs = [(f, d, s) for f in families for d in DATASETS for s in range(args.seeds) if (f, d, s) not in done]
    if not args.skip_accuracy and jobs:
        with ProcessPoolExecutor(args.workers) as pool, cache.open("a") as fh:
            for r in pool.map(train_run, jobs):
                print(json.dumps(r), flush=True)
                fh.write(json.dumps(r) + "\n")
                fh.flush()
                done[(r["model"], r["data"], r["seed"])] = r

    if args.timing_from:  # reuse the timing rows a previous run printed (its stdout log)
        timings = [json.loads(x) for x in Path(args.timing_from).read_text().splitlines() if '"snn_ms"' in x]
        load = float(timings[-1].get("load", float("nan")))
    else:
        timings = [time_family(f, args.time_steps, args.batch, args.steps, args.warmup) for f in families]
        load = load_average()[0]
        timings[-1]["load"] = load
    for row in timings:
        print(json.dumps(row), flush=True)

    load_txt = "not recorded" if load != load else f"{load:.1f}"
    busy = load != load or load > 1.0  # unknown or above half of 2 cores: say timings were shared
    lines = [
        *bench.header("Model zoo benchmark (tiny presets, CPU)", seeds=args.seeds, threads=threads),
        f"## Training-step time: SNN at T={args.time_steps} vs the same network as a ReLU ANN on a {args.time_steps}x"
        " larger batch",
        "",
        f"Batch {args.batch} digits-shaped samples [1, 8, 8]; the ANN sees {args.batch * args.time_steps} samples"
        " in one single-step pass (same conv/linear arithmetic, arithmetic lower bound for the SNN)."
        f" Median of {args.steps} alternating steps after {args.warmup} warm-up steps,"
        f" {threads} torch thread{'s' if threads > 1 else ''};"
        f" 1-min load average during timing: {load_txt}"
        + (" (other jobs shared the CPU; absolute ms are inflated, the interleaved ratio less so)." if busy else "."),
        "The SNN runs sltsearch's fused CPU LIF (`sltsearch/models/fused_neurons.py`, same spikes and"
        " gradients as spikingjelly's node); the same SNN with spikingjelly 2.0's own `LIFNode` is timed in the"
        " same loop for comparison. Target: ratio <= 1.5.",
        "",
        "| model | params | SNN step (ms) | SNN, spikingjelly LIF (ms) | ANN step (ms) | ratio | ratio, sj LIF"
        " | <= 1.5 |",
        "|---|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in timings:
        if "ratio" in r:
            ok = "yes" if r["ratio"] <= 1.5 else "no"
            lines.append(
                f"| {r['model']} | {r['params']:,} | {r['snn_ms']:.1f} | {r['snn_sj_ms']:.1f} | {r['ann_ms']:.1f}"
                f" | {r['ratio']:.2f} | {r['ratio_sj']:.2f} | {ok} |"
            )
        else:
            lines.append(
                f"| {r['model']} | {r['params']:,} | {r['snn_ms']:.1f} | {r['snn_sj_ms']:.1f}"
                f" | n/a ({r['ann_error']}) | n/a | n/a | n/a |"
            )
    lines += [
        "",
        "## Dense test accuracy (%) after the default recipe",
        "",
        "`Spec()` defaults: Adam lr 1e-2 cosine, 10 epochs, batch 32, T=4, LIF (tau 2, ATan), direct encoding,"
        " epoch picked on validation; split 60/20/20 (split_seed 0); MNIST-1D: 5,000 generated samples."
        f" Seeds: {', '.join(str(s) for s in range(args.seeds))} (mean ± std over the n seeds that finished).",
        "",
        "| model | digits test | MNIST-1D test | train time per run, digits (s, 1 thread) |",
        "|---|---:|---:|---:|",
    ]
    for f in families:
        cells = []
        for d in DATASETS:
            runs = [done[(f, d, s)] for s in range(args.seeds) if (f, d, s) in done]
            errs = [r["error"] for r in runs if "error" in r]
            accs = [r["test"] for r in runs if "test" in r]
            cells.append(_fmt_acc(accs) if not errs else f"error: {errs[0]}")
        secs = [
            done[(f, "digits", s)]["train_s"] for s in range(args.seeds) if "train_s" in done.get((f, "digits", s), {})
        ]
        cells.append(f"{statistics.mean(secs):.0f}" if secs else "n/a")
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    bench.write(Path(args.out), lines, echo=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
