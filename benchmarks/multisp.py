"""MultiSp benchmark (issue #5): tiny Spikformer on digits, dense vs each MultiSp level alone vs all together.

Every variant is one trial of `run_trial` on the same spec (Spec defaults: adam, lr 1e-2, cosine, batch 32,
T = 4; ``--epochs`` epochs), the same seed and the same cached dense run; each ticket is one IMP round
(global magnitude ``prune_rate`` on the layers without their own target, rewind to epoch ``--rewind``)
with the variant's MultiSp levels. Epochs are selected on validation; test accuracy is reported alongside.

    .venv/bin/python benchmarks/multisp.py                 # writes results/benchmarks/multisp.md + .png
    .venv/bin/python benchmarks/multisp.py --epochs 6      # quicker
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sltsearch.cache import StageCache  # noqa: E402
from sltsearch.spec import parse_spec  # noqa: E402
from sltsearch.trial import TrialContext, run_trial  # noqa: E402

OUT = ROOT / "results" / "benchmarks"
VARIANTS: dict[str, dict] = {
    "all three levels": {
        "patch_keep": 0.5,
        "pep_sparsity": 0.9,
        "pep_binary_weights": True,
        "pep_binary_activations": True,
    },
    "patch_keep 0.5": {"patch_keep": 0.5},
    "ConvPEP 90% sparse + binary w": {"pep_sparsity": 0.9, "pep_binary_weights": True},
    "ConvPEP binary activations": {"pep_binary_activations": True},
    "imp (no MultiSp)": {},
}


def spec_for(levels: dict, epochs: int, rewind: int, seed: int, prune_rate: float):
    return parse_spec(
        {
            "name": "multisp-bench",
            "seed": seed,
            "model": {"name": "spikformer", "preset": "tiny", "time_steps": 4},
            "train": {"epochs": epochs},
            "tickets": {"rounds": 1, "prune_rate": prune_rate, "rewind_epoch": rewind},
            "objective": {"energy": {"samples": 256}},
            "multisp": levels,
        }
    )


def row(name: str, t) -> dict:
    return {
        "variant": name,
        "kind": t.kind,
        "val": t.val_accuracy,
        "test": t.test_accuracy,
        "energy_uj": t.energy_uj,
        "macs": t.macs,
        "acs": t.acs,
        "binary_ops": t.binary_ops,
        "sparsity": t.sparsity,
        "nonzero": t.total_nonzero_params,
        "storage_kbit": t.storage_bits / 1e3,
        "tokens": f"{t.tokens_kept}/{t.tokens_total}",
        "pep_sparsity": t.pep_sparsity,
        "binary": f"w={'y' if t.pep_binary_weights else 'n'} a={'y' if t.pep_binary_activations else 'n'}",
        "wall_s": t.wall_time_s,
    }


def write(rows: list[dict], args, elapsed: float, path: Path) -> None:
    dense = rows[0]
    lines = [
        "# MultiSp benchmark: tiny Spikformer on digits",
        "",
        f"Seed {args.seed}; Spec defaults (adam, lr 1e-2, cosine, batch 32, T = 4), {args.epochs} epochs; "
        f"one IMP round (prune_rate {args.prune_rate} on layers without their own target, rewind to epoch "
        f"{args.rewind}); energy "
        "on 256 validation samples (45 nm: 4.6 pJ MAC, 0.9 pJ AC; binarized-weight ops at AC cost; inputs with "
        "spike counts > 1 count as MACs). Val selects the epoch, test is reported. "
        f"Machine: {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"total {elapsed / 60:.1f} min (shared CPU: wall times are indicative only).",
        "",
        "Command: `.venv/bin/python benchmarks/multisp.py "
        f"--epochs {args.epochs} --rewind {args.rewind} --seed {args.seed} --prune-rate {args.prune_rate}`",
        "",
        "| variant | val % | test % | Δtest vs dense | energy µJ | MACs | ACs | binary ops | weight sparsity | "
        "ConvPEP sparsity | tokens | binary | non-zero params | storage kbit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {100 * r['val']:.1f} | {100 * r['test']:.1f} | "
            f"{100 * (r['test'] - dense['test']):+.1f} | {r['energy_uj']:.3f} | {r['macs']:.0f} | {r['acs']:.0f} | "
            f"{r['binary_ops']:.0f} | {100 * r['sparsity']:.1f} % | {100 * (r['pep_sparsity'] or 0):.1f} % | "
            f"{r['tokens']} | {r['binary']} | {r['nonzero']} | {r['storage_kbit']:.1f} |"
        )
    path.write_text("\n".join(lines) + "\n")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, r in enumerate(rows):
        ax.scatter(r["energy_uj"], 100 * r["test"], color=f"C{i}", label=r["variant"], s=50)
    ax.set_xscale("log")
    ax.set_xlabel("energy per sample (µJ, log)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("tiny Spikformer on digits: MultiSp levels")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--rewind", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prune-rate", type=float, default=0.5)
    p.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    cache = StageCache(OUT / "multisp_cache")
    t0 = time.perf_counter()
    rows: list[dict] = []
    for name, levels in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        tickets = run_trial(spec_for(levels, args.epochs, args.rewind, args.seed, args.prune_rate), {},
                            TrialContext(cache=cache))
        if not rows:
            rows.append(row("dense", tickets[0]))
        rows.append(row(name, tickets[-1]))
        print(rows[-1], flush=True)
        write(rows, args, time.perf_counter() - t0, OUT / "multisp.md")
    plot(rows, OUT / "multisp.png")
    write(rows, args, time.perf_counter() - t0, OUT / "multisp.md")


if __name__ == "__main__":
    main()
