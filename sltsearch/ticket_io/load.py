"""`load_ticket` and `evaluate_ticket`: an export folder back to a model, and its numbers re-measured.

Both read nothing but the folder: ``ticket.json`` holds the spec and the model's input/output shape, the
safetensors files the weights, masks and MultiSp switches. Every file is checked against its recorded
sha256 and size first; a damaged one is refused with a one-line error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from sltsearch.data import build_data
from sltsearch.device import resolve_device
from sltsearch.models import SpikingClassifier
from sltsearch.spec import Spec, format_validation_error
from sltsearch.ticket_io.bundle import (
    MANIFEST,
    MASKS,
    WEIGHTS,
    TicketFileError,
    join_state,
    read_manifest,
    read_tensors,
)
from sltsearch.ticket_io.export import with_data_root
from sltsearch.ticket_io.rebuild import build_ticket_model, compare, measure_ticket


@dataclass
class TicketInfo:
    """What an export folder says about its ticket: the concrete spec, its table row, the whole manifest."""

    path: Path
    spec: Spec
    ticket: dict[str, Any]
    manifest: dict[str, Any]

    @property
    def ticket_id(self) -> str:
        return str(self.manifest["source"]["ticket_id"])


def _spec_of(folder: Path, manifest: dict[str, Any]) -> Spec:
    try:
        return Spec.model_validate(manifest["spec"])
    except ValidationError as err:
        raise TicketFileError(format_validation_error(str(folder / MANIFEST) + " spec", err)) from None


def _check_pruned_zero(folder: Path, files: dict[str, dict[str, torch.Tensor]]) -> None:
    """Weights under a False mask entry must be zero in the file (export folds the masks in), so the
    weights file alone is the ticket; checked before the masks are applied again on loading."""
    weights = files.get(WEIGHTS, {})
    for layer, mask in files.get(MASKS, {}).items():
        weight = weights.get(f"{layer}.weight")
        if weight is None or weight.shape != mask.shape:
            raise TicketFileError(f"{folder / MASKS}: mask {layer} has no weight of its shape in {WEIGHTS}")
        if bool((weight[~mask.bool()] != 0).any()):
            raise TicketFileError(f"{folder / WEIGHTS}: {layer} has non-zero pruned weights; the file is not an export")


def load_ticket(folder: str | Path, device: str | torch.device = "cpu") -> tuple[SpikingClassifier, TicketInfo]:
    """The exported ticket as a plain torch module in eval mode, and what the folder says about it.

    ``model(x)`` takes a float batch ``[B, *input_shape]`` and returns logits ``[B, classes]`` (the mean
    over time steps); call ``model.reset_state()`` between independent batches.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    spec = _spec_of(folder, manifest)
    files = read_tensors(folder, manifest)
    _check_pruned_zero(folder, files)
    model = build_ticket_model(spec, manifest["model_io"], join_state(files), torch.device(device), where=str(folder))
    return model, TicketInfo(path=folder, spec=spec, ticket=manifest["ticket"], manifest=manifest)


@dataclass
class Evaluation:
    """Recorded vs re-measured metrics of an exported ticket."""

    info: TicketInfo
    device: str
    metrics: list[dict[str, Any]]
    notes: list[str]

    @property
    def matches(self) -> bool:
        return all(m["equal"] for m in self.metrics)


def evaluate_ticket(
    folder: str | Path, data_root: str | Path | None = None, device: str | None = None
) -> Evaluation:
    """Rebuild the ticket from its folder alone, re-run validation + test and the energy count, compare."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    spec = _spec_of(folder, manifest)
    dev = resolve_device(device or spec.train.device)
    model, info = load_ticket(folder, dev)
    data = build_data(with_data_root(spec, data_root).data)
    io = manifest["model_io"]
    if list(data.input_shape) != list(io["input_shape"]) or int(data.num_classes) != int(io["num_classes"]):
        raise TicketFileError(
            f"{folder / MANIFEST}: the data now gives inputs {tuple(data.input_shape)} with {data.num_classes} "
            f"classes, the ticket was exported for {tuple(io['input_shape'])} with {io['num_classes']}"
        )
    measured = measure_ticket(model, spec, data, dev)
    notes = []
    if spec.model.encoder == "rate" and not io.get("frames"):
        notes.append(
            "rate encoder: inputs are random spike trains; evaluate draws them from the spec's seed, the search "
            "drew others, so its numbers differ from the recorded ones by sampling noise"
        )
    check = manifest.get("export_check", {})
    if check.get("device") and check["device"] != str(dev):
        notes.append(f"exported on {check['device']}, evaluated on {dev}: numbers can differ in the last digits")
    return Evaluation(info=info, device=str(dev), metrics=compare(info.ticket, measured.values), notes=notes)
