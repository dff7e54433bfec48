"""Appending a ticket to the ticket table: the cost must not grow with the table.

The table is one Parquet part per trial (`sltsearch.results.store`). For tables of 10, 1,000 and 100,000
rows (5 tickets per trial, as from a search of 2 to 20,000 trials), the benchmark times appending one ticket
(a trial's next round: its own part is read and rewritten) and, side by side in the same run, the former
single-file table (`tickets.parquet` read whole and rewritten on every append). Median of repeated appends,
in milliseconds; the ratio 100,000 / 10 rows says whether the cost grows with the table.

    .venv/bin/python benchmarks/ticket_store.py     # writes results/benchmarks/ticket_store.md
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import Bench  # noqa: E402

from sltsearch.results.record import Ticket  # noqa: E402
from sltsearch.results.store import TicketStore, part_path  # noqa: E402
from sltsearch.system.files import atomic_write  # noqa: E402

OUT = ROOT / "results" / "benchmarks" / "ticket_store.md"
PER_TRIAL = 5


def ticket(trial: int, round_: int) -> Ticket:
    values = {k: 0.5 for k in ("sparsity", "density", "val_accuracy", "test_accuracy", "energy_uj", "macs", "acs")}
    return Ticket(
        trial, round_, "imp" if round_ else "dense", {"prune_rate": 0.5, "rounds": 4}, 0, 4,
        nonzero_params=100, prunable_params=200, firing_rate=0.1, best_epoch=3, epochs_trained=10,
        wall_time_s=1.0, stage_key=f"k{trial}-{round_}", layer_sparsity={"conv1": 0.5, "fc": 0.5}, **values,
    )


def fill(run_dir: Path, rows: int) -> pd.DataFrame:
    """A table of ``rows`` tickets as parts (written directly, fast) and the same rows as one frame."""
    frames = []
    for trial in range(rows // PER_TRIAL):
        frame = pd.DataFrame([ticket(trial, r).row() for r in range(PER_TRIAL)])
        path = part_path(run_dir, trial)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def part_append(root: Path, trial: int):  # noqa: ANN201
    store = TicketStore(root)
    return lambda i: store.append([ticket(trial, i)])


def single_file_append(path: Path, trial: int):  # noqa: ANN201
    """The former store: read the whole table, add the row, rewrite it."""

    def append(i: int) -> None:
        frame = pd.concat([pd.read_parquet(path), pd.DataFrame([ticket(trial, i).row()])])
        atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))

    return append


def time_appends(append, repeats: int) -> float:  # noqa: ANN001
    append(-1)  # warm-up (imports, caches), not timed
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        append(i)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1_000, 100_000])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    bench = Bench()
    rows = []
    for size in args.sizes:
        root = Path(tempfile.mkdtemp(prefix="sltsearch-store-"))
        try:
            table = fill(root, size)
            parts_ms = time_appends(part_append(root, size // PER_TRIAL), args.repeats)
            legacy = root / "legacy.parquet"
            table.to_parquet(legacy, index=False)
            legacy_ms = time_appends(single_file_append(legacy, size // PER_TRIAL + 1), max(3, args.repeats // 5))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        rows.append((size, parts_ms, legacy_ms))
        print(f"{size:>7} rows: part-per-trial append {parts_ms:.2f} ms, single-file append {legacy_ms:.2f} ms")
    growth = rows[-1][1] / rows[0][1]
    lines = [
        *bench.header("Ticket table: cost of one append", notes=[f"Versions: pandas {pd.__version__}"]),
        f"Median of {args.repeats} appends of one ticket (single file: {max(3, args.repeats // 5)}), "
        f"{PER_TRIAL} tickets per trial.",
        "",
        "| rows in the table | part per trial (ms) | former single file (ms) |",
        "| ---: | ---: | ---: |",
        *[f"| {size:,} | {p:.2f} | {s:.2f} |" for size, p, s in rows],
        "",
        f"Part-per-trial append at {rows[-1][0]:,} rows / at {rows[0][0]:,} rows: {growth:.2f}x "
        f"(the single file: {rows[-1][2] / rows[0][2]:.1f}x).",
        "",
    ]
    bench.write(OUT, lines, echo=False)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
