"""Where an exported ticket comes from: its row in a run's table, the spec it ran under, its cached state.

Reuses the energy report's lookup (`sltsearch.energy.report`): the ticket's params applied to the run's
frozen spec, and the trained weights + masks of the stage named by the row's ``stage_key``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from sltsearch.energy.report import TicketNotFound, _load_state, _with
from sltsearch.errors import RunDirError, UserError
from sltsearch.results import load_tickets
from sltsearch.results.record import row_params
from sltsearch.rundir import read_run
from sltsearch.spec import Spec


@dataclass
class TicketSource:
    """A ticket of a run: its table row, the concrete spec that built its model, and its trained state."""

    run_dir: Path
    ticket_id: str
    row: pd.Series
    spec: Spec
    state: dict[str, torch.Tensor]
    stage: str  # e.g. "imp stage 1a2b3c4d5e6f7a8b"


def ticket_spec(base: Spec, row: pd.Series) -> Spec:
    """The run's spec with the ticket's searched values applied, at the T the ticket ran at.

    Early-time search rounds (kind ``et_search``) ran at ``tickets.time_steps_search``, recorded in the row's
    ``time_steps``; every other ticket at ``model.time_steps``. An ANN twin's row records the one step it ran;
    its spec keeps ``model.time_steps`` as it was (the twin ignores it).
    """
    spec = _with(base, row_params(row), f"ticket {row['ticket_id']}'s params")
    steps = int(row["time_steps"]) if "time_steps" in row and pd.notna(row["time_steps"]) else None
    if steps is not None and steps != spec.model.inference_steps:
        spec = spec.model_copy(update={"model": spec.model.model_copy(update={"time_steps": steps})})
    return spec


def find_row(frame: pd.DataFrame, run_dir: Path, ticket_id: str) -> pd.Series:
    rows = frame[frame["ticket_id"] == ticket_id] if not frame.empty else frame
    if rows.empty:
        known = ", ".join(frame["ticket_id"].head(8)) if not frame.empty else "none yet"
        raise TicketNotFound(f"{run_dir}: no ticket '{ticket_id}'; tickets include: {known}")
    ok = rows[rows["status"] == "ok"] if "status" in rows.columns else rows
    if ok.empty:
        raise UserError(
            f"{run_dir}: ticket {ticket_id} did not finish (status {rows['status'].iloc[-1]}); export a finished one"
        )
    return ok.iloc[-1]


def ticket_source(run_dir: str | Path, ticket_id: str, frame: pd.DataFrame | None = None) -> TicketSource:
    """Look a ticket up in a run folder and load what rebuilds it; one-line errors for what is missing."""
    run_dir, base = read_run(run_dir)
    frame = load_tickets(run_dir) if frame is None else frame
    row = find_row(frame, run_dir, ticket_id)
    spec = ticket_spec(base, row)
    state, stage = _load_state(run_dir, str(row["stage_key"]))
    return TicketSource(run_dir=run_dir, ticket_id=ticket_id, row=row, spec=spec, state=state, stage=stage)


def plain_row(row: pd.Series) -> dict[str, Any]:
    """A table row as JSON-ready values: numpy scalars unwrapped, NaN as None, per-layer sparsity a dict."""
    import json

    out: dict[str, Any] = {}
    for key, value in row.items():
        if hasattr(value, "item"):
            value = value.item()
        if value is None or (not isinstance(value, list | dict | str) and pd.isna(value)):
            value = None
        if key == "layer_sparsity" and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise RunDirError(f"ticket {row.get('ticket_id')}: layer_sparsity is not valid JSON") from None
        out[str(key)] = value
    return out
