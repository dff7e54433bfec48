"""Pareto fronts and hypervolume over ticket tables, computed with moocore (a maintained MOO library).

Objectives are a mapping ``column -> "maximize" | "minimize"`` (``max`` / ``min`` accepted); internally
everything is minimised. Rows with a missing or non-finite objective value (failed tickets) are never on
the front and never add volume. Tables with a ``stage_key`` column are first reduced to one row per ticket
(`sltsearch.results.tickets.unique_tickets`): a dense network shared by many trials is one point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import moocore
import numpy as np
import pandas as pd

from sltsearch.errors import UserError
from sltsearch.results.tickets import ok_rows, unique_tickets

_DIRECTIONS = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize"}


def parse_objectives(objectives: str | Mapping[str, str]) -> dict[str, str]:
    """``"val_accuracy:max,energy_uj:min"`` or a mapping -> ``{column: "maximize" | "minimize"}``."""
    if isinstance(objectives, str):
        pairs = []
        for part in filter(None, (p.strip() for p in objectives.split(","))):
            name, sep, direction = part.partition(":")
            if not sep:
                raise UserError(f"--objectives: '{part}' needs a direction, e.g. {part}:max or {part}:min")
            pairs.append((name.strip(), direction.strip()))
    else:
        pairs = list(objectives.items())
    out: dict[str, str] = {}
    for name, direction in pairs:
        if direction not in _DIRECTIONS:
            raise UserError(f"objective {name}: direction '{direction}' is not one of max, min")
        if name in out:
            raise UserError(f"objectives: {name} is named twice; name each column once")
        if str(name).startswith("test"):
            raise UserError(
                f"objective {name}: a test metric; fronts are chosen on validation metrics (test accuracy is "
                "reported, never used to choose): use val_accuracy"
            )
        out[name] = _DIRECTIONS[direction]
    if not out:
        raise UserError("objectives: name at least one column, e.g. val_accuracy:max,energy_uj:min")
    return out


def _check_columns(frame: pd.DataFrame, objectives: Mapping[str, str]) -> None:
    """Every objective is a column of numbers that some ticket has a value in (not an id, a status or text)."""
    if frame.empty:
        return
    numeric = [
        c for c in frame.columns
        if pd.api.types.is_numeric_dtype(frame[c]) and c != "trial" and not str(c).startswith("test")
    ]
    missing = [n for n in objectives if n not in frame.columns]
    if missing:
        raise UserError(
            f"objective column(s) {', '.join(missing)} not in the ticket table; numeric columns: {', '.join(numeric)}"
        )
    for name in objectives:
        values = frame[name]
        if not pd.api.types.is_numeric_dtype(values) and values.notna().any():
            converted = pd.to_numeric(values, errors="coerce")
            if converted.isna().sum() > values.isna().sum():  # text such as a ticket id or a status
                raise UserError(f"objective {name}: not a numeric column; numeric columns: {', '.join(numeric)}")
        if not np.isfinite(pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)).any():
            raise UserError(f"objective {name}: no ticket has a value in this column; pick a column the tickets fill")


def _losses(frame: pd.DataFrame, objectives: Mapping[str, str]) -> np.ndarray:
    """The objectives as a float array to minimise (NaN where a value is missing)."""
    cols = []
    for name, direction in parse_objectives(objectives).items():
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        cols.append(-values if direction == "maximize" else values)
    return np.stack(cols, axis=1) if cols else np.empty((len(frame), 0))


def pareto_mask(frame: pd.DataFrame, objectives: Mapping[str, str]) -> np.ndarray:
    """Boolean array: True where the row is not dominated by any other row (ties are all kept).

    Rows with a non-finite objective are False and dominate nothing.
    """
    if frame.empty:
        return np.zeros(0, dtype=bool)
    _check_columns(frame, objectives)
    losses = _losses(frame, objectives)
    finite = np.isfinite(losses).all(axis=1)
    mask = np.zeros(len(frame), dtype=bool)
    if finite.any():
        mask[finite] = moocore.is_nondominated(losses[finite], keep_weakly=True)
    return mask


def pareto_front(frame: pd.DataFrame, objectives: Mapping[str, str], only_ok: bool = True) -> pd.DataFrame:
    """The non-dominated tickets (one row per ticket; finished and feasible ones), sorted by the first objective
    (best first)."""
    objectives = parse_objectives(objectives)
    if only_ok:
        frame = ok_rows(frame)
    if only_ok and "feasible" in frame:  # tickets violating objective.constraints stay off the front
        frame = frame[frame["feasible"].fillna(True).astype(bool)]
    frame = unique_tickets(frame)
    if frame.empty:
        return frame.reset_index(drop=True)
    front = frame[pareto_mask(frame, objectives)]
    first, direction = next(iter(objectives.items()))
    return front.sort_values(first, ascending=direction == "minimize", kind="stable").reset_index(drop=True)


def hypervolume(
    frame: pd.DataFrame, objectives: Mapping[str, str], reference: Mapping[str, float], only_ok: bool = True
) -> float:
    """Hypervolume dominated by ``frame`` w.r.t. ``reference`` (one value per objective, in its own units).

    Only points strictly better than the reference in every objective count; compare runs with one fixed
    reference (e.g. accuracy 0 and the dense network's energy).
    """
    objectives = parse_objectives(objectives)
    missing = [n for n in objectives if n not in reference]
    if missing:
        raise UserError(f"hypervolume: the reference point needs a value for {', '.join(missing)}")
    if only_ok:
        frame = ok_rows(frame)
    if frame.empty:
        return 0.0
    _check_columns(frame, objectives)
    losses = _losses(frame, objectives)
    ref = np.array([-reference[n] if d == "maximize" else reference[n] for n, d in objectives.items()], dtype=float)
    inside = np.isfinite(losses).all(axis=1) & (losses < ref).all(axis=1)
    if not inside.any():
        return 0.0
    return float(moocore.hypervolume(losses[inside], ref=ref))


REFERENCE_MARGIN = 0.10  # the shared reference lies this fraction of each objective's range beyond its worst value


def shared_reference(
    frames: Sequence[pd.DataFrame], objectives: Mapping[str, str], only_ok: bool = True
) -> dict[str, float]:
    """One reference point for comparing the hypervolumes of several runs: per objective, the worst value any
    finished ticket of any run reaches, moved ``REFERENCE_MARGIN`` of the objective's range further out (so the
    worst tickets still add volume). Every run's hypervolume against it is comparable."""
    objectives = parse_objectives(objectives)
    kept = [ok_rows(f) if only_ok else f for f in frames]
    reference: dict[str, float] = {}
    for name, direction in objectives.items():
        values = np.concatenate(
            [pd.to_numeric(f[name], errors="coerce").to_numpy(dtype=float) for f in kept if name in f.columns]
            or [np.empty(0)]
        )
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise UserError(f"objective {name}: no finished ticket of these runs has a value; pick another column")
        low, high = float(values.min()), float(values.max())
        margin = REFERENCE_MARGIN * ((high - low) or abs(high) or 1.0)
        point = low - margin if direction == "maximize" else high + margin
        reference[name] = 0.0 if point < 0.0 <= low else point  # a count or fraction never needs one below 0
    return reference


def trial_counts(frame: pd.DataFrame) -> tuple[int, int]:
    """``(finished, unfinished)`` trials of a ticket table: a trial's rows become ``ok`` when it ends, so a
    trial with no ``ok`` row is still running, was interrupted or failed."""
    if frame.empty or "trial" not in frame.columns:
        return 0, 0
    every = set(frame["trial"].dropna().tolist())
    finished = set(ok_rows(frame)["trial"].dropna().tolist())
    return len(finished), len(every - finished)


def parse_reference(text: str) -> dict[str, float]:
    """``"val_accuracy=0,energy_uj=1.5"`` -> ``{"val_accuracy": 0.0, "energy_uj": 1.5}`` (``--reference``)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            number = float(value) if sep and name.strip() else float("nan")
        except ValueError:
            number = float("nan")
        if not np.isfinite(number):
            raise UserError(f"--reference: '{part}' is not COLUMN=NUMBER, e.g. val_accuracy=0,energy_uj=1.5")
        out[name.strip()] = number
    if not out:
        raise UserError("--reference: give one COLUMN=NUMBER per objective, e.g. val_accuracy=0,energy_uj=1.5")
    return out
