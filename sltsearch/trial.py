"""`run_trial`: one trial of a search, free of any driver (Optuna, Ray) so every backend reuses it.

A trial applies its searched values to the spec, gets the dense run and the rewind point from the stage
cache (or trains them), then runs IMP rounds: prune a fraction of the remaining weights by magnitude,
rewind the survivors to their values at epoch k, retrain from k to the end of the recipe, evaluate and
measure energy. Every round's ticket is reported as soon as it exists; round 0 is the dense network.
Selection of the epoch inside every training run uses the validation split only; test accuracy is
measured and stored, never used to choose.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from sltsearch.cache import StageCache, content_key
from sltsearch.data import DataSplits, build_data, make_loader
from sltsearch.device import resolve_device, seed_everything
from sltsearch.energy import measure_energy
from sltsearch.models import SpikingClassifier, build_model
from sltsearch.spec import Spec
from sltsearch.ticket import Ticket
from sltsearch.tickets import attach_masks, current_masks, magnitude_prune, mask_stats, rewind
from sltsearch.train import evaluate, fit, state_copy


class TrialAborted(Exception):
    """Raised by a reporter to stop a trial early (e.g. a driver pruning it); earlier tickets stand."""


@dataclass
class TrialContext:
    """What a driver hands a trial: its number, the stage cache, where to report, and the device."""

    trial_number: int = 0
    cache: StageCache = field(default_factory=lambda: StageCache(None))
    report: Callable[[Ticket], None] | None = None
    on_progress: Callable[[dict[str, Any]], None] | None = None
    device: str | None = None
    data_memo: dict[str, DataSplits] = field(default_factory=dict)

    def progress(self, **event: Any) -> None:
        if self.on_progress:
            self.on_progress({"trial": self.trial_number, **event})


@dataclass
class _Setup:
    spec: Spec
    data: DataSplits
    device: torch.device
    train_loader: Any
    val_loader: Any
    test_loader: Any


def _dense_key(spec: Spec) -> str:
    train = spec.train.model_dump(mode="json", exclude={"device"})
    return content_key(
        {
            "data": spec.data.model_dump(mode="json"),
            "model": spec.model.model_dump(mode="json"),
            "train": train,
            "seed": spec.seed,
        }
    )


def _round_key(dense_key: str, spec: Spec, rates: list[float]) -> str:
    return content_key(
        {
            "dense": dense_key,
            "rewind_epoch": spec.tickets.rewind_epoch,
            "scope": spec.tickets.scope,
            "rates": rates,
        }
    )


def _new_model(setup: _Setup) -> SpikingClassifier:
    seed_everything(setup.spec.seed)
    frames = setup.data.time_steps is not None
    model = build_model(setup.spec.model, setup.data.input_shape, setup.data.num_classes, frames=frames)
    model = model.to(setup.device)
    attach_masks(model)
    return model


def _train_loader(setup: _Setup, stage_seed: int) -> Any:
    return make_loader(setup.data.train, setup.spec.data.batch_size, shuffle=True, seed=stage_seed)


def _dense_stage(setup: _Setup, model: SpikingClassifier, ctx: TrialContext) -> tuple[dict[str, Any], bool]:
    """Train (or load) the dense network; keeps it in ``model``. Returns its metadata and whether cached."""
    spec, cache, key = setup.spec, ctx.cache, _dense_key(setup.spec)
    with cache.lock("dense", key):
        if cache.has("dense", key):
            meta, tensors = cache.load("dense", key, ["final"])
            model.load_state_dict(tensors["final"])
            return meta, True
        ctx.progress(stage="dense", round=0)
        result = fit(
            model,
            _train_loader(setup, spec.seed),
            setup.val_loader,
            spec.train,
            setup.device,
            keep_checkpoints=True,
            on_epoch=lambda e, acc: ctx.progress(stage="dense", epoch=e, val=acc),
        )
        meta = {
            "best_epoch": result.best_epoch,
            "val_accuracy": result.val_accuracy,
            "history": result.history,
        }
        tensors = {f"epoch_{k:03d}": s for k, s in result.checkpoints.items()}
        tensors["final"] = state_copy(model)
        cache.store("dense", key, meta, tensors)
        setup_rewind_memo[key] = result.checkpoints
        return meta, False


# checkpoints of dense runs trained in this process, so a trial without a disk cache can still rewind
setup_rewind_memo: dict[str, dict[int, dict[str, torch.Tensor]]] = {}


def _rewind_state(setup: _Setup, ctx: TrialContext) -> dict[str, torch.Tensor]:
    key, k = _dense_key(setup.spec), setup.spec.tickets.rewind_epoch
    if key in setup_rewind_memo:
        return setup_rewind_memo[key][k]
    _, tensors = ctx.cache.load("dense", key, [f"epoch_{k:03d}"])
    return tensors[f"epoch_{k:03d}"]


def _measure(
    setup: _Setup,
    model: SpikingClassifier,
    ctx: TrialContext,
    *,
    round_: int,
    kind: str,
    params: dict[str, Any],
    best_epoch: int,
    epochs: int,
    started: float,
    key: str,
    cached: bool,
) -> Ticket:
    spec = setup.spec
    stats = mask_stats(current_masks(model))
    energy = measure_energy(
        model, setup.val_loader, setup.device, spec.objective.energy, spec.objective.energy.samples
    )
    return Ticket(
        trial=ctx.trial_number,
        round=round_,
        kind=kind,
        params=dict(params),
        seed=spec.seed,
        time_steps=spec.model.time_steps,
        sparsity=stats.sparsity,
        density=stats.density,
        nonzero_params=stats.remaining,
        prunable_params=stats.total,
        val_accuracy=evaluate(model, setup.val_loader, setup.device),
        test_accuracy=evaluate(model, setup.test_loader, setup.device),
        energy_uj=energy.energy_uj,
        macs=energy.macs,
        acs=energy.acs,
        firing_rate=energy.firing_rate,
        best_epoch=best_epoch,
        epochs_trained=epochs,
        wall_time_s=time.perf_counter() - started,
        stage_key=key,
        cached=cached,
        layer_sparsity=stats.per_layer,
        binary_ops=energy.binary_ops,
        total_params=energy.params,
        total_nonzero_params=energy.nonzero_params,
        storage_bits=energy.storage_bits,
        dense_storage_bits=energy.dense_storage_bits,
    )


def _emit(ticket: Ticket, tickets: list[Ticket], ctx: TrialContext) -> None:
    tickets.append(ticket)
    ctx.progress(stage="ticket", round=ticket.round, val=ticket.val_accuracy, sparsity=ticket.sparsity)
    if ctx.report:
        ctx.report(ticket)


def prepare(spec: Spec, ctx: TrialContext) -> _Setup:
    """Data, loaders and device for a concrete (already parameterised) spec."""
    data_key = content_key(spec.data.model_dump(mode="json"))
    if data_key not in ctx.data_memo:
        ctx.data_memo[data_key] = build_data(spec.data)
    data = ctx.data_memo[data_key]
    device = resolve_device(ctx.device or spec.train.device)
    ebs = spec.data.eval_batch_size
    return _Setup(
        spec,
        data,
        device,
        None,
        make_loader(data.val, ebs, shuffle=False),
        make_loader(data.test, ebs, shuffle=False),
    )


def run_trial(spec: Spec, params: dict[str, Any], ctx: TrialContext | None = None) -> list[Ticket]:
    """Run one trial: the dense ticket (round 0), then one ticket per IMP round."""
    ctx = ctx or TrialContext()
    tspec = spec.with_params(params)
    setup = prepare(tspec, ctx)
    tickets: list[Ticket] = []

    started = time.perf_counter()
    model = _new_model(setup)
    dense_meta, cached = _dense_stage(setup, model, ctx)
    dense_key = _dense_key(tspec)
    _emit(
        _measure(
            setup,
            model,
            ctx,
            round_=0,
            kind="dense",
            params=params,
            best_epoch=dense_meta["best_epoch"],
            epochs=tspec.train.epochs,
            started=started,
            key=dense_key,
            cached=cached,
        ),
        tickets,
        ctx,
    )

    rates: list[float] = []
    k = tspec.tickets.rewind_epoch
    for round_ in range(1, tspec.tickets.rounds + 1):
        started = time.perf_counter()
        rates.append(tspec.tickets.prune_rate)
        key = _round_key(dense_key, tspec, rates)
        with ctx.cache.lock("imp", key):
            cached = ctx.cache.has("imp", key)
            if cached:
                meta, tensors = ctx.cache.load("imp", key)
                attach_masks(
                    model,
                    {
                        n[: -len(".weight_mask")]: v
                        for n, v in tensors["state"].items()
                        if n.endswith(".weight_mask")
                    },
                )
                model.load_state_dict(tensors["state"])
            else:
                ctx.progress(stage="imp", round=round_)
                masks = magnitude_prune(model, tspec.tickets.prune_rate, tspec.tickets.scope)
                rewind(model, _rewind_state(setup, ctx), masks)
                result = fit(
                    model,
                    _train_loader(setup, tspec.seed + round_),
                    setup.val_loader,
                    tspec.train,
                    setup.device,
                    start_epoch=k,
                    on_epoch=lambda e, acc, r=round_: ctx.progress(stage="imp", round=r, epoch=e, val=acc),
                )
                meta = {
                    "best_epoch": result.best_epoch,
                    "val_accuracy": result.val_accuracy,
                    "history": result.history,
                }
                ctx.cache.store("imp", key, meta, {"state": state_copy(model)})
        ticket = _measure(
            setup,
            model,
            ctx,
            round_=round_,
            kind="imp",
            params=params,
            best_epoch=meta["best_epoch"],
            epochs=tspec.train.epochs - k,
            started=started,
            key=key,
            cached=cached,
        )
        _emit(ticket, tickets, ctx)
    return tickets
