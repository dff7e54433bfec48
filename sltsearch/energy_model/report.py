"""Per-layer energy reports of a run's ticket or of a spec's dense model (`sltsearch energy`).

`energy_report(target, ticket=...)` rebuilds the ticket as every command does (`sltsearch.ticket_io.source`:
its finished row, its spec at the T it ran at, its weights and masks from the run's stage cache) and measures
it on validation samples with the spec's energy settings, as its trial did. Given a spec instead of a run
folder it measures the spec's dense model at its (untrained) init.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sltsearch.energy_model.counter import measure_energy
from sltsearch.energy_model.counts import EnergyReport
from sltsearch.errors import UserError

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


@dataclass
class EnergyRun:
    """A measured report and where its model came from."""

    report: EnergyReport
    source: str  # e.g. "ticket t0001r02 of results/x (imp stage 1a2b...)" or "spec x, untrained init"
    trained: bool

    def frame(self) -> pd.DataFrame:
        """One row per layer, columns as in `COLUMNS` (raw names)."""
        return pd.DataFrame(self.report.table(), columns=list(COLUMNS))


def energy_report(
    target: str | Path,
    *,
    ticket: str | None = None,
    samples: int | None = None,
    device: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> EnergyRun:
    """Measure a run's ticket (``target`` = run folder, ``ticket`` = id like t0003r02) or a spec's model.

    A ticket is rebuilt as its trial left it (`sltsearch.ticket_io.source`: its finished row, its spec at the T it
    ran at, its cached state) and measured as its trial measured it (`sltsearch.trial.stages.measurement_rng`), so
    with its own settings the report's totals are the table's. ``target`` that is not a run folder is read as a
    spec file or bundled space name; its dense model is measured at initialisation (untrained: firing rates,
    hence ACs, differ from a trained model's). ``overrides`` sets spec fields by dotted path after the ticket's
    params, e.g. ``{"objective.energy.model": "memory"}``; they must not change the model's shape.
    """
    from sltsearch.data import build_data, make_loader
    from sltsearch.models import build_model
    from sltsearch.runfolder.folder import SPEC_FILE, read_run
    from sltsearch.spec import load_spec
    from sltsearch.spec.spaces import resolve_spec_path
    from sltsearch.system.device import resolve_device, seed_everything
    from sltsearch.ticket_io.rebuild import model_io
    from sltsearch.ticket_io.source import apply_params, ticket_source
    from sltsearch.tickets import attach_masks
    from sltsearch.trial.stages import measurement_rng

    path = Path(target)
    if path.is_dir() or (path / SPEC_FILE).exists():
        run_dir, _ = read_run(path)
        if ticket is None:
            raise UserError(f"{run_dir}: pass --ticket ID (a ticket_id from the ticket table, e.g. t0000r01)")
        found = ticket_source(run_dir, ticket)
        spec = apply_params(found.spec, overrides, "override") if overrides else found.spec
        data = build_data(spec.data)
        dev = resolve_device(device or spec.train.device)
        model = found.model(model_io(spec, data), dev, spec)
        measuring = measurement_rng(spec, dev)
        source, trained = f"ticket {ticket} of {run_dir} ({found.stage})", True
    else:
        if ticket is not None:
            raise UserError(f"{target}: --ticket needs a run folder, not a spec")
        spec = load_spec(resolve_spec_path(str(target))).with_params({})
        spec = apply_params(spec, overrides, "override") if overrides else spec
        data = build_data(spec.data)
        dev = resolve_device(device or spec.train.device)
        seed_everything(spec.seed)
        model = build_model(spec.model, data.input_shape, data.num_classes, frames=data.time_steps is not None)
        attach_masks(model.to(dev))
        measuring = contextlib.nullcontext()
        source, trained = f"spec {spec.name}, dense model at its untrained initialisation", False
    loader = make_loader(data.val, spec.data.eval_batch_size, shuffle=False)
    energy = spec.objective.energy
    with measuring:
        report = measure_energy(model, loader, dev, energy, samples or energy.samples)
    return EnergyRun(report=report, source=source, trained=trained)
