"""Views of the ticket table as a reader expects them: finished tickets only, one row per ticket.

The table has one row per (trial, round), so a stage shared by several trials (above all the dense
network, trained once and loaded by every trial with the same T and seed) appears once per trial. Its
``stage_key`` (the content hash of what determines it) names the ticket; `unique_tickets` keeps one row
per key, and blanks on dense rows the searched parameters that only shape pruning (``tickets.*``,
``multisp.*``), which would otherwise show the values of whichever trial happened to load it. For the same
reason the ANN twin's rows (``network`` = ``ann``) have the searched parameters blanked that only shape a
spiking network (``model.time_steps``, the neuron's spiking parameters: `sltsearch.spec.schema.SPIKING_ONLY_PATHS`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sltsearch.errors import UserError
from sltsearch.spec.schema import SPIKING_ONLY_PATHS
from sltsearch.spec.space import resolve_param_path

# spec sections whose values never change the dense network (they act from the first pruning round on)
TICKET_ONLY_SECTIONS = ("tickets.", "multisp.")


def ok_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of finished tickets (``status == "ok"``); every row when the table has no status column."""
    if frame.empty or "status" not in frame.columns:
        return frame
    return frame[frame["status"] == "ok"]


def ticket_only_params(frame: pd.DataFrame) -> list[str]:
    """``param_*`` columns of searched values that do not shape the dense network."""
    return [
        c
        for c in frame.columns
        if str(c).startswith("param_")
        and resolve_param_path(str(c).removeprefix("param_")).startswith(TICKET_ONLY_SECTIONS)
    ]


def spiking_only_params(frame: pd.DataFrame) -> list[str]:
    """``param_*`` columns of searched values that the ANN twin ignores (`sltsearch.spec.schema.SPIKING_ONLY_PATHS`)."""
    return [
        c
        for c in frame.columns
        if str(c).startswith("param_") and resolve_param_path(str(c).removeprefix("param_")) in SPIKING_ONLY_PATHS
    ]


def _blank(frame: pd.DataFrame, rows: pd.Series, columns: list[str]) -> pd.DataFrame:
    """``frame`` with ``columns`` set to None on ``rows`` (a copy when anything changes)."""
    if not rows.any() or not columns:
        return frame
    frame = frame.copy()
    for col in columns:
        frame[col] = frame[col].astype(object)
        frame.loc[rows, col] = None
    return frame


def unique_tickets(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per ``stage_key`` (per run, with a ``run`` column), the first trial that reached it, finished
    rows first; on dense rows the
    pruning-only params are blank (None). Tables without ``stage_key`` are returned as they are."""
    if frame.empty or "stage_key" not in frame.columns:
        return frame
    n = len(frame)

    def column(name: str, default: object) -> list:
        return frame[name].tolist() if name in frame.columns else [default] * n

    order = pd.DataFrame(
        {
            "failed": [s != "ok" for s in column("status", "ok")],
            "cached": [bool(c) for c in column("cached", False)],
            "trial": column("trial", 0),
            "round": column("round", 0),
            # runs compared side by side (`sltsearch.load([a, b])`) may share keys: a ticket is (run, key)
            "key": [
                (run, key) if isinstance(key, str) and key else ("", f"row {at}")  # no key: a ticket of its own
                for at, (run, key) in enumerate(zip(column("run", ""), frame["stage_key"].tolist(), strict=True))
            ],
            "at": range(n),
        }
    )
    order = order.sort_values(["failed", "cached", "trial", "round"], kind="stable")
    kept = frame.iloc[sorted(order.drop_duplicates("key", keep="first")["at"])]
    if "kind" in kept.columns:
        kept = _blank(kept, kept["kind"] == "dense", ticket_only_params(kept))
    if "network" in kept.columns:
        kept = _blank(kept, kept["network"] == "ann", spiking_only_params(kept))
    return kept


def check_min_accuracy(value: float | None) -> None:
    """``--min-accuracy`` is a fraction: 0 to 1, never NaN (a floor of 2 or NaN would silently hide everything)."""
    if value is not None and not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise UserError(f"--min-accuracy: {value} is not an accuracy between 0 and 1 (e.g. 0.9 for 90 %)")


def check_max_energy(value: float | None) -> None:
    """``--max-energy`` is an energy in uJ: a finite number of at least 0."""
    if value is not None and not (isinstance(value, int | float) and 0.0 <= value < float("inf")):
        raise UserError(f"--max-energy: {value} is not an energy in uJ (a finite number of at least 0)")


def accuracy_floor(frame: pd.DataFrame, min_accuracy: float | None, column: str = "val_accuracy") -> pd.DataFrame:
    """Rows at or above a validation-accuracy floor (hides near-chance tickets); all rows for None."""
    check_min_accuracy(min_accuracy)
    if min_accuracy is None or frame.empty:
        return frame
    return frame[pd.to_numeric(frame[column], errors="coerce") >= min_accuracy]


def run_labels(run_dirs: list[Path]) -> list[str]:
    """Folder names, or whole paths where two runs share a name."""
    names = [p.name for p in run_dirs]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, run_dirs, strict=True)]


def load_runs(run_dirs: list[str | Path] | tuple[str | Path, ...]) -> pd.DataFrame:
    """The ticket tables of several runs stacked, with a ``run`` column first (see `run_labels`)."""
    from sltsearch.results.store import load_tickets
    from sltsearch.runfolder.folder import read_run

    paths = [read_run(p)[0] for p in run_dirs]
    frames = []
    for label, path in zip(run_labels(paths), paths, strict=True):
        frame = load_tickets(path)
        frames.append(frame.assign(run=label)[["run", *frame.columns]] if not frame.empty else frame)
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
