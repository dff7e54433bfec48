"""Rebuild a ticket's model from a spec and a state, and re-measure it exactly as a trial measured it.

`measure_ticket` runs the evaluation a trial's ticket came from (`sltsearch.trial.stages.evaluate_ticket_model`:
mask statistics, energy on the validation samples, validation and test accuracy), so on the same machine and
device a rebuilt ticket gives the recorded numbers bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sltsearch.data import DataSplits, make_loader
from sltsearch.energy_model.counts import EnergyReport
from sltsearch.errors import UserError
from sltsearch.models import SpikingClassifier, build_model
from sltsearch.spec import Spec
from sltsearch.system.device import seed_everything
from sltsearch.tickets import load_masked_state
from sltsearch.trial.stages import evaluate_ticket_model

# metrics a re-measurement reproduces: table column -> where it comes from
COMPARED = (
    "val_accuracy",
    "test_accuracy",
    "energy_uj",
    "macs",
    "acs",
    "binary_ops",
    "firing_rate",
    "sparsity",
    "nonzero_params",
    "storage_bits",
)


def model_io(spec: Spec, data: DataSplits) -> dict[str, Any]:
    """What building the model needs from the data, so a ticket can be rebuilt without it."""
    return {
        "family": spec.model.name,
        "input_shape": list(data.input_shape),
        "num_classes": int(data.num_classes),
        "frames": data.time_steps is not None,
        "time_steps": spec.model.inference_steps,
        "network": spec.model.network,
        "encoder": "frames" if data.time_steps is not None else spec.model.encoder,
        "input": "a float tensor [batch, *input_shape] (frames: [batch, T, *input_shape]); output: logits "
        "[batch, num_classes], the mean over time steps",
    }


def build_ticket_model(
    spec: Spec,
    io: dict[str, Any],
    state: dict[str, torch.Tensor],
    device: torch.device | str = "cpu",
    *,
    where: str = "the ticket",
) -> SpikingClassifier:
    """The spec's model with the ticket's state (masks, MultiSp switches) installed, in eval mode; ``where``
    names the ticket in the error when its state does not fit."""
    with torch.random.fork_rng(devices=[]):  # every parameter is then loaded; the caller's RNG stays as it was
        seed_everything(spec.seed)
        model = build_model(spec.model, tuple(io["input_shape"]), int(io["num_classes"]), frames=bool(io["frames"]))
    model = model.to(device)
    try:
        load_masked_state(model, state)
    except (RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"{where}: its weights do not fit the model its spec builds: {first}") from None
    model.eval()
    return model


@dataclass
class Measurement:
    """The re-measured metrics (names as in the ticket table) and the full energy report."""

    values: dict[str, float]
    energy: EnergyReport


def measure_ticket(model: SpikingClassifier, spec: Spec, data: DataSplits, device: torch.device) -> Measurement:
    """Energy, validation and test accuracy, sparsity: the evaluation of `sltsearch.trial.stages.measure`."""
    ebs = spec.data.eval_batch_size
    val_loader = make_loader(data.val, ebs, shuffle=False)
    test_loader = make_loader(data.test, ebs, shuffle=False)
    stats, energy, val_accuracy, test_accuracy = evaluate_ticket_model(model, spec, val_loader, test_loader, device)
    values = {
        "val_accuracy": val_accuracy,
        "test_accuracy": test_accuracy,
        "energy_uj": energy.energy_uj,
        "macs": energy.macs,
        "acs": energy.acs,
        "binary_ops": energy.binary_ops,
        "firing_rate": energy.firing_rate,
        "sparsity": stats.sparsity,
        "nonzero_params": stats.remaining,
        "storage_bits": energy.storage_bits,
    }
    return Measurement(values=values, energy=energy)


def compare(recorded: dict[str, Any], measured: dict[str, float]) -> list[dict[str, Any]]:
    """One entry per compared metric: recorded, measured, and whether they are exactly equal."""
    rows = []
    for name in COMPARED:
        if name not in measured:
            continue
        rec = recorded.get(name)
        got = measured[name]
        rows.append({"metric": name, "recorded": rec, "measured": got, "equal": rec is not None and rec == got})
    return rows
