"""Benchmark: do the NIR consumers run an exported knee ticket to the ticket's outputs? (issue 22)

For the knee ticket of the default search and of the deployable-preset searches (``deployable`` for
snnTorch, ``deployable_sinabs`` for Sinabs: the two consumers reset membranes differently), and for each
target (snntorch, sinabs, rockpool): whether the graph is written (or the one-line refusal), and when it is,
the consumer's own import and simulation over the validation split: argmax agreement with sltsearch's
model, the largest readout difference (mean over T), and the consumer's accuracy beside the ticket's
recorded accuracy and energy. It measures agreement, not time.

    nice -n 10 .venv/bin/python benchmarks/nir_targets.py --trials 10   # writes results/benchmarks/nir_targets.md

The searches run (or resume) in ``--work`` (default results/nir_targets/<space>).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import Bench  # noqa: E402

import sltsearch  # noqa: E402
from sltsearch.errors import UserError  # noqa: E402
from sltsearch.ticket_io import evaluate_in_consumer  # noqa: E402
from sltsearch.ticket_io.export import package_versions  # noqa: E402
from sltsearch.ticket_io.nir_targets import TARGETS  # noqa: E402

SPACES = ("default", "deployable", "deployable_sinabs")
GOAL = 0.995  # argmax agreement on the validation split that every target able to express the model must reach


def _row(space: str, run_dir: Path, target: str, work: Path) -> dict:
    knee = sltsearch.select(run_dir, "knee")  # the ticket `export --select knee` takes
    row = {
        "space": space,
        "target": target,
        "ticket": knee["ticket_id"],
        "recorded_acc": float(knee["val_accuracy"]),
        "energy_uj": float(knee["energy_uj"]),
        "sparsity": float(knee["sparsity"]),
    }
    out = work / "exports" / f"{space}-{target}"
    try:
        result = sltsearch.export(run_dir, select="knee", format="nir", target=target, out=out, force=True)
    except UserError as err:
        return {**row, "imported": f"refused: {err}"}
    assert result.ticket_id == row["ticket"], (result.ticket_id, row["ticket"])
    check = evaluate_in_consumer(result.path, target=target)
    val = next(s for s in check.splits if s.split == "val")
    return {
        **row,
        "imported": "yes",
        "samples": val.samples,
        "agreement": val.argmax_agreement,
        "max_diff": val.max_readout_diff,
        "consumer_acc": val.consumer_accuracy,
    }


def _table(rows: list[dict]) -> list[str]:
    lines = [
        "| search | target | knee ticket | imported | argmax agreement (val) | max readout diff | consumer val acc "
        "| recorded val acc | energy (uJ) | sparsity |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        recorded = f"{100 * r['recorded_acc']:.2f}% | {r['energy_uj']:.4f} | {100 * r['sparsity']:.1f}%"
        if r["imported"] != "yes":
            lines.append(f"| {r['space']} | {r['target']} | {r['ticket']} | {r['imported']} | - | - | - | {recorded} |")
            continue
        lines.append(
            f"| {r['space']} | {r['target']} | {r['ticket']} | yes | {100 * r['agreement']:.2f}% "
            f"({r['samples']} samples) | {r['max_diff']:.3g} | {100 * r['consumer_acc']:.2f}% | {recorded} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=None, help="trials per search (default: the space's own)")
    parser.add_argument("--work", type=Path, default=ROOT / "results" / "nir_targets")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "nir_targets.md")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    bench = Bench()
    rows = []
    for space in SPACES:
        run_dir = args.work / space
        sltsearch.run(space, run_dir=run_dir, n_trials=args.trials, threads=args.threads)
        for target in TARGETS:
            rows.append(_row(space, run_dir, target, args.work))
            print(rows[-1], flush=True)
    imported = [r for r in rows if r["imported"] == "yes"]
    agreeing = [r for r in imported if r["agreement"] >= GOAL]
    low = min((r["agreement"] for r in imported), default=float("nan"))
    versions = package_versions()
    trials = f"{args.trials} trials per search (reduced)" if args.trials else "each space's own trial count"
    versions_line = "Versions: " + ", ".join(
        f"{k} {versions.get(k)}" for k in ("torch", "nir", "nirtorch", "snntorch", "sinabs", "rockpool", "spikingjelly")
    )
    text = [
        *bench.header("NIR targets: consumers' own simulation of exported knee tickets", threads=args.threads,
                      notes=[f"Trials: {trials}", versions_line]),
        "Each search's knee ticket (`sltsearch export RUN --select knee --format nir --target T`), imported with the",
        "target's public API (`snntorch.import_nir.import_from_nir`, `sinabs.from_nir`, `rockpool.nn.modules."
        "from_nir`) and",
        "run over the ticket's T steps on the validation split (`sltsearch evaluate DIR --target T`). Agreement:",
        "the fraction of samples where the consumer predicts sltsearch's class; readout difference: the largest",
        "absolute difference of the mean readout over T, over all samples and classes. A refusal is the exporter's",
        "one-line message. Where the arithmetic differs: "
        + "; ".join(f"{t.consumer}: {t.exact}" for t in TARGETS.values()) + ".",
        "",
        *_table(rows),
        "",
        f"Goal: every target that can express the model agrees on >= {100 * GOAL:.1f} % of validation samples.",
        "",
        bench.summary([f"targets agreeing {len(agreeing)} of {len(imported)}",
                       f"argmax agreement min {low:.4f}" + (f" ({trials})" if args.trials else "")]),
    ]
    bench.write(args.out, text)


if __name__ == "__main__":
    main()
