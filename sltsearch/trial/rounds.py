"""`run_trial`: one trial of a search, free of any driver (Optuna, Ray) so every backend reuses it.

A trial applies its searched values to the spec, gets the dense run and the rewind point from the stage
cache (or trains them), then runs IMP rounds: prune a fraction of the remaining weights by magnitude,
rewind the survivors to their values at epoch k, retrain from k to the end of the recipe, evaluate and
measure energy. Every round's ticket is reported as soon as it exists; round 0 is the dense network.
Selection of the epoch inside every training run uses the validation split only; test accuracy is
measured and stored, never used to choose.

Strategies (``tickets.strategy``): ``imp`` (rounds, or rounds derived from ``target_sparsity``),
``one_shot`` (one round straight to the target) and ``early_bird`` (the mask is drawn from the dense
run's per-epoch checkpoints as soon as consecutive masks differ by less than ``eb_threshold``; the
dense trajectory is the same, so no extra training is needed). With ``search.paths`` the rounds go on while
the path's tickets can still reach the front (`sltsearch.trial.paths`). ``time_steps_search`` < T gives
early-time tickets: dense run and rounds at T_search, then the final mask trained once at T.
``controls`` add random-pruning / random-re-init tickets on the same masks (kinds ``random_prune`` /
``random_reinit``). The returned list always ends with the trial's ticket (the last main round);
controls and early-time search rounds (kind ``et_search``) are stored but never the trial's value.
Every stage is cached under a content hash of what determines it (data, model incl. T, recipe, seed,
rewind point, pruning schedule so far, strategy, control), so a rerun skips what exists.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from sltsearch.data import make_loader
from sltsearch.errors import SpecError
from sltsearch.results.record import Ticket
from sltsearch.spec import Spec
from sltsearch.tickets import (
    current_masks,
    encoding,
    magnitude_prune,
    multisp,
    resolve_layers,
)
from sltsearch.trial import paths, stages
from sltsearch.trial.context import TrialAborted, TrialContext, TrialSetup, prepare
from sltsearch.trial.stages import early_bird_masks, pretrain_iterations

__all__ = [
    "TrialAborted",
    "TrialContext",
    "TrialSetup",
    "early_bird_masks",
    "prepare",
    "pretrain_iterations",
    "run_trial",
]


def run_trial(spec: Spec, params: dict[str, Any], ctx: TrialContext | None = None) -> list[Ticket]:
    """Run one trial: the dense ticket (round 0), then one ticket per pruning round (plus controls).

    The last element of the returned list is the trial's ticket (the last main round, at the full T).
    """
    ctx = ctx or TrialContext()
    tspec = spec.with_params(params)
    sspec = stages.search_spec(tspec)
    early_time = sspec is not tspec
    setup = prepare(sspec, ctx)
    tickets: list[Ticket] = []

    started = time.perf_counter()
    model = stages.new_model(setup)
    dense_meta, cached = stages.dense_stage(setup, model, ctx)
    dense_key = stages.dense_key(sspec)
    stages.emit(
        stages.measure(
            setup,
            model,
            ctx,
            stage_kind="dense",
            round_=0,
            kind="dense",
            params=params,
            best_epoch=dense_meta["best_epoch"],
            epochs=sspec.train.epochs,
            started=started,
            key=dense_key,
            cached=cached,
        ),
        tickets,
        ctx,
    )
    final = tickets[-1]

    t = sspec.tickets
    start = _branch(sspec, params, ctx)
    all_rates = paths.plan(sspec, start)
    exclude = resolve_layers(model, t.keep_dense)
    # the encoding layer's own target (tickets.encoding_sparsity): out of the shared ranking, pruned on its own
    enc = encoding.encoding_layer(model) if t.encoding_sparsity is not None else None
    if enc is not None and enc in exclude:
        raise SpecError(f"tickets.encoding_sparsity prunes {enc}, which tickets.keep_dense keeps dense")
    ranked_exclude = exclude + ((enc,) if enc else ())
    start_state, k = stages.rewind_point(setup, ctx)
    # MultiSp hook: fixes the patch mask / binarization on the trained dense model, carries them into the
    # rewind state and prunes ConvPEP / attention / MLP to their own targets (None unless spec.multisp is set).
    # Its patch scoring (a forward pass over patch_score_samples training samples) still runs when every round
    # is cached: it is not a ticket's measurement (those are stored with their stages, stages.measure) but the
    # input the next uncached round's masks are drawn from, and which round is uncached is known only later.
    score_loader = make_loader(setup.data.train, sspec.data.eval_batch_size, shuffle=False)
    msp = multisp.MultiSp.start(sspec, model, score_loader, setup.device)
    if msp is not None:
        start_state = msp.ticket_state(start_state)
    round_kind = {"imp": "imp", "one_shot": "one_shot", "early_bird": "early_bird"}[t.strategy]
    rates: list[float] = []
    key = dense_key
    path = [final]  # the path's main tickets so far, the dense one first (`sltsearch.trial.paths`)
    for round_, rate in enumerate(all_rates, start=1):
        # the rounds up to a branch point are its parent's (cached, and let through when the branch was chosen)
        why = None if round_ <= len(start) else paths.stop_reason(
            sspec, path, ctx.front() if ctx.front else [], rate, ctx.budget_left() if ctx.budget_left else None
        )
        if why is not None:
            ctx.progress(stage="path_end", round=round_ - 1, why=why)
            break
        started = time.perf_counter()
        rates.append(rate)
        key = stages.round_key(dense_key, sspec, rates, exclude)
        extra: dict[str, Any] = {}
        if t.strategy == "early_bird":
            masks, eb_epoch, distances = stages.early_bird_masks(setup, ctx, rate, exclude)
            extra = {"eb_epoch": eb_epoch, "eb_distances": distances}
        elif msp is not None:
            masks = msp.prune(model, rate, t.scope, round_, len(all_rates), ranked_exclude)
        else:
            masks = magnitude_prune(model, rate, t.scope, ranked_exclude)
        if enc is not None and t.encoding_sparsity is not None:
            masks[enc] = encoding.prune_encoding(model, enc, t.encoding_sparsity, round_, len(all_rates))
        ticket = stages.retrain_ticket(
            setup,
            model,
            ctx,
            stage_kind="imp",
            ticket_kind="et_search" if early_time else round_kind,
            key=key,
            masks=masks,
            start_state=start_state,
            start_epoch=k,
            stage_seed=sspec.seed + round_,
            round_=round_,
            params=params,
            started=started,
            extra_meta=extra,
        )
        masks = current_masks(model)
        ticket.rates = list(rates)
        stages.emit(ticket, tickets, ctx)
        final = ticket
        path.append(ticket)
        if not early_time:
            stages.controls(
                setup,
                ctx,
                round_=round_,
                round_key=key,
                masks=masks,
                start_state=start_state,
                start_epoch=k,
                params=params,
                tickets=tickets,
            )

    if early_time and all_rates:
        # early-time ticket: the mask found at T_search, rewound and trained once at the full T
        started = time.perf_counter()
        masks = current_masks(model)
        fsetup = replace(setup, spec=tspec)
        model.time_steps = tspec.model.time_steps
        fkey = stages.early_time_key(key, tspec)
        final = stages.retrain_ticket(
            fsetup,
            model,
            ctx,
            stage_kind="imp",
            ticket_kind="early_time",
            key=fkey,
            masks=masks,
            start_state=start_state,
            start_epoch=k,
            stage_seed=tspec.seed + len(all_rates) + 1,
            round_=len(all_rates),
            params=params,
            started=started,
        )
        final.rates = list(all_rates)
        stages.emit(final, tickets, ctx)
        stages.controls(
            fsetup,
            ctx,
            round_=len(all_rates),
            round_key=fkey,
            masks=masks,
            start_state=start_state,
            start_epoch=k,
            params=params,
            tickets=tickets,
        )
    if sspec.search.paths is not None:
        final = paths.final_ticket(sspec, path, ctx.front() if ctx.front else [])
    return [tk for tk in tickets if tk is not final] + [final]


def _branch(spec: Spec, params: dict[str, Any], ctx: TrialContext) -> list[float]:
    """The rates of the ticket this path starts from (`paths.branch_point`; empty: the dense network): the one a
    replay hands in, else chosen against the run's tickets and handed to ``ctx.on_branch`` to be recorded."""
    if spec.search.paths is None:
        return []
    if ctx.branch is not None:
        return list(ctx.branch)
    start = paths.branch_point(spec, params, ctx.front() if ctx.front else [])
    if ctx.on_branch:
        ctx.on_branch(start)
    if start:
        ctx.progress(stage="branch", round=len(start), rounds=len(paths.plan(spec, start)))
    return start
