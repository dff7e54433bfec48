"""`load_ticket` and `evaluate_ticket`: an export folder back to a model, and its numbers re-measured.

Both read nothing but the folder: ``ticket.json`` holds the spec and the model's input/output shape, the
safetensors files the weights, masks and MultiSp switches. Every file is checked against its recorded
sha256 and size first; a damaged one is refused with a one-line error naming it.

An export folder is data, and data never runs code by itself: a ticket whose model is a user's network
(``model.name: "pkg.module:make_net"``) is built only when the caller says the code is trusted
(``trust_code=True``, ``--trust-code``), as Hugging Face's ``trust_remote_code``, and the folder itself is never
searched for that module (`sltsearch.models.user.reading`). Built-in families and installed plugins need no flag.
The model ``ticket.json`` describes is first built on the meta device (no
memory) and its shapes compared with the weights file, so a hostile ``model_io`` costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from sltsearch.data import build_data
from sltsearch.errors import UserError
from sltsearch.models import SpikingClassifier, build_model
from sltsearch.models.user import UntrustedCode as UntrustedCode  # raised for a ticket naming a module
from sltsearch.models.user import check_allowed, is_import_path, reading
from sltsearch.spec import Spec
from sltsearch.spec.wording import format_validation_error
from sltsearch.system.device import resolve_device, seed_everything
from sltsearch.ticket_io.budget import Budget, memory_budget
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
        raise TicketFileError(format_validation_error(str(folder / MANIFEST) + " spec", err, Spec)) from None


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


def check_trusted(folder: Path, spec: Spec, trust_code: bool) -> None:
    """Refuse a ticket whose model is code named by import path unless the caller trusts it (or this process
    already runs that code for the user: `sltsearch.models.user.check_allowed`)."""
    with reading(folder, trust_code):
        check_allowed(spec.model.name, str(folder / MANIFEST))


def _check_shapes(folder: Path, spec: Spec, io: dict[str, Any], state: dict[str, torch.Tensor]) -> None:
    """The model ``ticket.json`` describes, built on the meta device (no memory, no RNG), has the shapes of the
    weights file: a ``model_io`` that does not match is refused before a real model is allocated."""
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            seed_everything(spec.seed)
            model = build_model(spec.model, tuple(io["input_shape"]), int(io["num_classes"]), frames=bool(io["frames"]))
    except UserError:
        if is_import_path(spec.model.name):
            return  # a (trusted) user's builder that cannot run on the meta device: the real build checks shapes
        raise
    for key, value in model.state_dict().items():
        held = state.get(key)
        if held is None:
            raise TicketFileError(
                f"{folder / MANIFEST}: its spec and model_io build a model with '{key}', which the files lack: "
                "ticket.json does not describe these weights; re-export the ticket"
            )
        if tuple(held.shape) != tuple(value.shape):
            raise TicketFileError(
                f"{folder / MANIFEST}: its spec and model_io build '{key}' of shape {tuple(value.shape)}, the files "
                f"hold {tuple(held.shape)}: ticket.json does not describe these weights; re-export the ticket"
            )


def load_ticket(
    folder: str | Path, device: str | torch.device = "cpu", *, trust_code: bool = False
) -> tuple[SpikingClassifier, TicketInfo]:
    """The exported ticket as a plain torch module in eval mode, and what the folder says about it.

    ``model(x)`` takes a float batch ``[B, *input_shape]`` and returns logits ``[B, classes]`` (the mean
    over time steps); call ``model.reset_state()`` between independent batches. A ticket of a user's network
    (an import path) needs ``trust_code=True``: building it imports and runs that code.
    """
    folder = Path(folder)
    info, state = _read(folder, trust_code)
    with reading(folder, trust_code):
        model = build_ticket_model(info.spec, info.manifest["model_io"], state, torch.device(device), where=str(folder))
    return model, info


def _read(folder: Path, trust_code: bool) -> tuple[TicketInfo, dict[str, torch.Tensor]]:
    """What an export folder says and its verified state, every check passed (nothing built, no code run)."""
    manifest = read_manifest(folder)
    spec = _spec_of(folder, manifest)
    check_trusted(folder, spec, trust_code)
    files = read_tensors(folder, manifest)
    _check_pruned_zero(folder, files)
    state = join_state(files)
    with reading(folder, trust_code):
        _check_shapes(folder, spec, manifest["model_io"], state)
    return TicketInfo(path=folder, spec=spec, ticket=manifest["ticket"], manifest=manifest), state


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
    folder: str | Path,
    data_root: str | Path | None = None,
    device: str | None = None,
    *,
    trust_code: bool = False,
    max_memory_gb: float | None = None,
    on_budget: Callable[[Budget], None] | None = None,
) -> Evaluation:
    """Rebuild the ticket from its folder alone, re-run validation + test and the energy count, compare.

    Its worst-case memory is worked out first (`sltsearch.ticket_io.budget`) and handed to ``on_budget``;
    above ``max_memory_gb`` (8 GB by default) the ticket is refused before anything is allocated."""
    folder = Path(folder)
    info, state = _read(folder, trust_code)
    spec, manifest = info.spec, info.manifest
    with reading(folder, trust_code):
        budget = memory_budget(spec, manifest["model_io"], max_memory_gb, str(folder / MANIFEST))
    if on_budget is not None:
        on_budget(budget)
    dev = resolve_device(device or spec.train.device)
    data = build_data(with_data_root(spec, data_root).data)
    io = manifest["model_io"]
    if list(data.input_shape) != list(io["input_shape"]) or int(data.num_classes) != int(io["num_classes"]):
        raise TicketFileError(
            f"{folder / MANIFEST}: the data now gives inputs {tuple(data.input_shape)} with {data.num_classes} "
            f"classes, the ticket was exported for {tuple(io['input_shape'])} with {io['num_classes']}"
        )
    with reading(folder, trust_code):
        model = build_ticket_model(spec, io, state, dev, where=str(folder))
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
