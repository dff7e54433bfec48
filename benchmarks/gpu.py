"""Every GPU check in one short script: CUDA correctness, step times, what a paper search costs, trials sharing a GPU.

A GPU is at hand only some of the time, for minutes, so everything that needs one runs here in one command
(about 7 minutes on one GPU, ``--budget-s``) and writes results/benchmarks/gpu.md:

1. **correctness on CUDA**: the tests marked ``cuda`` (tests/test_cuda.py: a dense training step, an IMP round
   with rewinding, pruned weights staying exactly zero, the energy count, MultiSp, export then `evaluate`, a
   2-trial search from the CLI), and the same ticket measured on the CPU and on the GPU (stated tolerances;
   the operation counts of a network whose sums are exact in FP32 must be equal);
2. **speed at paper size** on CIFAR-shaped generated data (nothing downloaded): one training step of the SNN
   (sltsearch's own `train_one_epoch` on one batch: AMP, GradScaler, masks at 50 % re-applied, state reset)
   against the same network as a ReLU ANN on a T x larger batch, for VGG-16, ResNet-19 and Spikformer-4-384;
   images per second, peak GPU memory and a torch.profiler table of each step's top kernels; with spikingjelly's
   own choice of CUDA neurons (``--sj-impls auto torch`` adds its torch reference path);
3. **what a paper-scale search costs**: a training, validation and FP32 measurement step of every bundled paper
   space's model at its batch size, a dense epoch and an IMP round over the dataset's size (50,000 CIFAR-10
   images), and the GPU-hours of each space's search with and without the stage cache, on 1 and 4 GPUs, stated
   as a projection (`project_search`);
4. **several trials on one GPU**: the same search continued with K = 1, 2, 4 trials at once through the default
   parallel workers (``--workers K``) and through ``--backend ray --workers K --gpus-per-trial 1/K``, trials per
   hour of each;
5. while the budget lasts, the step of part 2 under ``torch.compile`` (its compile time) and in channels-last.

``--dry-run`` runs the same code paths on the CPU at toy sizes (tests/test_gpu_script.py runs it in CI, so
the script cannot rot between the times a GPU is at hand) and writes a scratch report, never the committed one.
Results are written after every part, so a run cut short still leaves what it measured.

    python benchmarks/gpu.py                  # on a GPU machine: writes results/benchmarks/gpu.md
    python benchmarks/gpu.py --dry-run        # on the CPU: writes $TMPDIR/sltsearch-gpu-dry-run/gpu.md

On a lent GPU machine (no internet; its image has torch and most of the stack, see
/work/.library/device/KINDS.md), the rest travels as wheels listed in benchmarks/gpu_wheels.txt. Here, once:

    echo /.whl/ >> .git/info/exclude
    pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d .whl -r benchmarks/gpu_wheels.txt          # about 11 MB

and the one device command (carry ``.whl``; ``timeout_s`` 540 leaves a rerun within the 15 minutes):

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
        && PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 python3 benchmarks/gpu.py --out $OUT/gpu.md

Ray's wheel (ray 2.60.0, cp312: 75.6 MiB) is over what one call may carry (64 MiB together with the tree): without
Ray there, part 4 reports ``--backend ray`` as not measured. Two calls on one warm machine could bring it (each
carrying half of ``split -n 2`` of the wheel and copying it to a folder the machine keeps, the second joining them
with ``cat``), at the price of a second call inside the 15 minutes.
"""

from __future__ import annotations

import argparse
import json
import math
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import Bench  # noqa: E402  (command, machine, load, git: worded one way for every report)

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
    toy: bool = False
    compile_backend: str = "inductor"


GPU_SIZES = Sizes(
    image=(3, 32, 32),
    batch=64,
    time_steps=4,
    steps=20,
    warmup=5,
    models=MODELS,
    share_workers=(1, 2, 4),
    share_trials={1: 3, 2: 4, 4: 8},  # two rounds of K trials at K = 2 and 4 (run A took 3 minutes with 4, 8, 12)
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
    toy=True,
    compile_backend="eager",  # dynamo's tracing without code generation: the code path in seconds on a CPU
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


def _profile_step(model: Any, step: Any, device: str) -> dict[str, Any]:
    """torch.profiler over 3 steps: the ops with the most own time (ms per step) on the device that ran them."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            step()
        if device == "cuda":
            torch.cuda.synchronize()
    attr = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        value = getattr(event, attr, 0.0) or 0.0
        if value > 0:
            totals[event.key] = value / 3e3
    top = dict(sorted(totals.items(), key=lambda kv: -kv[1])[:8])
    return {"total_ms": sum(totals.values()), "top_ms": top}


def time_models(device: str, sizes: Sizes, variant: str = "eager", profile: bool = False) -> list[dict[str, Any]]:
    """Median step time, images/s and peak memory of every model as SNN and ANN, in this process.

    ``variant``: ``eager``; ``channels_last`` (model and input in channels-last memory format); ``compile``
    (``torch.compile`` of the model's forward; the first steps' time, compilation included, is reported as
    ``compile_s``). ``profile`` adds a torch.profiler table of each step's top ops."""
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
        row: dict[str, Any] = {"model": key, "family": family, "preset": preset, "variant": variant}
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
                x = torch.rand(batch, *sizes.image, device=dev)
                if variant == "channels_last":
                    model = model.to(memory_format=torch.channels_last)
                    x = x.contiguous(memory_format=torch.channels_last)
                if variant == "compile":
                    torch._dynamo.reset()
                    model.forward = torch.compile(model.forward, backend=sizes.compile_backend)
                row["params"] = sum(p.numel() for p in model.parameters())
                optimizer, scaler = make_optimizer(model, train), make_scaler(dev)
                y = torch.randint(0, 10, (batch,), device=dev)

                def step(
                    model: Any = model, optimizer: Any = optimizer, scaler: Any = scaler, x: Any = x, y: Any = y
                ) -> None:
                    train_one_epoch(model, [(x, y)], optimizer, dev, scaler)  # loss.item() synchronises

                times = []
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                started = time.perf_counter()
                for i in range(sizes.warmup + sizes.steps):
                    if i == sizes.warmup and variant == "compile":
                        row[f"{name}_compile_s"] = time.perf_counter() - started
                    begun = time.perf_counter()
                    step()
                    if i >= sizes.warmup:
                        times.append(time.perf_counter() - begun)
                row[f"{name}_ms"] = 1e3 * statistics.median(times)
                row[f"{name}_images_s"] = b / statistics.median(times)  # images of the SNN's batch per second
                row[f"{name}_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None
                if profile:
                    row[f"{name}_profile"] = _profile_step(model, step, dev.type)
                del model, optimizer, x, y, step
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
            except Exception as err:  # one model failing must not hide the others' figures
                row[f"{name}_error"] = f"{type(err).__name__}: {err}"[:300]
        if "snn_ms" in row and "ann_ms" in row:
            row["ratio"] = row["snn_ms"] / row["ann_ms"]
        log(json.dumps(row))
        rows.append(row)
    return rows


def _child(call: str, env: dict[str, str], timeout: float) -> tuple[Any, str]:
    """``gpu.<call>`` in a fresh Python (its own CUDA context and spikingjelly import); its JSON result and stderr."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'benchmarks')!r});"
        f" import gpu; result = gpu.{call}; print('RESULT ' + json.dumps(result))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        log(done.stdout[-2000:], done.stderr[-3000:])
        raise RuntimeError((done.stderr.strip().splitlines() or ["no output"])[-1][:300])
    return json.loads(lines[-1][7:]), done.stderr


def speed(
    device: str,
    sizes: Sizes,
    timeout: float,
    implementations: tuple[str, ...],
    variant: str = "eager",
    profile: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """`time_models` once per spikingjelly CUDA implementation, each in a fresh process (spikingjelly reads its
    choice when it is imported). On the CPU there is one path (sltsearch's fused CPU neurons)."""
    implementations = implementations if device == "cuda" else ("cpu-fused",)
    sizes_name = "DRY_SIZES" if sizes.toy else "GPU_SIZES"
    out: dict[str, list[dict[str, Any]]] = {}
    for impl in implementations:
        env = dict(os.environ)
        for var in SJ_VARIABLES:
            env.pop(var, None)
            if impl not in ("auto", "cpu-fused"):
                env[var] = impl
        try:
            rows, stderr = _child(f"time_models({device!r}, gpu.{sizes_name}, {variant!r}, {profile!r})", env, timeout)
            out[impl] = rows
            log(impl, "spikingjelly selection:", _selections(stderr))
            if _selections(stderr):
                out[impl][0]["selection"] = _selections(stderr)
        except RuntimeError as err:
            out[impl] = [{"model": "all", "error": str(err)}]
        except subprocess.TimeoutExpired:
            out[impl] = [{"model": "all", "error": f"timed out after {timeout:.0f} s"}]
    return out


def _selections(stderr: str) -> str:
    """spikingjelly's log lines naming the CUDA implementation it selected (its logger writes to stderr)."""
    picked = sorted(
        {line.split("ops selection", 1)[1].strip()[:160] for line in stderr.splitlines() if "ops selection" in line}
    )
    return "; ".join(picked)


# ---------------------------------------------------------------- part 3: what a paper-scale search costs

# the paper spaces' datasets: one sample's shape and the split sizes (CIFAR-10: 50,000 training images, of which
# data.val_fraction become the validation split, and 10,000 test images; DVS128 Gesture: 1,176 training and 288
# test samples, event frames [T, 2, size, size] with T = data.options.frames)
PAPER_DATA: dict[str, dict[str, Any]] = {
    "cifar10": {"shape": (3, 32, 32), "train": 50_000, "test": 10_000, "classes": 10, "frames": False},
    "dvs128_gesture": {"shape": (2, 128, 128), "train": 1_176, "test": 288, "classes": 11, "frames": True},
}
TABLE_T = 4  # the cost table's T for the CIFAR models; a space at another T is projected linearly in T
TOY_SIDE = 16


def paper_configs(toy: bool) -> list[dict[str, Any]]:
    """One timing per bundled paper space (search_spaces/paper_*.yaml): its model, recipe and batch size, at
    T = TABLE_T for image data (the space's T for event frames). ``toy``: tiny presets, 16x16, batch 2, T = 2."""
    from sltsearch.spec import ModelSpec, load_spec

    configs = []
    for path in sorted((ROOT / "search_spaces").glob("paper_*.yaml")):
        spec = load_spec(path)
        data = PAPER_DATA[spec.data.name]
        shape = tuple(data["shape"])
        if data["frames"] and "size" in spec.data.options:
            shape = (shape[0], int(spec.data.options["size"]), int(spec.data.options["size"]))
        t = spec.model.time_steps if data["frames"] else TABLE_T
        model, batch = spec.model.model_copy(update={"time_steps": t}), spec.data.batch_size
        if toy:
            t, batch, shape = 2, 2, (shape[0], TOY_SIDE, TOY_SIDE)
            model = ModelSpec(name=spec.model.name, preset="tiny", time_steps=t, neuron=spec.model.neuron)
        configs.append(
            {
                "space": path.stem,
                "path": str(path.relative_to(ROOT)),
                "model": model,
                "label": f"{model.name} {model.preset}" + (" + options" if model.options else ""),
                "shape": shape,
                "classes": data["classes"],
                "frames": data["frames"],
                "time_steps": t,
                "space_time_steps": spec.model.time_steps,
                "batch": batch,
                "train": spec.train,
            }
        )
    return configs


def _median_s(fn: Any, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        fn()  # every step ends in a host read (loss.item(), the accuracy count): the device is done
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def time_paper(device: str, sizes: Sizes) -> list[dict[str, Any]]:
    """Per paper space: a training step (the space's optimizer, AMP on CUDA, masks at 50 %), an evaluation step
    (AMP, the per-epoch validation) and a measurement step (full FP32, a ticket's measurement) at its batch size."""
    import torch

    dev = torch.device(device)
    rows = []
    for cfg in paper_configs(sizes.toy):
        row: dict[str, Any] = {k: cfg[k] for k in ("space", "label", "time_steps", "batch")}
        row["shape"] = list(cfg["shape"])
        try:
            row.update(_time_config(cfg, dev, sizes))
        except Exception as err:  # one space failing must not hide the others' figures
            row["error"] = f"{type(err).__name__}: {err}"[:300]
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        log(json.dumps(row))
        rows.append(row)
    return rows


def _time_config(cfg: dict[str, Any], dev: Any, sizes: Sizes) -> dict[str, Any]:
    import torch

    from sltsearch.models import build_model
    from sltsearch.system.device import full_precision
    from sltsearch.tickets import attach_masks, magnitude_prune
    from sltsearch.train import evaluate, make_optimizer, make_scaler, train_one_epoch

    torch.manual_seed(0)
    model = build_model(cfg["model"], cfg["shape"], cfg["classes"], frames=cfg["frames"]).to(dev)
    attach_masks(model, magnitude_prune(model, 0.5, "global"))
    optimizer, scaler = make_optimizer(model, cfg["train"]), make_scaler(dev)
    sample = ((cfg["time_steps"],) if cfg["frames"] else ()) + tuple(cfg["shape"])
    x = torch.rand(cfg["batch"], *sample, device=dev)
    if cfg["frames"]:
        x = (x > 0.9).float()  # event frames: sparse spike counts
    batch = [(x, torch.randint(0, cfg["classes"], (cfg["batch"],), device=dev))]
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    out: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters())}
    out["train_step_s"] = _median_s(
        lambda: train_one_epoch(model, batch, optimizer, dev, scaler), sizes.warmup, sizes.steps
    )
    out["eval_step_s"] = _median_s(lambda: evaluate(model, batch, dev), sizes.warmup, sizes.steps)
    with full_precision(dev):
        out["measure_step_s"] = _median_s(lambda: evaluate(model, batch, dev, amp=False), sizes.warmup, sizes.steps)
    out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None
    return out


def stage_costs(row: dict[str, Any], spec: Any) -> dict[str, float]:
    """Seconds of one dense epoch, the dense run and the measurement of one ticket, from a `time_paper` row, at the
    space's T (image data timed at TABLE_T are scaled linearly in T)."""
    data = PAPER_DATA[spec.data.name]
    scale = spec.model.time_steps / row["time_steps"]
    batch = row["batch"]  # the space's batch size (the dry run's toy batch)
    val = round(data["train"] * spec.data.val_fraction)
    train = data["train"] - val
    epoch = scale * (math.ceil(train / batch) * row["train_step_s"] + math.ceil(val / batch) * row["eval_step_s"])
    samples = spec.objective.energy.samples
    # a ticket's measurement: validation and test accuracy in FP32, the energy count over `samples` inputs (the
    # count's hooks not included)
    measure = scale * math.ceil((val + data["test"] + samples) / batch) * row["measure_step_s"]
    return {"epoch_s": epoch, "dense_s": spec.train.epochs * epoch, "measure_s": measure, "train_images": train}


def project_search(row: dict[str, Any], gpus: tuple[int, ...] = (4,)) -> dict[str, Any]:
    """The GPU-hours of one paper space's search, projected from its timed steps: ``search.n_trials`` trials drawn
    at random from its space (seed = the spec's seed; NSGA-II's first generation is such a random draw), each
    trial's stages from `sltsearch.trial.stages.trial_keys`. With the stage cache every distinct stage runs once
    (one dense run per dense key, one retraining per distinct IMP round, which nested rounds share); without it
    every trial trains its own dense network and all its rounds. An IMP round retrains from its rewind epoch to
    the last epoch and measures its ticket. K GPUs (one trial each, e.g. ``--backend ray --gpus-per-trial 1``):
    at best the total over K, never less than the longest chain of stages that wait for each other."""
    import optuna

    from sltsearch.search.space import to_distributions
    from sltsearch.spec import load_spec
    from sltsearch.trial import stages

    spec = load_spec(ROOT / "search_spaces" / f"{row['space']}.yaml")
    cost = stage_costs(row, spec)
    epochs = spec.train.epochs
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=spec.seed))
    distributions = to_distributions(spec.space)
    dense_runs: dict[str, float] = {}
    rounds: dict[str, float] = {}
    round_epochs: dict[str, int] = {}
    uncached, uncached_epochs, chains, n_rounds = 0.0, 0, [], []
    for _ in range(spec.search.n_trials):
        tspec = spec.with_params(study.ask(distributions).params)
        keys = stages.trial_keys(tspec)
        round_s = (epochs - tspec.tickets.rewind_epoch) * cost["epoch_s"] + cost["measure_s"]
        trial_rounds = list(keys["rounds"]) + list(keys["controls"].values())
        dense_runs[keys["dense"]] = cost["dense_s"]
        for key in trial_rounds:
            rounds[key] = round_s
            round_epochs[key] = epochs - tspec.tickets.rewind_epoch
        chain = len(trial_rounds) * round_s
        uncached += cost["dense_s"] + chain
        uncached_epochs += epochs + len(trial_rounds) * (epochs - tspec.tickets.rewind_epoch)
        chains.append(cost["dense_s"] + chain)  # the dense run, then this trial's rounds one after another
        n_rounds.append(len(trial_rounds))
    cached = sum(dense_runs.values()) + sum(rounds.values())
    out = {
        "space": row["space"],
        "trials": spec.search.n_trials,
        "time_steps": spec.model.time_steps,
        "epochs": epochs,
        "rounds_per_trial": f"{min(n_rounds)}-{max(n_rounds)}" if min(n_rounds) != max(n_rounds) else str(n_rounds[0]),
        "dense_runs": len(dense_runs),
        "rounds": sum(n_rounds),
        "distinct_rounds": len(rounds),
        "uncached_h": uncached / 3600,
        "cached_h": cached / 3600,
        # device-independent: training epochs run (dense runs and IMP retraining), with and without the cache
        "uncached_epochs": uncached_epochs,
        "cached_epochs": len(dense_runs) * epochs + sum(round_epochs.values()),
        **{k: v for k, v in cost.items() if k != "train_images"},
    }
    for k in gpus:
        out[f"cached_h_{k}gpu"] = max(max(chains), cached / k) / 3600
        out[f"uncached_h_{k}gpu"] = max(max(chains), uncached / k) / 3600
    return out


def paper(device: str, sizes: Sizes, timeout: float) -> dict[str, Any]:
    """`time_paper` in a fresh process (its GPU memory freed before the next part), then the projections."""
    try:
        rows, _ = _child(
            f"time_paper({device!r}, gpu.{'DRY_SIZES' if sizes.toy else 'GPU_SIZES'})", dict(os.environ), timeout
        )
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        return {"rows": [], "projections": [], "error": str(err)[:300]}
    projections = []
    for row in rows:
        if "error" in row:
            continue
        try:
            projections.append(project_search(row))
        except Exception as err:  # a projection failing must not hide the timings
            projections.append({"space": row["space"], "error": f"{type(err).__name__}: {err}"[:300]})
    return {"rows": rows, "projections": projections}


# ---------------------------------------------------------------- part 4: trials sharing a GPU


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


def _ray_missing() -> str | None:
    """Why ``--backend ray`` cannot run here (None when it can)."""
    try:
        import ray  # noqa: F401
    except ImportError as err:
        return f"Ray is not installed here ({err}); carry its wheel to measure --backend ray"
    return None


def sharing(device: str, sizes: Sizes, deadline: float, modes: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Trials per hour with K = 1, 2, 4 trials on the GPU at once, over the trials phase (first trial started to
    last trial finished, so process start-up is not counted). A warm-up trial first trains the dense network; every
    mode starts from its own copy of that run folder.

    ``workers``: the folder continued with ``--workers K`` (the default parallel workers: Optuna worker processes
    sharing its study and stage cache). ``ray``: continued with ``--backend ray --workers K --gpus-per-trial 1/K``
    (Ray Tune trials, K sharing the one GPU). ``processes``: K copies of the folder, each continued by its own
    ``sltsearch run`` (K independent searches on one GPU; nothing shared between them)."""
    import shutil

    import yaml

    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        _learnable_arrays(tmp_path / "data.npz", sizes.share_data, sizes.image)
        spec = tmp_path / "spec.yaml"
        spec.write_text(yaml.safe_dump(_share_spec(sizes, tmp_path / "data.npz", device)))

        def command(run_dir: Path, trials: int, workers: int | None = None, ray: bool = False) -> list[str]:
            extra = ["--workers", str(workers)] if workers is not None else []
            if ray:
                extra += ["--backend", "ray", "--gpus-per-trial", f"{1 / (workers or 1):g}"]
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
        for mode in modes:
            shown = [
                "sltsearch",
                "run",
                "SPEC",
                *command(Path("RUN"), 0, 0 if mode != "processes" else None, ray=mode == "ray")[5:],
            ]
            shown[shown.index("--trials") + 1] = "N"
            if mode != "processes":
                shown[shown.index("--workers") + 1] = "K"
            if mode == "ray":
                shown[shown.index("--gpus-per-trial") + 1] = "1/K"
            result: dict[str, Any] = {"rows": [], "command": shlex.join(shown), "mode": mode}
            out[mode] = result
            if warm.returncode != 0:
                result["error"] = "warm-up failed: " + (warm.stderr.strip().splitlines() or ["no output"])[-1][:300]
                continue
            if mode == "ray" and _ray_missing():
                result["error"] = _ray_missing()
                continue
            mode_dir = tmp_path / mode
            shutil.copytree(warm_dir, mode_dir)
            total = 1
            for workers in sizes.share_workers:
                if time.perf_counter() > deadline:
                    result["rows"].append({"workers": workers, "error": "skipped: the script's time budget was spent"})
                    continue
                if mode == "processes":
                    run_dirs = [tmp_path / f"{mode}-k{workers}-{i}" for i in range(workers)]
                    for run_dir in run_dirs:
                        shutil.copytree(warm_dir, run_dir)
                    per = max(1, sizes.share_trials[workers] // workers)
                    commands = [command(run_dir, 1 + per) for run_dir in run_dirs]
                else:
                    run_dirs = [mode_dir]
                    total += sizes.share_trials[workers]
                    commands = [command(mode_dir, total, workers, ray=mode == "ray")]
                result["rows"].append(_share_round(run_dirs, commands, workers, deadline))
            one = next((r for r in result["rows"] if r["workers"] == 1 and "trials_per_hour" in r), None)
            for row in result["rows"]:
                if one and "trials_per_hour" in row:
                    row["vs_1"] = row["trials_per_hour"] / one["trials_per_hour"]
    return out


def _share_round(run_dirs: list[Path], commands: list[list[str]], workers: int, deadline: float) -> dict[str, Any]:
    """Run ``commands`` at once; the trials they finished in ``run_dirs`` and the trials per hour."""
    before = {d: set(_trial_times(d)) for d in run_dirs}
    started = time.perf_counter()
    procs = [
        subprocess.Popen(c, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands
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
    return row


# ---------------------------------------------------------------- the report


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def write_report(out: Path, args: argparse.Namespace, info: dict[str, str], sizes: Sizes, parts: dict[str, Any]) -> str:
    bench: Bench = getattr(args, "bench", None) or Bench()
    lines = bench.header(
        "GPU benchmark: the CUDA path, paper-size step times, what a paper search costs, trials sharing one GPU"
        + (" (DRY RUN on the CPU)" if args.dry_run else ""),
        notes=["Software and devices: " + "; ".join(f"{k} {v}" for k, v in info.items()) + "."],
    )
    summary: dict[str, Any] = {"tests": "not run", "ratios": {}, "sharing": {}}
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
        lines += _speed_section(timed, sizes, args, summary)
    costs = parts.get("paper")
    if costs is not None:
        lines += _paper_section(costs, sizes, args, summary)
    for mode, shared in parts.get("sharing", {}).items():
        lines += _sharing_section(shared, sizes, mode, summary)
    for variant, rows in parts.get("variants", {}).items():
        lines += _variant_section(variant, rows, sizes)
    ratios = " ".join(f"{k} {_fmt(summary['ratios'].get(k), '.2f')}x" for k in MODELS)
    most = summary["sharing"].get("workers")
    share = f"{most['workers']} trials per gpu {most['vs_1']:.2f}x (workers)" if most else "trials per gpu not measured"
    hours = summary.get("paper_h")
    search = f"paper search {hours:.0f} gpu-hours" if hours is not None else "paper search not measured"
    line = f"Summary: cuda tests {summary['tests']}; snn/ann {ratios}; {share}; {search}" + (
        " (dry run, CPU)" if args.dry_run else ""
    )
    lines += [line, ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(out)
    return line


def _speed_section(timed: dict[str, Any], sizes: Sizes, args: argparse.Namespace, summary: dict[str, Any]) -> list[str]:
    t, b = sizes.time_steps, sizes.batch
    lines = [
        f"## 2. Training-step time at {'paper' if not args.dry_run else 'toy'} size: SNN at T={t}, batch {b}"
        f" vs the same network as a ReLU ANN on batch {t * b}",
        "",
        f"Inputs {list(sizes.image)} (CIFAR-shaped, generated); one step = sltsearch's `train_one_epoch` on one "
        "batch (FP16 autocast + GradScaler on CUDA, Adam, masks at 50 % re-applied after the step, state reset), "
        f"median of {sizes.steps} steps after {sizes.warmup} warm-up steps, each model alone on the device. "
        f"images/s counts the SNN's images (batch {b}, {t} steps each). Goal: SNN step <= {GOAL_RATIO}x the ANN "
        f"step (aim {AIM_RATIO}x).",
        "",
        "| spikingjelly CUDA neurons | model | params | SNN step (ms) | ANN step (ms) | SNN/ANN | SNN images/s |"
        " peak GiB SNN / ANN |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    profiles = []
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
            for net in ("snn", "ann"):
                if f"{net}_profile" in row:
                    prof = row[f"{net}_profile"]
                    top = ", ".join(f"{k} {v:.2f}" for k, v in prof["top_ms"].items())
                    profiles.append(
                        f"- {impl} {row['model']} {net} ({prof['total_ms']:.1f} ms of own "
                        f"{'GPU' if not args.dry_run else 'CPU'} time per step): {top}"
                    )
    selections = [r.get("selection") for rows in timed.values() for r in rows if r.get("selection")]
    lines += [
        "",
        "`auto` = spikingjelly's own choice (native CUDA if built, else Triton, else its torch reference),"
        " which sltsearch uses; `torch` = its reference path, forced by SJ_LIF_CUDA_IMPLEMENTATION=torch.",
    ]
    if selections:
        lines += ["spikingjelly's selection log: " + " | ".join(selections)]
    if profiles:
        lines += [
            "",
            "torch.profiler, 3 steps: the ops with the most own time, ms per step "
            f"({'kernels on the GPU' if not args.dry_run else 'CPU'}):",
            "",
            *profiles,
        ]
    lines.append("")
    return lines


def _paper_section(costs: dict[str, Any], sizes: Sizes, args: argparse.Namespace, summary: dict[str, Any]) -> list[str]:
    where = "this GPU" if not args.dry_run else "the CPU at toy sizes (DRY RUN: the hours mean nothing)"
    hours = "GPU-hours" if not args.dry_run else "CPU-hours (toy)"
    lines = [
        "## 3. What a paper-scale search costs (a projection)",
        "",
        f"Timed on {where}: for every bundled paper space (`search_spaces/paper_*.yaml`) its model, optimizer and "
        f"batch size, on generated inputs of its dataset's shape (image data at T = {TABLE_T if not sizes.toy else 2},"
        " event frames at the space's T), masks at 50 %: a training step (`train_one_epoch`, AMP on CUDA), an "
        "evaluation step (AMP, the per-epoch validation) and a measurement step (full FP32), medians of "
        f"{sizes.steps} steps after {sizes.warmup} warm-up steps. A dense epoch = the training split (CIFAR-10: "
        "50,000 images less the space's validation fraction; DVS128 Gesture: 1,176 samples less it) in steps of the "
        "batch plus the validation split; an IMP round = retraining from the rewind epoch to the last epoch plus "
        "measuring its ticket (validation and test accuracy in FP32 and the energy count over `objective.energy."
        "samples`, the count's hooks not included). Data loading is not included (CIFAR-10 is in memory).",
        "",
    ]
    if costs.get("error"):
        lines += [f"Error: {costs['error']}", ""]
    lines += [
        "| space | model | T timed | batch | params | train step (ms) | eval step (ms) | FP32 step (ms) | "
        "dense epoch (s) | one IMP round at rewind 0 (h) | peak GiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    projections = {p["space"]: p for p in costs.get("projections", [])}
    for row in costs.get("rows", []):
        if "error" in row:
            lines.append(
                f"| {row['space']} | {row['label']} | {row['time_steps']} | {row['batch']} | | error: "
                f"{row['error']} | | | | | |"
            )
            continue
        proj = projections.get(row["space"], {})
        scale = row["time_steps"] / proj.get("time_steps", row["time_steps"])  # back to the timed T
        epoch = proj.get("epoch_s")
        round_h = (proj["epochs"] * epoch + proj["measure_s"]) / 3600 * scale if epoch is not None else None
        lines.append(
            f"| {row['space']} | {row['label']} | {row['time_steps']} | {row['batch']} | {row.get('params', 0):,} | "
            f"{1e3 * row['train_step_s']:.1f} | {1e3 * row['eval_step_s']:.1f} | {1e3 * row['measure_step_s']:.1f} | "
            f"{_fmt(epoch * scale if epoch is not None else None, '.0f')} | {_fmt(round_h, '.2f')} | "
            f"{_fmt(row.get('peak_gib'), '.2f')} |"
        )
    lines += [
        "",
        "Each space's search, projected at its own T (image data: the step times above scaled by T / "
        f"{TABLE_T if not sizes.toy else 2}): `search.n_trials` trials drawn at random from the space (its seed; "
        "NSGA-II's first generation is such a draw), each trial's stages from `stages.trial_keys`. With the stage "
        "cache every distinct stage runs once (one dense run, the nested IMP rounds shared by trials with the same "
        "rewind point and prune rate); without it every trial trains its own dense network and all its rounds. "
        "4 GPUs = one trial per GPU (`--backend ray --workers 4 --gpus-per-trial 1`): the total over 4, but never "
        "less than the longest chain (the dense run, then one trial's rounds one after another), so a lower bound.",
        "",
        "| space | T | epochs | trials | rounds per trial | dense runs with / without the cache | IMP rounds run / "
        "drawn | training "
        f"epochs with / without the cache | {hours} with the cache | without | saved | hours on 4 "
        f"{'GPUs' if not args.dry_run else 'workers'} with / without |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total = 0.0
    for proj in costs.get("projections", []):
        if "error" in proj:
            lines.append(f"| {proj['space']} | | | | | | | | error: {proj['error']} | | | |")
            continue
        total += proj["cached_h"]
        saved = 1 - proj["cached_h"] / proj["uncached_h"] if proj["uncached_h"] else 0.0
        lines.append(
            f"| {proj['space']} | {proj['time_steps']} | {proj['epochs']} | {proj['trials']} | "
            f"{proj['rounds_per_trial']} | {proj['dense_runs']} / {proj['trials']} | {proj['distinct_rounds']} / "
            f"{proj['rounds']} | "
            f"{proj['cached_epochs']:,} / {proj['uncached_epochs']:,} | {proj['cached_h']:.1f} | "
            f"{proj['uncached_h']:.1f} | {100 * saved:.0f} % | "
            f"{proj['cached_h_4gpu']:.1f} / {proj['uncached_h_4gpu']:.1f} |"
        )
    if costs.get("projections"):
        summary["paper_h"] = total
        lines += [
            "",
            f"All {len(costs['projections'])} paper spaces' searches with the cache: {total:.1f} {hours} "
            "on one device (the Summary line's `paper search`).",
        ]
    lines.append("")
    return lines


def _sharing_section(shared: dict[str, Any], sizes: Sizes, mode: str, summary: dict[str, Any]) -> list[str]:
    model = sizes.share_spec["model"]
    ks = ", ".join(map(str, sizes.share_workers))
    added = ", ".join(str(sizes.share_trials[k]) for k in sizes.share_workers)
    how = {
        "workers": f"continues the search with K = {ks} worker processes (the default parallel workers: Optuna "
        f"workers sharing the study and the stage cache) on the one GPU, adding {added} trials",
        "ray": f"continues the search on a local Ray with K = {ks} trials at once, each reserving 1/K of the GPU, "
        f"adding {added} trials",
        "processes": f"is copied K times for K = {ks}, each copy continued at once by its own process on the one GPU "
        f"(K independent searches, {', '.join(str(max(1, sizes.share_trials[k] // k)) for k in sizes.share_workers)}"
        " trials each)",
    }[mode]
    lines = [
        f"## 4. Trials sharing one GPU: {mode}",
        "",
        f"One run folder: a warm-up trial trains the shared dense network, then `{shared['command']}` {how}. Model "
        f"{model['name']} {model['preset']}, T={model['time_steps']}, {sizes.share_data['train']} generated "
        f"CIFAR-shaped training images, {sizes.share_spec['train']['epochs']} epochs, 2 IMP rounds per trial, "
        "continuous prune rate (no shared IMP rounds). Trials per hour over the trials phase (first trial started "
        f"to last finished; process start-up not counted). Goal: 4 trials at once >= {GOAL_SHARING}x the trials per "
        "hour of 1.",
        "",
    ]
    if shared.get("error"):
        lines += [f"Not measured: {shared['error']}", ""]
        return lines
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
    summary["sharing"][mode] = max((r for r in shared["rows"] if "vs_1" in r), key=lambda r: r["workers"], default=None)
    lines.append("")
    return lines


def _variant_section(variant: str, timed: dict[str, Any], sizes: Sizes) -> list[str]:
    what = {
        "channels_last": "model and input in channels-last memory format",
        "compile": f"`torch.compile` of the model's forward (backend {sizes.compile_backend}); compile s = the "
        "warm-up steps, compilation included",
    }.get(variant, variant)
    lines = [
        f"## 5. Variant: {variant} ({what})",
        "",
        "The step of section 2 again, eager rows there for comparison.",
        "",
        "| model | SNN step (ms) | ANN step (ms) | SNN/ANN | compile s SNN / ANN |",
        "|---|---:|---:|---:|---:|",
    ]
    for rows in timed.values():
        for row in rows:
            if "snn_ms" not in row:
                lines.append(f"| {row.get('model')} | error: {row.get('snn_error') or row.get('error')} | | | |")
                continue
            comp = (
                f"{_fmt(row.get('snn_compile_s'))} / {_fmt(row.get('ann_compile_s'))}" if variant == "compile" else ""
            )
            lines.append(
                f"| {row['model']} | {row['snn_ms']:.2f} | {_fmt(row.get('ann_ms'), '.2f')} | "
                f"{_fmt(row.get('ratio'), '.2f')} | {comp} |"
            )
    lines.append("")
    return lines


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
    parts = ["correctness", "speed", "paper", "sharing", "variants"]
    ap.add_argument(
        "--parts", nargs="+", default=parts, choices=parts, help="what to run (default: all, in this order)"
    )
    ap.add_argument(
        "--share-modes",
        nargs="+",
        choices=["workers", "ray", "processes"],
        default=["workers", "ray"],
        help="part 4: one search with --workers K; with --backend ray --workers K --gpus-per-trial 1/K; or K copies of "
        "the warmed run folder, one search each",
    )
    ap.add_argument(
        "--sj-impls",
        nargs="+",
        default=["auto"],
        choices=list(SJ_IMPLEMENTATIONS),
        help="part 2: spikingjelly's CUDA neuron implementations to time (torch = its reference path)",
    )
    ap.add_argument(
        "--variants",
        nargs="*",
        default=["compile", "channels_last"],
        choices=["compile", "channels_last"],
        help="part 5, last and only while the budget lasts: the step of part 2 compiled / channels-last",
    )
    ap.add_argument("--no-profile", action="store_true", help="part 2 without its torch.profiler tables")
    ap.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="stop starting new work after this many seconds (default 420 on a GPU: the lease is short; 1500 for a "
        "dry run, which no lease bounds)",
    )
    args = ap.parse_args(argv)
    args.bench = Bench(["benchmarks/gpu.py", *(sys.argv[1:] if argv is None else argv)])
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
    if args.budget_s is None:
        args.budget_s = 1500.0 if args.dry_run else 420.0
    started = time.perf_counter()
    deadline = started + args.budget_s
    info = machine(device)
    log("machine:", json.dumps(info))
    parts: dict[str, Any] = {}

    def left() -> float:
        return deadline - time.perf_counter()

    if "correctness" in args.parts:
        parts["correctness"] = correctness(device, timeout=max(60.0, 0.5 * args.budget_s))
        write_report(out, args, info, sizes, parts)
    if "speed" in args.parts and left() > 0:
        impls = tuple(args.sj_impls)
        parts["speed"] = speed(device, sizes, max(60.0, 0.4 * args.budget_s), impls, profile=not args.no_profile)
        write_report(out, args, info, sizes, parts)
    if "paper" in args.parts and left() > 0:
        parts["paper"] = paper(device, sizes, timeout=max(60.0, 0.25 * args.budget_s))
        write_report(out, args, info, sizes, parts)
    if "sharing" in args.parts and left() > 0:
        parts["sharing"] = sharing(device, sizes, deadline, tuple(args.share_modes))
        write_report(out, args, info, sizes, parts)
    if "variants" in args.parts:
        parts["variants"] = {}
        for variant in args.variants:
            if left() < 30:
                log(f"variant {variant} skipped: the script's time budget was spent")
                continue
            parts["variants"][variant] = speed(device, sizes, max(30.0, left()), ("auto",), variant)
            write_report(out, args, info, sizes, parts)
    line = write_report(out, args, info, sizes, parts)
    log(f"wrote {out} in {time.perf_counter() - started:.0f} s")
    log(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
