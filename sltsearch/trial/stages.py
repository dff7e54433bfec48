"""The cached stages a trial is made of, each keyed by a content hash of what determines it.

Dense run (per-epoch checkpoints), rewind point (epoch or iteration), a pruning round's retraining, the
random-pruning / random-re-init controls, early-bird masks, and the measurement that turns a trained
model into a `Ticket` (validation and test accuracy, sparsity, energy), stored with the stage it measures
(`sltsearch.trial.measurement`) so a cached stage is not evaluated again. Keys are derived from the stage every
spec field declares it affects (`sltsearch.spec.keys`): data, model (with its resolved sizes and T), recipe and
seed for the dense run; rewind point, the pruning schedule so far and the strategy for a round; a control's
or an early-time ticket's key adds what it is to its round's. So a rerun, another trial or another process
that shares the cache skips what exists.
`sltsearch.trial.run_trial` composes them.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import torch

from sltsearch.data import make_loader
from sltsearch.energy_model import measure_energy
from sltsearch.energy_model.counts import EnergyReport
from sltsearch.models import SpikingClassifier, build_model
from sltsearch.models.registry import resolved_options
from sltsearch.results.record import Ticket
from sltsearch.results.store import stage_compute
from sltsearch.spec import Spec, keys, provenance
from sltsearch.spec.keys import Stage, content_key
from sltsearch.spec.schema import SPIKING_ONLY_PATHS
from sltsearch.spec.space import drop_paths
from sltsearch.system.device import full_precision, seed_everything
from sltsearch.tickets import (
    attach_masks,
    current_masks,
    load_masked_state,
    magnitude_prune,
    mask_distance,
    mask_stats,
    multisp,
    random_masks,
    reinit_state,
    rewind,
)
from sltsearch.tickets.masks import MaskStats
from sltsearch.train import evaluate, fit, lr_at, make_optimizer, state_copy, train_one_epoch
from sltsearch.trial import measurement
from sltsearch.trial.context import TrialContext, TrialSetup


def dense_key(spec: Spec) -> str:
    """The dense run's key: every field declared ``DENSE`` (`sltsearch.spec.keys`), the sizes the model resolves to,
    and users' code and data (their hashes, `sltsearch.spec.provenance`; absent for built-ins, so those keys stay
    as they were). Early-time tickets train the dense run at ``tickets.time_steps_search``: that is its T. The
    ANN twin runs once with ReLU: T and the spiking neuron's parameters are moot and leave its key."""
    t_search = spec.tickets.time_steps_search
    steps = t_search if t_search is not None else spec.model.time_steps
    parts = keys.stage_parts(spec, Stage.DENSE, {"time_steps": lambda: {"model.time_steps": steps}})
    if spec.model.network == "ann":
        parts = drop_paths(parts, SPIKING_ONLY_PATHS)
    return content_key({**parts, "model_options": resolved_options(spec.model), **provenance.stage_inputs(spec)})


def round_key(dense_key: str, spec: Spec, rates: list[float], exclude: tuple[str, ...] = ()) -> str:
    """The key of the IMP round reached by pruning at ``rates`` (every round so far) from the dense run
    ``dense_key``, with ``exclude`` the layers ``tickets.keep_dense`` resolved to: every field declared
    ``ROUND``, each entry present only where it changes what the round computes."""
    t = spec.tickets
    n_rounds = len(spec.round_rates())  # encoding and MultiSp targets are scheduled over all rounds
    derived = {
        "rates": lambda: {"rates": rates},
        "keep_dense": lambda: {"keep_dense": list(exclude)} if exclude else {},
        "early_bird": lambda: {"early_bird": [t.eb_threshold, t.eb_window]} if t.strategy == "early_bird" else {},
        "encoding_sparsity": lambda: (
            {"encoding_sparsity": [t.encoding_sparsity, n_rounds]} if t.encoding_sparsity is not None else {}
        ),
        "multisp": lambda: (
            {"multisp": spec.multisp.model_dump(mode="json"), "multisp_rounds": n_rounds} if spec.multisp.active else {}
        ),
    }
    return content_key({"dense": dense_key, **keys.stage_parts(spec, Stage.ROUND, derived)})


def early_time_key(search_round_key: str, spec: Spec) -> str:
    """The early-time ticket's stage: the last search round's mask, trained once at the full T."""
    return content_key({"search_round": search_round_key, "time_steps": spec.model.time_steps})


def trial_keys(tspec: Spec) -> dict[str, Any]:
    """Every stage key one trial computes and measures: dense, each round, the rewind point, the early-time ticket,
    the controls, and the measurement keys of the search and final T. ``keep_dense`` enters as written: equal
    names resolve to equal layers (the resolved layers need a model)."""
    sspec = search_spec(tspec)
    dense = dense_key(sspec)
    rates = tspec.round_rates()
    exclude = tuple(tspec.tickets.keep_dense)
    rounds = [round_key(dense, sspec, rates[:r], exclude) for r in range(1, len(rates) + 1)]
    cpu = torch.device("cpu")  # one device for every trial of a run: only equality matters here
    keys_: dict[str, Any] = {
        "dense": dense,
        "rounds": rounds,
        "measure": measurement.measurement_key(sspec, cpu),
        "measure_final": measurement.measurement_key(tspec, cpu),
    }
    if tspec.tickets.rewind_iteration is not None:
        keys_["rewind"] = rewind_key(dense, tspec)
    last = rounds[-1] if rounds else dense
    if sspec is not tspec and rounds:
        last = keys_["early_time"] = early_time_key(rounds[-1], tspec)
    keys_["controls"] = {c: control_key(last, c) for c in tspec.tickets.controls}
    return keys_


def trial_identity(tspec: Spec) -> str:
    """`trial_keys` as one key. Two trials with one identity give the same tickets (each stage of one is the
    other's cache hit), so a search runs only one of them (`SearchStudy.repeat_of`): early-time tickets searched
    at the full T are plain IMP, one-shot at p is IMP's first round at p, and the ANN twin's trials ignore T."""
    return content_key(trial_keys(tspec))


def rewind_key(dense_key: str, spec: Spec) -> str:
    """The rewind point at optimizer step ``tickets.rewind_iteration`` of the dense run ``dense_key``."""
    return content_key({"dense": dense_key, "rewind_iteration": spec.tickets.rewind_iteration})


def control_key(round_key: str, control: str) -> str:
    """A control ticket's stage: the round it controls and which control it is."""
    return content_key({"round": round_key, "control": control})


def new_model(setup: TrialSetup) -> SpikingClassifier:
    seed_everything(setup.spec.seed)
    frames = setup.data.time_steps is not None
    model = build_model(setup.spec.model, setup.data.input_shape, setup.data.num_classes, frames=frames)
    model = model.to(setup.device)
    attach_masks(model)
    return model


def train_loader(setup: TrialSetup, stage_seed: int) -> Any:
    return make_loader(setup.data.train, setup.spec.data.batch_size, shuffle=True, seed=stage_seed)


def dense_stage(setup: TrialSetup, model: SpikingClassifier, ctx: TrialContext) -> tuple[dict[str, Any], bool]:
    """Train (or load) the dense network; keeps it in ``model``. Returns its metadata and whether cached."""
    spec, cache, key = setup.spec, ctx.cache, dense_key(setup.spec)
    with cache.lock("dense", key):
        found = cache.fetch("dense", key, ["final"], verify_all=True)  # epoch checkpoints are read later
        if found is not None:
            meta, tensors = found
            model.load_state_dict(tensors["final"])
            return meta, True
        ctx.progress(stage="dense", round=0)
        result = fit(
            model,
            train_loader(setup, spec.seed),
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
        ctx.dense_checkpoints[key] = result.checkpoints
        return meta, False


def dense_checkpoint(setup: TrialSetup, ctx: TrialContext, epoch: int) -> dict[str, torch.Tensor]:
    """The dense run's state at the start of ``epoch`` (0 = initialisation)."""
    key = dense_key(setup.spec)
    if key in ctx.dense_checkpoints:
        return ctx.dense_checkpoints[key][epoch]
    _, tensors = ctx.cache.load("dense", key, [f"epoch_{epoch:03d}"])
    return tensors[f"epoch_{epoch:03d}"]


def rewind_point(setup: TrialSetup, ctx: TrialContext) -> tuple[dict[str, torch.Tensor], int]:
    """(state to rewind the survivors to, epoch the retraining starts at).

    ``rewind_epoch`` k: the dense checkpoint at the start of epoch k. ``rewind_iteration`` k: the dense run
    replayed for k optimizer steps (same init, data order and schedule, so on the same machine it is the
    dense run's own state after k steps; cached as stage ``rewind``); retraining then runs whole epochs
    from the epoch holding step k. Either way the optimizer starts fresh and the LR schedule is the
    dense run's, replayed by absolute epoch.
    """
    spec, k_iter = setup.spec, setup.spec.tickets.rewind_iteration
    if k_iter is None:
        k = spec.tickets.rewind_epoch
        return dense_checkpoint(setup, ctx, k), k
    per_epoch = len(train_loader(setup, spec.seed))
    start_epoch = min(k_iter // per_epoch, spec.train.epochs - 1)
    key = rewind_key(dense_key(spec), spec)
    with ctx.cache.lock("rewind", key):
        if key in ctx.rewind_states:
            return ctx.rewind_states[key], start_epoch
        found = ctx.cache.fetch("rewind", key, ["state"])
        if found is not None:
            state = found[1]["state"]
        else:
            state = pretrain_iterations(setup, k_iter)
            ctx.cache.store("rewind", key, {"iteration": k_iter, "start_epoch": start_epoch}, {"state": state})
        ctx.rewind_states[key] = state
    return state, start_epoch


def pretrain_iterations(setup: TrialSetup, iterations: int) -> dict[str, torch.Tensor]:
    """The dense run's state after ``iterations`` optimizer steps, replayed from the same init and seeds."""
    spec = setup.spec
    model = new_model(setup)
    loader = train_loader(setup, spec.seed)
    optimizer = make_optimizer(model, spec.train)
    done, epoch = 0, 0
    while done < iterations and epoch < spec.train.epochs:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(spec.train, epoch)
        steps = min(len(loader), iterations - done)
        train_one_epoch(
            model, loader if steps == len(loader) else itertools.islice(loader, steps), optimizer, setup.device
        )
        done += steps
        epoch += 1
    return state_copy(model)


def measure(
    setup: TrialSetup,
    model: SpikingClassifier,
    ctx: TrialContext,
    *,
    stage_kind: str,
    round_: int,
    kind: str,
    params: dict[str, Any],
    best_epoch: int,
    epochs: int,
    started: float,
    key: str,
    cached: bool,
) -> Ticket:
    """The ticket of the stage ``stage_kind``/``key`` that ``model`` holds: its measured fields come from the
    stage cache when measured before under the same settings (no evaluation), else from `measured_values`;
    the trial's own fields (number, round, kind, params, time, cached) are filled in here every time."""
    spec = setup.spec
    values = measurement.stage_measurement(setup, ctx, stage_kind, key, lambda: measured_values(setup, model))
    return Ticket(
        trial=ctx.trial_number,
        round=round_,
        kind=kind,
        params=dict(params),
        seed=spec.seed,
        time_steps=spec.model.inference_steps,
        network=spec.model.network,
        best_epoch=best_epoch,
        epochs_trained=epochs,
        wall_time_s=time.perf_counter() - started,
        stage_key=key,
        cached=cached,
        **values,
    )


@contextmanager
def measurement_rng(spec: Spec, device: torch.device | str) -> Iterator[None]:
    """What a measurement runs under: the torch RNG seeded with the spec's seed (a rate encoder draws its spikes
    from it), forked so the caller's RNG is not used up, and full FP32 on CUDA
    (`sltsearch.system.device.full_precision`, so a GPU's numbers re-measure on the CPU). Every measurement of a
    ticket runs under it, so a ticket measured again (`sltsearch energy`, an export's check) sees the spikes its
    trial saw."""
    cuda = [device] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), full_precision(device):
        torch.manual_seed(spec.seed)
        yield


def evaluate_ticket_model(
    model: SpikingClassifier, spec: Spec, val_loader: Any, test_loader: Any, device: torch.device
) -> tuple[MaskStats, EnergyReport, float, float]:
    """Mask statistics, energy on the validation samples, validation and test accuracy, in that order.

    The one evaluation behind a trial's tickets (`measured_values`) and an exported ticket's re-measurement
    (`sltsearch.ticket_io.rebuild.measure_ticket`), so both give the same numbers bit for bit. It runs under
    `measurement_rng`, so a measurement depends on the stage and `sltsearch.trial.measurement.measurement_key` alone.
    """
    with measurement_rng(spec, device):
        stats = mask_stats(current_masks(model))
        constants = spec.objective.energy
        energy = measure_energy(model, val_loader, device, constants, constants.samples)
        val_accuracy = evaluate(model, val_loader, device, amp=False)
        test_accuracy = evaluate(model, test_loader, device, amp=False)
    return stats, energy, val_accuracy, test_accuracy


def measured_values(setup: TrialSetup, model: SpikingClassifier) -> dict[str, Any]:
    """Evaluate ``model`` (`evaluate_ticket_model`): every measured field of its ticket."""
    stats, energy, val_accuracy, test_accuracy = evaluate_ticket_model(
        model, setup.spec, setup.val_loader, setup.test_loader, setup.device
    )
    return dict(
        sparsity=stats.sparsity,
        density=stats.density,
        nonzero_params=stats.remaining,
        prunable_params=stats.total,
        val_accuracy=val_accuracy,
        test_accuracy=test_accuracy,
        energy_uj=energy.energy_uj,
        macs=energy.macs,
        acs=energy.acs,
        firing_rate=energy.firing_rate,
        layer_sparsity=stats.per_layer,
        **multisp.ticket_fields(model),
        binary_ops=energy.binary_ops,
        total_params=energy.params,
        total_nonzero_params=energy.nonzero_params,
        storage_bits=energy.storage_bits,
        dense_storage_bits=energy.dense_storage_bits,
        encoder=energy.encoder,
        encoding_sparsity=stats.per_layer.get(energy.encoding_layer or ""),
        encoding_energy_uj=energy.encoding_energy_uj,
        first_layer_once=energy.first_layer_once,
    )


def emit(ticket: Ticket, tickets: list[Ticket], ctx: TrialContext) -> None:
    tickets.append(ticket)
    ctx.progress(
        stage="ticket",
        round=ticket.round,
        val=ticket.val_accuracy,
        sparsity=ticket.sparsity,
        compute=stage_compute(ticket),
    )
    if ctx.report:
        ctx.report(ticket)


def search_spec(tspec: Spec) -> Spec:
    """The spec masks are searched under: model.time_steps = T_search for early-time tickets.

    The ANN twin has no time steps to shorten: its masks are searched as in plain IMP (time_steps_search is
    ignored)."""
    ts = tspec.tickets.time_steps_search
    if ts is None or ts == tspec.model.time_steps or tspec.model.network == "ann":
        return tspec
    return tspec.model_copy(update={"model": tspec.model.model_copy(update={"time_steps": ts})})


def retrain_ticket(
    setup: TrialSetup,
    model: SpikingClassifier,
    ctx: TrialContext,
    *,
    stage_kind: str,
    ticket_kind: str,
    key: str,
    masks: dict[str, torch.Tensor],
    start_state: dict[str, torch.Tensor],
    start_epoch: int,
    stage_seed: int,
    round_: int,
    params: dict[str, Any],
    started: float,
    extra_meta: dict[str, Any] | None = None,
) -> Ticket:
    """Rewind ``model`` to ``start_state`` under ``masks``, retrain from ``start_epoch`` (or load the result of
    exactly that, cached under ``stage_kind``) and measure it as a ticket of ``ticket_kind``."""
    with ctx.cache.lock(stage_kind, key):
        found = ctx.cache.fetch(stage_kind, key)
        if found is not None:
            meta, tensors = found
            load_masked_state(model, tensors["state"])
            cached = True
        else:
            ctx.progress(stage=stage_kind, round=round_)
            rewind(model, start_state, masks)
            result = fit(
                model,
                train_loader(setup, stage_seed),
                setup.val_loader,
                setup.spec.train,
                setup.device,
                start_epoch=start_epoch,
                on_epoch=lambda e, acc: ctx.progress(stage=stage_kind, round=round_, epoch=e, val=acc),
            )
            meta = {
                "best_epoch": result.best_epoch,
                "val_accuracy": result.val_accuracy,
                "history": result.history,
                "start_epoch": start_epoch,
                **(extra_meta or {}),
            }
            ctx.cache.store(stage_kind, key, meta, {"state": state_copy(model)})
            cached = False
    return measure(
        setup,
        model,
        ctx,
        stage_kind=stage_kind,
        round_=round_,
        kind=ticket_kind,
        params=params,
        best_epoch=meta["best_epoch"],
        epochs=setup.spec.train.epochs - start_epoch,
        started=started,
        key=key,
        cached=cached,
    )


def early_bird_masks(
    setup: TrialSetup, ctx: TrialContext, rate: float, exclude: tuple[str, ...]
) -> tuple[dict[str, torch.Tensor], int, list[float]]:
    """Early-Bird ticket (You et al., ICLR 2020): after every dense epoch e, the magnitude mask at ``rate``;
    stop at the first epoch whose last ``eb_window`` consecutive mask distances are all < ``eb_threshold``.
    Returns (mask, epoch it was drawn at, distances); without convergence, the last epoch's mask."""
    spec = setup.spec
    scratch = new_model(setup)
    previous: dict[str, torch.Tensor] | None = None
    distances: list[float] = []
    masks: dict[str, torch.Tensor] = {}
    for epoch in range(1, spec.train.epochs):
        state = {k: v for k, v in dense_checkpoint(setup, ctx, epoch).items() if not k.endswith("weight_mask")}
        scratch.load_state_dict(state, strict=False)
        attach_masks(scratch)
        masks = magnitude_prune(scratch, rate, spec.tickets.scope, exclude)
        if previous is not None:
            distances.append(mask_distance(previous, masks))
            window = distances[-spec.tickets.eb_window :]
            if len(window) == spec.tickets.eb_window and max(window) < spec.tickets.eb_threshold:
                return masks, epoch, distances
        previous = masks
    return masks, spec.train.epochs - 1, distances


def fresh_weights(setup: TrialSetup, seed: int) -> dict[str, torch.Tensor]:
    """A freshly initialised model's state (another seed) for the random re-init control."""
    fresh = new_model(replace(setup, spec=setup.spec.model_copy(update={"seed": seed})))
    return state_copy(fresh)


def controls(
    setup: TrialSetup,
    ctx: TrialContext,
    *,
    round_: int,
    round_key: str,
    masks: dict[str, torch.Tensor],
    start_state: dict[str, torch.Tensor],
    start_epoch: int,
    params: dict[str, Any],
    tickets: list[Ticket],
) -> None:
    """The round's control tickets: same per-layer density at random positions, or same mask, fresh weights.
    Both start from the same epoch and train for the same budget as the ticket they control."""
    spec = setup.spec
    for control in spec.tickets.controls:
        started = time.perf_counter()
        key = control_key(round_key, control)
        seed = spec.seed + 1_000 * round_ + 17
        if control == "random_prune":
            ctl_masks, ctl_state = random_masks(masks, seed), start_state
        else:
            ctl_masks, ctl_state = masks, reinit_state(start_state, fresh_weights(setup, seed))
        ticket = retrain_ticket(
            setup,
            new_model(setup),
            ctx,
            stage_kind="control",
            ticket_kind=control,
            key=key,
            masks=ctl_masks,
            start_state=ctl_state,
            start_epoch=start_epoch,
            stage_seed=spec.seed + round_,
            round_=round_,
            params=params,
            started=started,
        )
        emit(ticket, tickets, ctx)
