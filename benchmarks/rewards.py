"""The paper's two "sparse rewards" at CPU scale (issue 23): spiking lottery tickets against the tickets of the
same network as an ANN (its twin, ``model.neuron.type: relu``: ReLU for every neuron, run once).

Reward 1 (CNN-based SNNs): at high sparsity, spiking tickets keep more of their dense accuracy than the ANN
twin's tickets. Reward 2 (spiking transformers): at the same multi-level sparsity (Spikformer + MultiSp: half
the patches dropped, ConvPEP pruned to 90 % and binarized, binary ConvPEP activations, the other layers on the
IMP schedule), spiking tickets lose less than ANN ones. Besides: each ticket's energy (45 nm, E_MAC 4.6 pJ,
E_AC 0.9 pJ; the twin's every synaptic operation a MAC) and the ratio SNN ticket / ANN dense.

Protocol, the same for both networks of a task: one trial per (task, network, seed) of `run_trial` with IMP
(global magnitude, rewinding to epoch ``--rewind``) over the per-round rates ``RATES``, stepped so that the
rounds land on the sparsity levels 50, 80, 90, 95 and 98 % (no one-shot pruning; every round's prefix is a
cached stage, so a rerun or a longer schedule trains nothing twice). Same split, seeds, recipe (adam, lr 1e-2,
cosine, batch 32) and selection rule: the epoch of every training run is chosen on validation accuracy, test
accuracy is only reported. Drops are paired per seed: dense test accuracy minus the ticket's.

Stages are cached under results/benchmarks/rewards_cache, so a rerun only computes what is missing.

    .venv/bin/python benchmarks/rewards.py                                  # -> results/benchmarks/rewards.md
    .venv/bin/python benchmarks/rewards.py --seeds 0 --tasks cnn-digits --epochs 2 --out /tmp/r.md   # smoke
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import Bench, load_now  # noqa: E402

from sltsearch.results.record import Ticket  # noqa: E402
from sltsearch.spec import parse_spec  # noqa: E402
from sltsearch.trial import TrialContext, run_trial  # noqa: E402
from sltsearch.trial.cache import StageCache  # noqa: E402

OUT = ROOT / "results" / "benchmarks"
RATES = [0.5, 0.6, 0.5, 0.5, 0.6]  # cumulative sparsity 0.5, 0.8, 0.9, 0.95, 0.98
LEVELS = [0.0, 0.5, 0.8, 0.9, 0.95, 0.98]
HIGH = [0.9, 0.95, 0.98]  # "high sparsity": where the rewards are judged
# MultiSp, all three levels (the recipe of results/benchmarks/multisp.md)
MULTISP = {
    "patch_keep": 0.5,
    "pep_sparsity": 0.9,
    "pep_binary_weights": True,
    "pep_binary_activations": True,
    "pep_first_conv": "real",
}


@dataclass(frozen=True)
class Network:
    """One side of a comparison: the neuron type and model options that make it."""

    name: str
    neuron: str
    options: dict[str, Any] = field(default_factory=dict)


SNN = Network("snn", "lif")
ANN = Network("ann", "relu")
# the Spikformer twin with ordinary attention: softmax(QK^T / sqrt(d)) V instead of SSA's constant scale
ANN_SOFTMAX = Network("ann-softmax", "relu", {"attention": "softmax"})


@dataclass(frozen=True)
class Task:
    name: str
    reward: int
    data: dict[str, Any]
    model: dict[str, Any]
    epochs: int
    networks: tuple[Network, ...]
    multisp: dict[str, Any] = field(default_factory=dict)


TASKS = {
    t.name: t
    for t in (
        Task("cnn-digits", 1, {"name": "digits"}, {"name": "spiking_cnn", "preset": "tiny"}, 6, (SNN, ANN)),
        Task("cnn-mnist1d", 1, {"name": "mnist1d"}, {"name": "spiking_cnn", "preset": "base"}, 10, (SNN, ANN)),
        Task(
            "spikformer-digits", 2, {"name": "digits"}, {"name": "spikformer", "preset": "tiny"}, 8,
            (SNN, ANN, ANN_SOFTMAX), MULTISP,
        ),
        Task(
            "spikformer-mnist1d", 2, {"name": "mnist1d"}, {"name": "spikformer", "preset": "tiny"}, 8,
            (SNN, ANN, ANN_SOFTMAX), MULTISP,
        ),
    )
}


def spec_for(task: Task, net: Network, seed: int, args: argparse.Namespace, real_inputs: str = "all") -> Any:
    model = {**task.model, "time_steps": args.time_steps, "neuron": {"type": net.neuron}, "options": net.options}
    return parse_spec(
        {
            "name": "rewards",
            "seed": seed,
            "data": task.data,
            "model": model,
            "train": {"epochs": args.epochs or task.epochs},
            "tickets": {"prune_rates": RATES, "rewind_epoch": args.rewind},
            "multisp": task.multisp,
            "objective": {"energy": {"samples": 256, "real_inputs": real_inputs}},
        }
    )


def run_one(
    task: Task, net: Network, seed: int, args: argparse.Namespace, cache: StageCache, trained: list[int]
) -> list[dict]:
    """The dense ticket and the five IMP rounds of one trial, with the energy also under ``real_inputs:
    nonzero`` (the stages are cached by then: only the measurement runs again)."""
    rows = []
    t0 = time.perf_counter()
    main = run_trial(spec_for(task, net, seed, args), {}, TrialContext(cache=cache))
    variant = run_trial(spec_for(task, net, seed, args, "nonzero"), {}, TrialContext(cache=cache))
    nonzero = {t.round: t.energy_uj for t in variant if t.kind in ("dense", "imp")}
    for t in main:
        if t.kind in ("dense", "imp"):
            rows.append(_row(task, net, seed, t, nonzero[t.round]))
            trained[0 if t.cached else 1] += 1
    print(f"{task.name} {net.name} seed {seed}: {time.perf_counter() - t0:.0f} s "
          f"(dense test {100 * rows[0]['test']:.1f} %)", flush=True)
    return rows


def _row(task: Task, net: Network, seed: int, t: Ticket, energy_nonzero: float) -> dict:
    return {
        "task": task.name,
        "network": net.name,
        "seed": seed,
        "round": t.round,
        "sparsity": t.sparsity,
        "val": t.val_accuracy,
        "test": t.test_accuracy,
        "energy": t.energy_uj,
        "energy_nonzero": energy_nonzero,
        "macs": t.macs,
        "acs": t.acs,
        "rate": t.firing_rate,
        "pep_sparsity": t.pep_sparsity,
    }


def _ms(values: list[float], scale: float = 100.0, fmt: str = ".1f") -> str:
    mean = statistics.mean(values) * scale
    sd = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:{fmt}} ± {sd:{fmt}}"


def _by(rows: list[dict], **match: Any) -> list[dict]:
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def drops(rows: list[dict], task: str, net: str, round_: int) -> list[float]:
    """Per seed: dense test accuracy minus the round's (positive = accuracy lost)."""
    out = []
    for r in _by(rows, task=task, network=net, round=round_):
        dense = _by(rows, task=task, network=net, round=0, seed=r["seed"])[0]
        out.append(dense["test"] - r["test"])
    return out


def energy_ratios(rows: list[dict], task: str, net: str, round_: int, column: str = "energy") -> list[float]:
    """Per seed: the ticket's energy over the ANN twin's dense energy (same seed)."""
    out = []
    for r in _by(rows, task=task, network=net, round=round_):
        dense = _by(rows, task=task, network="ann", round=0, seed=r["seed"])
        if dense:
            out.append(r[column] / dense[0][column])
    return out


def verdict(rows: list[dict], task: Task, other: str = "ann") -> tuple[bool, list[str]]:
    """Held when the SNN's mean drop is smaller than ``other``'s at every high-sparsity level (``HIGH``)."""
    held, notes = True, []
    for round_, level in enumerate(LEVELS):
        if level not in HIGH or not _by(rows, task=task.name, network="snn", round=round_):
            continue
        snn = statistics.mean(drops(rows, task.name, "snn", round_))
        ann = statistics.mean(drops(rows, task.name, other, round_))
        paired = [a - s for s, a in zip(drops(rows, task.name, "snn", round_),
                                        drops(rows, task.name, other, round_), strict=True)]
        spread = statistics.stdev(paired) if len(paired) > 1 else 0.0
        ok = snn < ann
        held = held and ok
        beyond = abs(statistics.mean(paired)) > spread
        notes.append(
            f"{100 * level:.0f} %: drop snn {100 * snn:.1f} pt vs {other} {100 * ann:.1f} pt "
            f"({'snn smaller' if ok else 'snn not smaller'}; paired difference {100 * statistics.mean(paired):+.1f}"
            f" ± {100 * spread:.1f} pt, {'beyond' if beyond else 'within'} its seed spread)"
        )
    return held, notes


def _pt(drops_: list[float]) -> str:
    """The mean of per-task drops in points, one decimal, never "-0.0"."""
    if not drops_:
        return "nan"
    text = f"{100 * statistics.mean(drops_):.1f}"
    return "0.0" if text == "-0.0" else text


def task_table(rows: list[dict], task: Task) -> list[str]:
    nets = [n.name for n in task.networks if _by(rows, task=task.name, network=n.name)]
    head = ["level", "weight sparsity %"]
    for n in nets:
        head += [f"{n} test %", f"{n} drop pt"]
    head += [f"{n} energy µJ" for n in nets]
    head += [f"{n} / ann dense energy" for n in nets if n != "ann"]
    head += ["snn / ann dense, nonzero variant", "firing rate snn / density ann"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for round_, level in enumerate(LEVELS):
        if not _by(rows, task=task.name, network=nets[0], round=round_):
            continue
        cells = [f"{100 * level:.0f} %"]
        cells.append(_ms([r["sparsity"] for r in _by(rows, task=task.name, round=round_)]))
        for n in nets:
            cells.append(_ms([r["test"] for r in _by(rows, task=task.name, network=n, round=round_)]))
            cells.append(_ms(drops(rows, task.name, n, round_)))
        for n in nets:
            cells.append(_ms([r["energy"] for r in _by(rows, task=task.name, network=n, round=round_)], 1.0, ".3f"))
        for n in nets:
            if n != "ann":
                cells.append(_ms(energy_ratios(rows, task.name, n, round_), 1.0, ".3f"))
        cells.append(_ms(energy_ratios(rows, task.name, "snn", round_, "energy_nonzero"), 1.0, ".3f"))
        rates = [statistics.mean(r["rate"] for r in _by(rows, task=task.name, network=n, round=round_))
                 for n in ("snn", "ann")]
        cells.append(f"{rates[0]:.3f} / {rates[1]:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def plot(rows: list[dict], tasks: list[Task], path: Path) -> None:
    """Drop from each network's own dense against the sparsity level, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [t for t in tasks if _by(rows, task=t.name)]
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.6), squeeze=False)
    styles = {"snn": ("C0", "o", "-"), "ann": ("C3", "^", "--"), "ann-softmax": ("C1", "v", ":")}
    for ax, task in zip(axes[0], shown, strict=True):
        for net in task.networks:
            rounds = [r for r in range(len(LEVELS)) if drops(rows, task.name, net.name, r)]
            if not rounds:
                continue
            means = [100 * statistics.mean(drops(rows, task.name, net.name, r)) for r in rounds]
            sds = [100 * statistics.stdev(d) if len(d := drops(rows, task.name, net.name, r)) > 1 else 0.0
                   for r in rounds]
            colour, marker, line = styles[net.name]
            ax.errorbar([100 * LEVELS[r] for r in rounds], means, yerr=sds, color=colour, marker=marker, ls=line,
                        capsize=3, label=net.name)
        ax.axhline(0, color="gray", lw=0.8)
        ax.set_title(f"{task.name} (reward {task.reward})", fontsize=9)
        ax.set_xlabel("IMP sparsity level (%)")
        ax.set_ylabel("test accuracy drop from own dense (points)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(
    rows: list[dict], args: argparse.Namespace, bench: Bench, loads: list[str], trained: list[int], path: Path
) -> None:
    tasks = [TASKS[name] for name in args.tasks]
    lines = [
        "# Sparse rewards: spiking lottery tickets vs the ANN twin's (issue 23)",
        "",
        "The paper's comparisons at CPU scale. Each task trains the same network twice, as an SNN (LIF, T = "
        f"{args.time_steps}, direct input) and as its ANN twin (`model.neuron.type: relu`: ReLU for every neuron, "
        "run once), with the same recipe (adam, lr 1e-2, cosine, batch 32, epochs per task below), split "
        "(split_seed 0) and seeds (model init + data order). IMP: global magnitude, rewinding to epoch "
        f"{args.rewind}, per-round rates {RATES} so the rounds land on "
        f"{', '.join(f'{100 * x:.0f}' for x in LEVELS[1:])} % of the prunable weights (stepped rounds, no "
        "one-shot pruning). Every training run keeps its best "
        "validation epoch; test accuracy is only reported. Cells: mean ± sample sd over seeds "
        f"{', '.join(map(str, args.seeds))}; *drop* = the network's own dense test accuracy minus the ticket's, "
        "paired per seed (points; positive = lost).",
        "",
        "Energy per inference on 256 validation samples, 45 nm constants (E_MAC 4.6 pJ, E_AC 0.9 pJ), "
        "`real_inputs: all` (docs/energy.md): the SNN pays MACs where its input is real (the first layer, T times "
        "under direct encoding; spike counts) and ACs on spikes; the ANN twin pays a MAC for every synaptic "
        "operation, every input position times the surviving weights (the paper's dense ANN energy, lowered by "
        "pruning only). *x / ann dense energy* divides each ticket's energy by the ANN twin's dense energy (same "
        "seed). The *nonzero variant* column is the same ratio with `real_inputs: nonzero` for both networks (MACs "
        "only at non-zero real inputs: the ANN's activation sparsity counted). The twin's firing-rate column is "
        "its activation density (non-zero ReLU outputs). For the Spikformer tasks the *level* is the IMP schedule "
        "of the layers without a MultiSp target (attention, MLP, head); the ConvPEP follows MultiSp's own geometric "
        "schedule to 90 % at the last round, so the measured weight sparsity of the whole network is lower than the "
        "level until then. Plot: drop against level per task (`rewards.png`).",
        "",
        "Tasks: " + "; ".join(
            f"**{t.name}** (reward {t.reward}): {t.model['name']} preset {t.model['preset']} on {t.data['name']}, "
            f"{args.epochs or t.epochs} epochs" + (", MultiSp all levels "
                                                     f"({', '.join(f'{k}={v}' for k, v in t.multisp.items())})"
                                                     if t.multisp else "")
            for t in tasks
        ) + ". Spikformer's twin keeps softmax-free attention as in the spiking version (`ann`); `ann-softmax` "
        "is the twin with ordinary softmax attention (`model.options.attention: softmax`; softmax not counted).",
        "",
        *bench.provenance(seeds=args.seeds, threads=args.threads, notes=[
            f"Trained {trained[1]} of {sum(trained)} stages (the rest loaded from the stage cache; an accuracy "
            f"benchmark: times are not the point). Load average after each task: {'; '.join(loads)}."
        ]),
    ]
    verdicts: dict[int, list[bool]] = {1: [], 2: []}
    for task in tasks:
        if not _by(rows, task=task.name):
            continue
        held, notes = verdict(rows, task)
        verdicts[task.reward].append(held)
        lines += ["", f"## {task.name} (reward {task.reward})", "", *task_table(rows, task), ""]
        lines.append(f"Reward {task.reward} on {task.name}: **{'held' if held else 'not held'}** "
                     "(SNN's mean drop below the ANN twin's at every level of 90 % and above):")
        lines += [f"- {n}" for n in notes]
        if any(n.name == "ann-softmax" for n in task.networks) and _by(rows, task=task.name, network="ann-softmax"):
            soft_held, soft_notes = verdict(rows, task, "ann-softmax")
            lines.append(f"Against the softmax-attention twin: {'held' if soft_held else 'not held'}:")
            lines += [f"- {n}" for n in soft_notes]
    r90 = LEVELS.index(0.9)
    cnn = [t for t in tasks if t.reward == 1 and _by(rows, task=t.name)]
    d_snn = [statistics.mean(drops(rows, t.name, "snn", r90)) for t in cnn if drops(rows, t.name, "snn", r90)]
    d_ann = [statistics.mean(drops(rows, t.name, "ann", r90)) for t in cnn if drops(rows, t.name, "ann", r90)]
    ratios = {t.name: statistics.mean(energy_ratios(rows, t.name, "snn", r90)) for t in tasks
              if energy_ratios(rows, t.name, "snn", r90)}
    if ratios:
        lines += ["", "SNN ticket at 90 % / ANN dense energy: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())
                  + f"; mean {statistics.mean(ratios.values()):.3f}."]
    lines += ["", "## Findings", "", "FINDINGS", ""]

    def word(flags: list[bool]) -> str:
        return "held" if flags and all(flags) else "not held"

    summary = bench.summary([
        f"reward1 {word(verdicts[1])} (drop at 90 %: snn {_pt(d_snn)} pt, ann {_pt(d_ann)} pt)",
        f"reward2 {word(verdicts[2])}",
        f"snn/ann energy at 90 % {statistics.mean(ratios.values()) if ratios else float('nan'):.3f}",
    ])
    lines += ["## Per seed", "", "| task | network | seed | round | sparsity | val % | test % | energy µJ | "
              "energy µJ (nonzero) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["task"], r["network"], r["seed"], r["round"])):
        lines.append(f"| {r['task']} | {r['network']} | {r['seed']} | {r['round']} | {100 * r['sparsity']:.1f} % | "
                     f"{100 * r['val']:.1f} | {100 * r['test']:.1f} | {r['energy']:.4f} | {r['energy_nonzero']:.4f} |")
    lines += ["", summary]
    old = path.read_text() if path.exists() else ""
    findings = old.split("## Findings\n\n", 1)[1].split("\n\n## Per seed", 1)[0] if "## Findings\n\n" in old else ""
    keep = findings if findings and findings != "FINDINGS" else "(to be written)"
    path.write_text("\n".join(lines).replace("FINDINGS", keep, 1) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--time-steps", type=int, default=4)
    p.add_argument("--rewind", type=int, default=1)
    p.add_argument("--epochs", type=int, default=None, help="override every task's epochs (a smoke run)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    p.add_argument("--out", type=Path, default=OUT / "rewards.md")
    p.add_argument("--cache", type=Path, default=OUT / "rewards_cache")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cache = StageCache(args.cache)
    bench = Bench()
    loads: list[str] = []
    rows: list[dict] = []
    trained = [0, 0]  # stages (dense + rounds) loaded from the cache, trained now
    for name in args.tasks:
        task = TASKS[name]
        for seed in args.seeds:
            for net in task.networks:
                rows += run_one(task, net, seed, args, cache, trained)
        loads.append(f"{name} {load_now()}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(rows, args, bench, loads, trained, args.out)
    plot(rows, [TASKS[name] for name in args.tasks], args.out.with_suffix(".png"))
    print(args.out.read_text().rstrip().splitlines()[-1])


if __name__ == "__main__":
    main()
