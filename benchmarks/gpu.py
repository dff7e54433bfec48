"""Every GPU check in one short script: CUDA correctness, paper-size step times, trials sharing one GPU.

A GPU is at hand only some of the time, for minutes, so everything that needs one runs here in one command
(at most ~8 minutes on one GPU) and writes results/benchmarks/gpu.md:

1. **correctness on CUDA**: the tests marked ``cuda`` (tests/test_cuda.py: a dense training step, an IMP round
   with rewinding, pruned weights staying exactly zero, the energy count, MultiSp, export then `evaluate`, a
   2-trial search from the CLI), and the same ticket measured on the CPU and on the GPU (stated tolerances;
   the operation counts of a network whose sums are exact in FP32 must be equal);
2. **speed at paper size** on CIFAR-shaped generated data (nothing downloaded): one training step of the SNN
   (sltsearch's own `train_one_epoch` on one batch: AMP, GradScaler, masks at 50 % re-applied, state reset)
   against the same network as a ReLU ANN on a T x larger batch, for VGG-16, ResNet-19 and Spikformer-4-384;
   images per second and peak GPU memory; with each spikingjelly CUDA neuron implementation that loads here
   (``triton``, the one spikingjelly picks by default when Triton is installed, and ``torch``, its
   reference path and the fallback);
3. **several trials on one GPU**: the same search continued with ``--workers 1``, ``2`` and ``4`` (Optuna
   worker processes sharing the study and the stage cache on one GPU), trials per hour of each.

``--dry-run`` runs the same code paths on the CPU at toy sizes (tests/test_gpu_script.py runs it in CI, so
the script cannot rot between the times a GPU is at hand). Results are written after every part, so a run cut
short still leaves what it measured.

    python benchmarks/gpu.py                  # on a GPU machine: writes results/benchmarks/gpu.md
    python benchmarks/gpu.py --dry-run        # on the CPU: writes $TMPDIR/sltsearch-gpu-dry-run/gpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "benchmarks" / "gpu.md"
# a dry run's report: a scratch file, never the committed GPU report (see `report_path`)
DRY_OUT = Path(tempfile.gettempdir()) / "sltsearch-gpu-dry-run" / "gpu.md"
# paper-size models (presets of the built-in families) and the toy ones of the dry run
MODELS = {
    "vgg16": ("spiking_vgg", "vgg16"),
    "resnet19": ("spiking_resnet", "resnet19"),
    "spikformer": ("spikformer", "cifar"),  # Spikformer-4-384: 4 blocks, 384 dims, 12 heads, 4x4 patches
}
TOY_MODELS = {
    "vgg16": ("spiking_vgg", "tiny"),
    "resnet19": ("spiking_resnet", "tiny"),
    "spikformer": ("spikformer", "tiny"),
}
# spikingjelly 2.0 reads one variable per neuron to force its CUDA implementation; "auto" = its own choice
SJ_IMPLEMENTATIONS = ("auto", "torch")
SJ_VARIABLES = ("SJ_LIF_CUDA_IMPLEMENTATION", "SJ_IF_CUDA_IMPLEMENTATION", "SJ_PLIF_CUDA_IMPLEMENTATION")
GOAL_RATIO, AIM_RATIO, GOAL_SHARING = 1.5, 1.2, 2.5


@dataclass
class Sizes:
    """What one run measures at: paper size on a GPU, toy size for the dry run."""

    image: tuple[int, int, int]
    batch: int
    time_steps: int
    steps: int
    warmup: int
    models: dict[str, tuple[str, str]]
    share_workers: tuple[int, ...]
    share_trials: dict[int, int]
    share_data: dict[str, int]
    share_spec: dict[str, Any]


GPU_SIZES = Sizes(
    image=(3, 32, 32),
    batch=64,
    time_steps=4,
    steps=20,
    warmup=5,
    models=MODELS,
    share_workers=(1, 2, 4),
    share_trials={1: 4, 2: 8, 4: 12},
    share_data={"train": 4000, "val": 1000, "test": 1000},
    share_spec={
        "model": {"name": "spiking_vgg", "preset": "vgg11", "time_steps": 4},
        "train": {"epochs": 4, "lr": 0.001, "optimizer": "adam", "schedule": "cosine"},
        "data": {"batch_size": 64},
    },
)
DRY_SIZES = Sizes(
    image=(3, 16, 16),
    batch=2,
    time_steps=2,
    steps=2,
    warmup=1,
    models=TOY_MODELS,
    share_workers=(1, 2),
    share_trials={1: 1, 2: 2},
    share_data={"train": 120, "val": 40, "test": 40},
    share_spec={
        "model": {"name": "spiking_cnn", "preset": "tiny", "time_steps": 2},
        "train": {"epochs": 2, "lr": 0.01, "optimizer": "adam", "schedule": "cosine"},
        "data": {"batch_size": 32},
    },
)


def log(*parts: Any) -> None:
    print(*parts, flush=True)


# ---------------------------------------------------------------- the machine


def machine(device: str) -> dict[str, str]:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "cpus": str(os.cpu_count()),
        "host": platform.node(),
    }
    for name in ("spikingjelly", "triton", "optuna"):
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = "not installed"
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs"
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            info["driver"] = smi.stdout.strip() or "unknown"
        except (OSError, subprocess.SubprocessError):
            info["driver"] = "unknown (no nvidia-smi)"
    else:
        info["gpu"] = "none (dry run on the CPU)"
    return info


# ---------------------------------------------------------------- part 1: correctness


def correctness(device: str, timeout: float) -> dict[str, Any]:
    """Run the tests marked ``cuda`` on ``device``; their outcome and the figures they recorded."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "cuda.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "cuda",
            "-q",
            "-p",
            "no:cacheprovider",
            str(ROOT / "tests" / "test_cuda.py"),
            "-o",
            "junit_family=legacy",  # keeps the figures the tests record (record_property)
            f"--junitxml={junit}",
        ]
        env = {**os.environ, "SLTSEARCH_TEST_DEVICE": device}
        started = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
            tail = (done.stdout + done.stderr)[-3000:]
        except subprocess.TimeoutExpired as err:
            tail = f"timed out after {timeout:.0f} s\n{(err.stdout or b'')[-2000:]!r}"
        seconds = time.perf_counter() - started
        tests: list[dict[str, Any]] = []
        if junit.exists():
            for case in ET.parse(junit).getroot().iter("testcase"):
                outcome = "passed"
                for child in case:
                    if child.tag in ("failure", "error"):
                        outcome = child.tag
                    elif child.tag == "skipped":
                        outcome = "skipped"
                props = {p.get("name"): p.get("value") for p in case.iter("property")}
                tests.append(
                    {
                        "name": case.get("name"),
                        "outcome": outcome,
                        "properties": props,
                        "seconds": float(case.get("time", 0)),
                    }
                )
    log(tail)
    return {
        "tests": tests,
        "seconds": seconds,
        "tail": tail,
        "command": shlex.join(["SLTSEARCH_TEST_DEVICE=" + device, *command[:-1]]),
    }


# ---------------------------------------------------------------- part 2: step times


def _ann(family_name: str, preset: str, shape: tuple[int, ...], classes: int) -> Any:
    """The same body with ReLU in place of every spiking neuron, single-step (no time loop)."""
    from spikingjelly.activation_based import functional
    from torch import nn

    from sltsearch.models import MODELS as FAMILIES

    family = FAMILIES[family_name]

    class Ann(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = family.build(shape, classes, nn.ReLU, dict(family.presets[preset]))
            functional.set_step_mode(self.body, "s")

        def forward(self, x: Any) -> Any:
            return self.body(x)

        def reset_state(self) -> None:  # train_one_epoch resets state after every step; an ANN has none
            pass

    return Ann()


def time_models(device: str, sizes: Sizes) -> list[dict[str, Any]]:
    """Median step time, images/s and peak memory of every model as SNN and ANN, in this process."""
    import torch
    from loguru import logger

    from sltsearch.models import build_model
    from sltsearch.spec import ModelSpec, TrainSpec
    from sltsearch.tickets import attach_masks, magnitude_prune
    from sltsearch.train import make_optimizer, make_scaler, train_one_epoch

    logger.enable("spikingjelly")  # its CUDA implementation choice ("ops selection ...") goes to stderr
    dev = torch.device(device)
    train = TrainSpec(optimizer="adam", lr=1e-3)
    t, b = sizes.time_steps, sizes.batch
    rows = []
    for key, (family, preset) in sizes.models.items():
        torch.manual_seed(0)
        row: dict[str, Any] = {"model": key, "family": family, "preset": preset}
        variants = {
            "snn": (
                lambda f=family, p=preset: build_model(ModelSpec(name=f, preset=p, time_steps=t), sizes.image, 10),
                b,
            ),
            "ann": (lambda f=family, p=preset: _ann(f, p, sizes.image, 10), t * b),
        }
        for name, (make, batch) in variants.items():
            try:
                model = make().to(dev)
                attach_masks(model, magnitude_prune(model, 0.5, "global"))  # an IMP retraining step: masks on
                row["params"] = sum(p.numel() for p in model.parameters())
                optimizer, scaler = make_optimizer(model, train), make_scaler(dev)
                x = torch.rand(batch, *sizes.image, device=dev)
                y = torch.randint(0, 10, (batch,), device=dev)
                times = []
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                for step in range(sizes.warmup + sizes.steps):
                    started = time.perf_counter()
                    train_one_epoch(model, [(x, y)], optimizer, dev, scaler)  # loss.item() synchronises
                    if step >= sizes.warmup:
                        times.append(time.perf_counter() - started)
                row[f"{name}_ms"] = 1e3 * statistics.median(times)
                row[f"{name}_images_s"] = b / statistics.median(times)  # images of the SNN's batch per second
                row[f"{name}_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None
                del model, optimizer, x, y
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
            except Exception as err:  # one model failing must not hide the others' figures
                row[f"{name}_error"] = f"{type(err).__name__}: {err}"[:300]
        if "snn_ms" in row and "ann_ms" in row:
            row["ratio"] = row["snn_ms"] / row["ann_ms"]
        log(json.dumps(row))
        rows.append(row)
    return rows


def speed(device: str, sizes: Sizes, timeout: float) -> dict[str, list[dict[str, Any]]]:
    """`time_models` once per spikingjelly CUDA implementation, each in a fresh process (spikingjelly reads its
    choice when it is imported). On the CPU there is one path (sltsearch's fused CPU neurons)."""
    implementations = SJ_IMPLEMENTATIONS if device == "cuda" else ("cpu-fused",)
    out: dict[str, list[dict[str, Any]]] = {}
    for impl in implementations:
        env = dict(os.environ)
        for var in SJ_VARIABLES:
            env.pop(var, None)
            if impl not in ("auto", "cpu-fused"):
                env[var] = impl
        code = (
            f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'benchmarks')!r});"
            f" import gpu; rows = gpu.time_models({device!r}, gpu.{'DRY_SIZES' if device == 'cpu' else 'GPU_SIZES'});"
            " print('ROWS ' + json.dumps(rows))"
        )
        try:
            done = subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
            )
            lines = [line for line in done.stdout.splitlines() if line.startswith("ROWS ")]
            if done.returncode != 0 or not lines:
                log(done.stdout[-2000:], done.stderr[-3000:])
                out[impl] = [{"model": "all", "error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}]
                continue
            out[impl] = json.loads(lines[-1][5:])
            log(impl, "spikingjelly selection:", _selections(done.stderr))
            if _selections(done.stderr):
                out[impl][0]["selection"] = _selections(done.stderr)
        except subprocess.TimeoutExpired:
            out[impl] = [{"model": "all", "error": f"timed out after {timeout:.0f} s"}]
    return out


def _selections(stderr: str) -> str:
    """spikingjelly's log lines naming the CUDA implementation it selected (its logger writes to stderr)."""
    picked = sorted(
        {line.split("ops selection", 1)[1].strip()[:160] for line in stderr.splitlines() if "ops selection" in line}
    )
    return "; ".join(picked)


# ---------------------------------------------------------------- part 3: trials sharing a GPU


def _learnable_arrays(path: Path, counts: dict[str, int], shape: tuple[int, int, int], seed: int = 0) -> None:
    """CIFAR-shaped labelled arrays: a fixed random template per class plus noise (learnable, not trivial)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    templates = rng.random((10, *shape), dtype=np.float32)
    arrays = {}
    for split, n in counts.items():
        y = rng.integers(0, 10, n)
        x = 0.5 * templates[y] + 0.5 * rng.random((n, *shape), dtype=np.float32)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x.astype(np.float32), y.astype(np.int64)
    np.savez(path, **arrays)


def _share_spec(sizes: Sizes, data_path: Path, device: str) -> dict[str, Any]:
    return {
        "name": "gpu_share",
        "seed": 0,
        "data": {"name": "arrays", "path": str(data_path), **sizes.share_spec["data"]},
        "model": sizes.share_spec["model"],
        "train": {**sizes.share_spec["train"], "device": device},
        "tickets": {"strategy": "imp", "scope": "global", "rounds": 2},
        "objective": {"energy": {"samples": 256}},
        "search": {"sampler": "random", "n_trials": 1},
        # continuous, so no two trials share a cached IMP round: every trial trains
        "space": {
            "prune_rate": {"type": "float", "low": 0.2, "high": 0.8},
            "rewind_epoch": {"type": "int", "low": 0, "high": 1},
        },
    }


def _trial_times(run_dir: Path) -> dict[int, tuple[float, float]]:
    """Trial number -> (start, complete) timestamps of its finished trials, from the run's Optuna journal."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(run_dir / "study.journal")))
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    return {
        t.number: (t.datetime_start.timestamp(), t.datetime_complete.timestamp())
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    }


def _new_trials(run_dirs: list[Path], before: dict[Path, set[int]]) -> list[tuple[float, float]]:
    """(start, complete) of the trials finished in ``run_dirs`` since ``before`` was taken."""
    return [v for d in run_dirs for n, v in _trial_times(d).items() if n not in before.get(d, set())]


def sharing(device: str, sizes: Sizes, deadline: float, mode: str) -> dict[str, Any]:
    """Trials per hour with K = 1, 2, 4 trials on the GPU at once, over the trials phase (first trial started to
    last trial finished, so process start-up is not counted). A warm-up trial first trains the dense network.

    ``workers``: the warmed run folder continued with ``--workers K`` (Optuna worker processes sharing its study
    and stage cache). ``processes``: K copies of the warmed folder, each continued by its own ``sltsearch run``
    (K independent searches on one GPU; each trains its own trials, so nothing is shared between them)."""
    import shutil

    import yaml

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        _learnable_arrays(tmp_path / "data.npz", sizes.share_data, sizes.image)
        spec = tmp_path / "spec.yaml"
        spec.write_text(yaml.safe_dump(_share_spec(sizes, tmp_path / "data.npz", device)))

        def command(run_dir: Path, trials: int, workers: int | None = None) -> list[str]:
            extra = ["--workers", str(workers)] if workers is not None else []
            return [
                sys.executable,
                "-m",
                "sltsearch",
                "run",
                str(spec),
                "--run-dir",
                str(run_dir),
                "-q",
                "--trials",
                str(trials),
                *extra,
            ]

        warm_dir = tmp_path / "warm"
        started = time.perf_counter()
        warm = subprocess.run(command(warm_dir, 1), cwd=ROOT, capture_output=True, text=True)
        log("warm-up (dense + 1 trial):", f"{time.perf_counter() - started:.1f} s", warm.stderr[-1500:])
        shown = ["sltsearch", "run", "SPEC", *command(Path("RUN"), 0, 0 if mode == "workers" else None)[5:]]
        shown[shown.index("--trials") + 1] = "N"
        if mode == "workers":
            shown[-1] = "K"
        if warm.returncode != 0:
            error = (warm.stderr.strip().splitlines() or ["no output"])[-1][:300]
            return {"rows": [], "error": error, "command": shlex.join(shown), "mode": mode}
        total = 1
        for workers in sizes.share_workers:
            if time.perf_counter() > deadline:
                rows.append({"workers": workers, "error": "skipped: the script's time budget was spent"})
                continue
            if mode == "workers":
                run_dirs = [warm_dir]
                total += sizes.share_trials[workers]
                commands = [command(warm_dir, total, workers)]
            else:
                run_dirs = [tmp_path / f"k{workers}-{i}" for i in range(workers)]
                for run_dir in run_dirs:
                    shutil.copytree(warm_dir, run_dir)
                per = max(1, sizes.share_trials[workers] // workers)
                commands = [command(run_dir, 1 + per) for run_dir in run_dirs]
            before = {d: set(_trial_times(d)) for d in run_dirs}
            started = time.perf_counter()
            procs = [
                subprocess.Popen(c, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for c in commands
            ]
            errors = []
            for proc in procs:  # a hung worker must not eat the GPU's whole lease: the budget bounds the wait
                try:
                    errors.append(proc.communicate(timeout=max(30.0, deadline + 60.0 - time.perf_counter()))[1])
                except subprocess.TimeoutExpired:
                    for other in procs:
                        other.kill()
                    errors.append(f"timed out: the script's time budget was spent\n{proc.communicate()[1]}")
            wall = time.perf_counter() - started
            times = _new_trials(run_dirs, before)
            row: dict[str, Any] = {"workers": workers, "trials": len(times), "wall_s": wall}
            failed = [e for p, e in zip(procs, errors, strict=True) if p.returncode != 0]
            if failed or not times:
                row["error"] = ((failed[0] if failed else errors[0]).strip().splitlines() or ["no output"])[-1][:300]
            else:
                span = max(end for _, end in times) - min(start for start, _ in times)
                row.update(
                    span_s=span,
                    trials_per_hour=3600 * len(times) / span,
                    trial_s=statistics.median(end - start for start, end in times),
                )
            log(json.dumps(row))
            rows.append(row)
    one = next((r for r in rows if r["workers"] == 1 and "trials_per_hour" in r), None)
    for row in rows:
        if one and "trials_per_hour" in row:
            row["vs_1"] = row["trials_per_hour"] / one["trials_per_hour"]
    return {"rows": rows, "command": shlex.join(shown), "mode": mode}


# ---------------------------------------------------------------- the report


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def write_report(out: Path, args: argparse.Namespace, info: dict[str, str], sizes: Sizes, parts: dict[str, Any]) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = (
        "python benchmarks/gpu.py"
        + (" --dry-run" if args.dry_run else "")
        + (f" --out {args.out}" if args.out not in (str(OUT), str(DRY_OUT)) else "")
    )
    lines = [
        "# GPU benchmark: the CUDA path, paper-size step times, trials sharing one GPU"
        + (" (DRY RUN on the CPU)" if args.dry_run else ""),
        "",
        f"Written by `{command}` on {stamp}.",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
    ]
    summary = {"tests": "not run", "ratios": {}, "sharing": None}
    tests = parts.get("correctness")
    if tests is not None:
        cases = tests["tests"]
        passed = sum(c["outcome"] == "passed" for c in cases)
        summary["tests"] = f"{passed}/{len(cases)}"
        lines += [
            "## 1. Correctness on " + ("CUDA" if not args.dry_run else "the CPU (dry run)"),
            "",
            f"`{tests['command']}`: {passed} of {len(cases)} passed in {tests['seconds']:.0f} s.",
            "",
            "| test | outcome | s |",
            "|---|---|---:|",
        ]
        lines += [f"| {c['name']} | {c['outcome']} | {c['seconds']:.1f} |" for c in cases]
        props = {k: v for c in cases for k, v in c["properties"].items()}
        if props:
            lines += [
                "",
                "CPU vs "
                + ("GPU" if not args.dry_run else "CPU (dry run)")
                + ", the same ticket (trained on the device, "
                "re-measured on both in full FP32; tolerances in tests/test_cuda.py: accuracy 0.01 absolute, "
                "energy / ACs / firing rate 1e-3 relative; the operation counts of a network whose sums are exact in "
                "FP32 must be equal):",
                "",
            ]
            lines += [f"- {k}: {v}" for k, v in sorted(props.items())]
        if passed < len(cases) or not cases:
            lines += ["", "Output (last lines):", "", "```", tests["tail"][-2500:], "```"]
        lines.append("")
    timed = parts.get("speed")
    if timed is not None:
        t, b = sizes.time_steps, sizes.batch
        lines += [
            f"## 2. Training-step time at {'paper' if not args.dry_run else 'toy'} size: SNN at T={t}, batch {b}"
            f" vs the same network as a ReLU ANN on batch {t * b}",
            "",
            f"Inputs {list(sizes.image)} (CIFAR-shaped, generated); one step = sltsearch's `train_one_epoch` on one "
            "batch (FP16 autocast + GradScaler on CUDA, Adam, masks at 50 % re-applied after the step, state reset), "
            f"median of {sizes.steps} steps after {sizes.warmup} warm-up steps, each model alone on the GPU. "
            f"images/s counts the SNN's images (batch {b}, {t} steps each). Goal: SNN step <= {GOAL_RATIO}x the ANN "
            f"step (aim {AIM_RATIO}x).",
            "",
            "| spikingjelly CUDA neurons | model | params | SNN step (ms) | ANN step (ms) | SNN/ANN | SNN images/s |"
            " peak GiB SNN / ANN |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for impl, rows in timed.items():
            for row in rows:
                if "snn_ms" not in row:
                    lines.append(
                        f"| {impl} | {row.get('model')} | | | | error: {row.get('snn_error') or row.get('error')} | | |"
                    )
                    continue
                ratio = row.get("ratio")
                if impl in ("auto", "cpu-fused") and ratio is not None:
                    summary["ratios"][row["model"]] = ratio
                peak = f"{_fmt(row.get('snn_peak_gib'), '.2f')} / {_fmt(row.get('ann_peak_gib'), '.2f')}"
                lines.append(
                    f"| {impl} | {row['model']} ({row['family']} {row['preset']}) | {row.get('params', 0):,} |"
                    f" {row['snn_ms']:.2f} | {_fmt(row.get('ann_ms'), '.2f')} | {_fmt(ratio, '.2f')} |"
                    f" {row['snn_images_s']:.0f} | {peak} |"
                )
        selections = [r.get("selection") for rows in timed.values() for r in rows if r.get("selection")]
        lines += [
            "",
            "`auto` = spikingjelly's own choice (native CUDA if built, else Triton, else its torch reference),"
            " which sltsearch uses; `torch` = its reference path, forced by SJ_LIF_CUDA_IMPLEMENTATION=torch.",
        ]
        if selections:
            lines += ["spikingjelly's selection log: " + " | ".join(selections)]
        lines.append("")
    shared = parts.get("sharing")
    if shared is not None:
        model = sizes.share_spec["model"]
        lines += [
            "## 3. Trials sharing one GPU",
            "",
            (
                f"One run folder: a warm-up trial trains the shared dense network, then `{shared['command']}` "
                f"continues the search with K = {', '.join(map(str, sizes.share_workers))} worker processes (Optuna "
                "workers sharing the study and the stage cache) on the one GPU, adding "
                f"{', '.join(str(sizes.share_trials[k]) for k in sizes.share_workers)} trials."
                if shared["mode"] == "workers"
                else "A warm-up trial trains the dense network in one run folder; for K = "
                f"{', '.join(map(str, sizes.share_workers))}, K copies of that folder are continued at once by K "
                f"`{shared['command']}` processes on the one GPU (K independent searches, "
                f"{', '.join(str(max(1, sizes.share_trials[k] // k)) for k in sizes.share_workers)} trials each)."
            )
            + f" Model {model['name']} {model['preset']}, T={model['time_steps']}, "
            f"{sizes.share_data['train']} generated CIFAR-shaped training images, "
            f"{sizes.share_spec['train']['epochs']} epochs, 2 IMP rounds per trial, "
            "continuous prune rate (no shared IMP rounds). Trials per hour over the trials phase (first trial started "
            "to last finished; process start-up not counted). Goal: 4 trials at once "
            f">= {GOAL_SHARING}x the trials per hour of 1.",
            "",
        ]
        if shared.get("error"):
            lines += [f"Warm-up failed: {shared['error']}", ""]
        lines += [
            "| trials at once | trials | trials phase (s) | median trial (s) | trials/hour | vs 1 at once |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for row in shared["rows"]:
            if "trials_per_hour" not in row:
                lines.append(f"| {row['workers']} | {row.get('trials', '')} | | | error: {row.get('error')} | |")
                continue
            lines.append(
                f"| {row['workers']} | {row['trials']} | {row['span_s']:.1f} | {row['trial_s']:.1f} |"
                f" {row['trials_per_hour']:.0f} | {row.get('vs_1', 1.0):.2f}x |"
            )
        most = max((r for r in shared["rows"] if "vs_1" in r), key=lambda r: r["workers"], default=None)
        summary["sharing"] = most
        lines.append("")
    ratios = " ".join(f"{k} {_fmt(summary['ratios'].get(k), '.2f')}x" for k in MODELS)
    most = summary["sharing"]
    share = f"{most['workers']} trials per gpu {most['vs_1']:.2f}x" if most else "trials per gpu not measured"
    line = f"Summary: cuda tests {summary['tests']}; snn/ann {ratios}; {share}" + (
        " (dry run, CPU)" if args.dry_run else ""
    )
    lines += [line, ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(out)
    return line


def report_path(dry_run: bool, out: str | None) -> Path:
    """Where the report goes: ``--out``, else the committed report for a GPU run and a scratch file for a dry run.

    A dry run never writes the committed report: its CPU toy figures would replace the only GPU measurement, and a
    developer who dry-runs and commits would lose it. Raises ValueError when ``--out`` names it anyway."""
    if out is None:
        return DRY_OUT if dry_run else OUT
    path = Path(out)
    if dry_run and path.resolve() == OUT.resolve():
        raise ValueError(
            f"--dry-run writes CPU toy figures and must not replace {OUT.relative_to(ROOT)} (the GPU measurement); "
            "give --out another file, or leave it out (default " + str(DRY_OUT) + ")"
        )
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="the same code paths on the CPU at toy sizes")
    ap.add_argument(
        "--out",
        default=None,
        help=f"the report (default results/benchmarks/gpu.md; with --dry-run {DRY_OUT}, never the committed report)",
    )
    ap.add_argument(
        "--parts", nargs="+", default=["correctness", "speed", "sharing"], choices=["correctness", "speed", "sharing"]
    )
    ap.add_argument(
        "--share-mode",
        choices=["workers", "processes"],
        default="workers",
        help="part 3: one search with --workers K, or K copies of the warmed run folder, one search each",
    )
    ap.add_argument("--budget-s", type=float, default=480.0, help="stop starting new work after this many seconds")
    args = ap.parse_args(argv)
    try:
        out = report_path(args.dry_run, args.out)
    except ValueError as err:
        print(f"gpu.py: {err}", file=sys.stderr)
        return 2
    args.out = str(out)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu.py: no CUDA device here; run with --dry-run on a CPU machine", file=sys.stderr)
        return 2
    device = "cpu" if args.dry_run else "cuda"
    sizes = DRY_SIZES if args.dry_run else GPU_SIZES
    started = time.perf_counter()
    deadline = started + args.budget_s
    info = machine(device)
    log("machine:", json.dumps(info))
    parts: dict[str, Any] = {}
    if "correctness" in args.parts:
        parts["correctness"] = correctness(device, timeout=max(60.0, 0.5 * args.budget_s))
        write_report(out, args, info, sizes, parts)
    if "speed" in args.parts and time.perf_counter() < deadline:
        parts["speed"] = speed(device, sizes, timeout=max(60.0, 0.35 * args.budget_s))
        write_report(out, args, info, sizes, parts)
    if "sharing" in args.parts and time.perf_counter() < deadline:
        parts["sharing"] = sharing(device, sizes, deadline, args.share_mode)
    line = write_report(out, args, info, sizes, parts)
    log(f"wrote {out} in {time.perf_counter() - started:.0f} s")
    log(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
