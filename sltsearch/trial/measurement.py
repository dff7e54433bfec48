"""A stage's measurement (accuracy, energy, sparsity), kept with the stage so a cache hit never evaluates again.

A ticket row has two parts. What the trial decides (trial number, round, kind, params, seed, T, network, best epoch,
epochs trained, wall time, stage key, cached, status, node...: `TRIAL_FIELDS`) is filled in by the trial every
time. Everything else (`MEASURED_FIELDS`: validation and test accuracy, energy and op counts, firing rate,
sparsity per level, storage bits, MultiSp and encoding-layer columns) depends only on the stage's weights and
on how it is measured, so it is stored in the stage's folder under a *measurement key* (`measurement_key`)
and read back on a hit.

The measurement key holds everything the numbers depend on beyond the stage's weights (which the stage key
already names): the spec fields declared ``MEASURE`` (`sltsearch.spec.keys`: the objective's energy settings,
the evaluation batch size, the seed the measurement runs under, from which a rate encoder draws its spikes), the
device kind (CUDA measures in IEEE FP32 since the first GPU run, key ``cuda-fp32``; its kernels sum in another
order than the CPU's, so a potential within rounding of the threshold may spike on one and not the other), the
list of measured fields (a new ticket column re-measures old stages once) and `MEASURE_VERSION`. sltsearch's own
code is not hashed into stage keys (only users' networks and data are, `sltsearch.spec.provenance`), so, as for
training, a change to how sltsearch measures is declared by bumping `MEASURE_VERSION`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

import torch

from sltsearch.results.record import Ticket
from sltsearch.spec import Spec, keys
from sltsearch.spec.keys import Stage, content_key
from sltsearch.trial.context import TrialContext, TrialSetup

# bump when sltsearch's measurement changes its numbers (energy counting rules, accuracy evaluation, a field's
# meaning), so stored measurements are taken again instead of reused
MEASURE_VERSION = 1

# Ticket fields the trial fills in; every other field is measured on the stage's model
TRIAL_FIELDS = frozenset(
    {
        "trial",
        "round",
        "kind",
        "params",
        "seed",
        "time_steps",
        "network",
        "best_epoch",
        "epochs_trained",
        "wall_time_s",
        "stage_key",
        "cached",
        "status",
        "feasible",
        "node",
        "measured_at",
        "rates",
    }
)
MEASURED_FIELDS = tuple(sorted(f.name for f in fields(Ticket) if f.name not in TRIAL_FIELDS))


def measurement_key(spec: Spec, device: torch.device) -> str:
    """What a measurement depends on beyond the weights of the stage it measures (see the module docstring):
    the fields declared ``MEASURE`` (`sltsearch.spec.keys`), the device kind, the measured fields, the version."""
    parts = keys.stage_parts(spec, Stage.MEASURE)
    # "cuda-fp32": CUDA measurements taken under FP16 autocast (before the first GPU run) are not reused
    kind = "cuda-fp32" if device.type == "cuda" else device.type
    return content_key({**parts, "version": MEASURE_VERSION, "fields": MEASURED_FIELDS, "device": kind})


def plain(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with numpy / torch scalars as Python numbers, so they survive JSON exactly (repr round trip)."""

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, (bool, int, str)) or value is None:
            return value
        if isinstance(value, float):
            return value
        if hasattr(value, "item"):
            return convert(value.item())
        raise TypeError(f"measured value {value!r} ({type(value).__name__}) cannot be stored as JSON")

    unknown = set(values) - set(MEASURED_FIELDS)
    if unknown:
        raise ValueError(
            f"not measured ticket fields: {sorted(unknown)} (see sltsearch.trial.measurement.TRIAL_FIELDS)"
        )
    return {k: convert(v) for k, v in values.items()}


def stage_measurement(
    setup: TrialSetup,
    ctx: TrialContext,
    stage_kind: str,
    stage_key: str,
    measure: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """The stage's measured fields: read back when stored under this setup's measurement key, else ``measure()``
    (which evaluates the model holding the stage) and stored beside the stage for the next trial or run.

    Runs under the stage's lock, so concurrent trials sharing a cache measure a stage once per key."""
    mkey = measurement_key(setup.spec, setup.device)
    with ctx.cache.lock(stage_kind, stage_key):
        stored = ctx.cache.fetch_measured(stage_kind, stage_key, mkey)
        if stored is not None and set(stored) <= set(MEASURED_FIELDS):
            return stored
        values = plain(measure())
        ctx.cache.store_measured(stage_kind, stage_key, mkey, values)
    return values

