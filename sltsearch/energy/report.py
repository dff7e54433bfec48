"""Per-layer energy reports of a run's ticket or of a spec's dense model (`sltsearch energy`).

`energy_report(target, ticket=...)` rebuilds the model, loads the ticket's weights and masks from the
run's stage cache (``cache/imp/<stage_key>/state.safetensors``, or ``cache/dense/<stage_key>/final
.safetensors`` for round 0), and measures it on validation samples with the spec's energy settings.
Given a spec instead of a run folder it measures the spec's dense model at its (untrained) init.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from sltsearch.cache import DamagedArtefact, StageCache
from sltsearch.energy.counter import EnergyReport, measure_energy
from sltsearch.errors import RunDirError, UserError
from sltsearch.results.record import row_params

COLUMNS = {
    "name": "layer",
    "type": "type",
    "input_kind": "input",
    "binary_weights": "binary w",
    "once": "once",
    "firing_rate": "nonzero rate",
    "op_rate": "op rate",
    "dense_ops": "dense ops",
    "ops": "counted ops",
    "approx_ops": "approx ops",
    "macs": "MACs",
    "acs": "ACs",
    "binary_ops": "binary ops",
    "neuron_updates": "neuron upd",
    "params": "params",
    "nonzero_params": "nonzero",
    "storage_bits": "storage bits",
    "compute_pj": "compute pJ",
    "memory_pj": "memory pJ",
    "energy_pj": "energy pJ",
    "energy_share": "share",
}


class TicketNotFound(UserError):
    """The run folder has no ticket of that id."""


@dataclass
class EnergyRun:
    """A measured report and where its model came from."""

    report: EnergyReport
    source: str  # e.g. "ticket t0001r02 of results/x (imp stage 1a2b...)" or "spec x, untrained init"
    trained: bool

    def frame(self) -> pd.DataFrame:
        """One row per layer, columns as in `COLUMNS` (raw names)."""
        return pd.DataFrame(self.report.table(), columns=list(COLUMNS))


def _with(spec: Any, params: dict[str, Any], what: str) -> Any:
    from pydantic import ValidationError

    from sltsearch.errors import SpecError
    from sltsearch.spec import format_validation_error

    try:
        return spec.with_params(params)
    except ValidationError as err:
        raise SpecError(format_validation_error(what, err)) from None


def _load_state(run_dir: Path, key: str) -> tuple[dict[str, torch.Tensor], str]:
    """The trained weights (with masks) of the stage a ticket came from: dense, IMP, control, one-shot, ..."""
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


def energy_report(
    target: str | Path,
    *,
    ticket: str | None = None,
    samples: int | None = None,
    device: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> EnergyRun:
    """Measure a run's ticket (``target`` = run folder, ``ticket`` = id like t0003r02) or a spec's model.

    ``target`` that is not a run folder is read as a spec file or bundled space name; its dense model is
    measured at initialisation (untrained: firing rates, hence ACs, differ from a trained model's).
    ``overrides`` sets spec fields by dotted path after the ticket's params, e.g.
    ``{"objective.energy.model": "memory"}``; they must not change the model's shape.
    """
    from sltsearch.data import build_data, make_loader
    from sltsearch.device import resolve_device, seed_everything
    from sltsearch.models import build_model
    from sltsearch.results import load_tickets
    from sltsearch.rundir import SPEC_FILE, read_run
    from sltsearch.spaces import resolve_spec_path
    from sltsearch.spec import load_spec
    from sltsearch.tickets import attach_masks

    path = Path(target)
    state: dict[str, torch.Tensor] | None = None
    if path.is_dir() or (path / SPEC_FILE).exists():
        run_dir, base = read_run(path)
        if ticket is None:
            raise UserError(f"{run_dir}: pass --ticket ID (a ticket_id from the ticket table, e.g. t0000r01)")
        frame = load_tickets(run_dir)
        rows = frame[frame["ticket_id"] == ticket] if not frame.empty else frame
        if rows.empty:
            known = ", ".join(frame["ticket_id"].head(8)) if not frame.empty else "none yet"
            raise TicketNotFound(f"{run_dir}: no ticket '{ticket}'; tickets include: {known}")
        row = rows.iloc[-1]
        spec = _with(base, row_params(row), f"ticket {ticket}'s params")
        state, where = _load_state(run_dir, str(row["stage_key"]))
        source = f"ticket {ticket} of {run_dir} ({where})"
    else:
        if ticket is not None:
            raise UserError(f"{target}: --ticket needs a run folder, not a spec")
        spec = load_spec(resolve_spec_path(str(target))).with_params({})
        source = f"spec {spec.name}, dense model at its untrained initialisation"

    if overrides:
        spec = _with(spec, overrides, "override")
    data = build_data(spec.data)
    dev = resolve_device(device or spec.train.device)
    seed_everything(spec.seed)
    model = build_model(spec.model, data.input_shape, data.num_classes, frames=data.time_steps is not None)
    model = model.to(dev)
    if state is not None:
        masks = {n.removesuffix(".weight_mask"): v for n, v in state.items() if n.endswith(".weight_mask")}
        attach_masks(model, masks)
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise RunDirError(f"{source}: cached weights do not fit the model built from the spec: {first}") from None
        attach_masks(model, masks)
    else:
        attach_masks(model)
    loader = make_loader(data.val, spec.data.eval_batch_size, shuffle=False)
    energy = spec.objective.energy
    report = measure_energy(model, loader, dev, energy, samples or energy.samples)
    return EnergyRun(report=report, source=source, trained=state is not None)
