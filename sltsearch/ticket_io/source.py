"""A run's ticket rebuilt: from its id to its table row, its spec (at the T it ran at), its state and its model.

The one way a command reaches a ticket of a run folder: `sltsearch export` (`sltsearch.ticket_io.export`) and
`sltsearch energy --ticket` (`sltsearch.energy_model.report`) look it up here; the model is built by
`sltsearch.ticket_io.rebuild.build_ticket_model`, which `sltsearch evaluate` uses on an exported ticket, and its
state (masks included) is installed by `sltsearch.tickets.load_masked_state`, as a trial installs a cached stage
(and `sltsearch repair` replays trials over them).

A run folder is data: its callers read it inside `sltsearch.models.user.reading(run_dir, trust_code)`, so a spec
naming a user's module (an import path) is refused before anything is loaded unless the user trusts it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from pydantic import ValidationError

from sltsearch.errors import RunDirError, SpecError, UserError
from sltsearch.models import SpikingClassifier
from sltsearch.models.user import check_allowed
from sltsearch.results import load_tickets
from sltsearch.results.record import row_params
from sltsearch.runfolder.folder import SPEC_FILE, read_run
from sltsearch.spec import Spec
from sltsearch.spec.wording import format_validation_error
from sltsearch.ticket_io.rebuild import build_ticket_model
from sltsearch.trial.cache import DamagedArtefact, StageCache

# a cache folder's name: `sltsearch.spec.keys.content_key` writes 16 hex digits; nothing a glob or a path reads
STAGE_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


class TicketNotFound(UserError):
    """The run folder has no ticket of that id."""


@dataclass
class TicketSource:
    """A ticket of a run: its table row, the concrete spec that built its model, and its trained state."""

    run_dir: Path
    ticket_id: str
    row: pd.Series
    spec: Spec
    state: dict[str, torch.Tensor]
    stage: str  # e.g. "imp stage 1a2b3c4d5e6f7a8b"

    def model(
        self, io: dict[str, Any], device: torch.device | str = "cpu", spec: Spec | None = None
    ) -> SpikingClassifier:
        """The ticket's model with its state installed, in eval mode; ``spec`` replaces the ticket's own (e.g.
        with energy settings overridden) and must build the same shapes."""
        where = f"ticket {self.ticket_id} of {self.run_dir} ({self.stage})"
        return build_ticket_model(spec or self.spec, io, self.state, device, where=where)


def apply_params(spec: Spec, params: dict[str, Any], what: str) -> Spec:
    """``spec.with_params(params)``, a `SpecError` naming ``what`` when the values do not fit the spec."""
    try:
        return spec.with_params(params)
    except ValidationError as err:
        raise SpecError(format_validation_error(what, err, Spec)) from None


def ticket_spec(base: Spec, row: pd.Series) -> Spec:
    """The run's spec with the ticket's searched values applied, at the T the ticket ran at.

    Early-time search rounds (kind ``et_search``) ran at ``tickets.time_steps_search``, recorded in the row's
    ``time_steps``; every other ticket at ``model.time_steps``. An ANN twin's row records the one step it ran;
    its spec keeps ``model.time_steps`` as it was (the twin ignores it).
    """
    spec = apply_params(base, row_params(row), f"ticket {row['ticket_id']}'s params")
    steps = int(row["time_steps"]) if "time_steps" in row and pd.notna(row["time_steps"]) else None
    if steps is not None and steps != spec.model.inference_steps:
        spec = spec.model_copy(update={"model": spec.model.model_copy(update={"time_steps": steps})})
    return spec


def find_row(frame: pd.DataFrame, run_dir: Path, ticket_id: str) -> pd.Series:
    """The ticket's finished row (the last one: a resumed trial may have written it again)."""
    rows = frame[frame["ticket_id"] == ticket_id] if not frame.empty else frame
    if rows.empty:
        known = ", ".join(frame["ticket_id"].head(8)) if not frame.empty else "none yet"
        raise TicketNotFound(f"{run_dir}: no ticket '{ticket_id}'; tickets include: {known}")
    ok = rows[rows["status"] == "ok"] if "status" in rows.columns else rows
    if ok.empty:
        raise UserError(
            f"{run_dir}: ticket {ticket_id} did not finish (status {rows['status'].iloc[-1]}); pick a finished one"
        )
    return ok.iloc[-1]


def load_stage_state(run_dir: Path, key: str) -> tuple[dict[str, torch.Tensor], str]:
    """The trained weights (with masks) of the stage a ticket came from (dense, IMP, control, ...) and what it
    is, e.g. ``imp stage 1a2b...``."""
    if not STAGE_KEY.fullmatch(key):  # anything else would reach the glob below as a path or a pattern
        raise RunDirError(f"{run_dir}: stage key {ascii(key)[:60]} in the ticket table is not a cache key")
    cache = StageCache(run_dir / "cache")
    found = cache.locate(key)
    if found is None:
        raise RunDirError(f"{run_dir}: no cached stage {key} under cache/; was the cache folder removed?")
    kind, _ = found
    # dense runs keep every epoch's checkpoint beside the selected weights ("final"); other stages one "state"
    stem = "final" if kind == "dense" else "state"
    try:
        _, tensors = cache.load(kind, key, [stem])
    except DamagedArtefact as err:
        raise RunDirError(f"{err}; rerun the search (it sets the stage aside and recomputes it)") from None
    return tensors[stem], f"{kind} stage {key}"


def ticket_source(run_dir: str | Path, ticket_id: str, frame: pd.DataFrame | None = None) -> TicketSource:
    """Look a ticket up in a run folder and load what rebuilds it; one-line errors for what is missing."""
    run_dir, base = read_run(run_dir)
    check_allowed(base.model.name, str(run_dir / SPEC_FILE))  # refused now, not after the state is loaded
    frame = load_tickets(run_dir) if frame is None else frame
    row = find_row(frame, run_dir, ticket_id)
    spec = ticket_spec(base, row)
    state, stage = load_stage_state(run_dir, str(row["stage_key"]))
    return TicketSource(run_dir=run_dir, ticket_id=ticket_id, row=row, spec=spec, state=state, stage=stage)


def plain_row(row: pd.Series) -> dict[str, Any]:
    """A table row as JSON-ready values: numpy scalars unwrapped, NaN as None, per-layer sparsity a dict and the
    rounds' rates a list."""
    import json

    out: dict[str, Any] = {}
    for key, value in row.items():
        if hasattr(value, "item"):
            value = value.item()
        if value is None or (not isinstance(value, list | dict | str) and pd.isna(value)):
            value = None
        if key in ("layer_sparsity", "rates") and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise RunDirError(f"ticket {row.get('ticket_id')}: {key} is not valid JSON") from None
        out[str(key)] = value
    return out
