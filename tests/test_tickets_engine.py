"""The lottery-ticket engine (issue #3): scopes, schedules, keep_dense, controls, rewinding, early-time
tickets, early-bird tickets and idempotent stages."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import tiny_spec_dict
from torch import nn

import sltsearch.trial.stages as stages
from sltsearch.models import build_model
from sltsearch.spec import parse_spec
from sltsearch.spec.schema import rates_to_target
from sltsearch.tickets import (
    attach_masks,
    current_masks,
    magnitude_prune,
    mask_distance,
    mask_stats,
    prunable_layers,
    random_masks,
    reinit_state,
    resolve_layers,
    rewind,
)
from sltsearch.trial import TrialContext, run_trial
from sltsearch.trial.cache import StageCache
from sltsearch.trial.context import prepare
from sltsearch.trial.stages import pretrain_iterations


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model(parse_spec({"model": {"time_steps": 2}}).model, (1, 8, 8), 10)
    attach_masks(model)
    return model


def _spec(**tickets):
    data = tiny_spec_dict(tickets=tickets)
    data.pop("space")
    return parse_spec(data)


# ------------------------------------------------------------------ pruning scope, schedule, keep_dense


def test_layerwise_prunes_each_layer_by_the_rate_global_does_not() -> None:
    model = _model()
    layers = prunable_layers(model)
    lw = magnitude_prune(model, 0.6, "layerwise")
    for name, layer in layers.items():
        n = layer.weight.numel()
        assert int(lw[name].sum()) == n - round(0.6 * n), name
    gl = magnitude_prune(model, 0.6, "global")
    total = sum(m.weight.numel() for m in layers.values())
    assert mask_stats(gl).remaining == total - round(0.6 * total)
    per_layer = mask_stats(gl).per_layer
    assert max(per_layer.values()) - min(per_layer.values()) > 0.05  # global: uneven per layer


def test_keep_dense_first_and_last_stay_dense() -> None:
    model = _model()
    names = list(prunable_layers(model))
    exclude = resolve_layers(model, ["first", "last"])
    assert exclude == (names[0], names[-1])
    for scope in ("global", "layerwise"):
        masks = magnitude_prune(model, 0.5, scope, exclude)
        assert set(masks) == set(names)
        assert masks[names[0]].all() and masks[names[-1]].all()
        assert not all(masks[n].all() for n in names[1:-1])
    with pytest.raises(ValueError, match="no prunable layer"):
        resolve_layers(model, ["nope"])


def test_rounds_from_target_sparsity() -> None:
    for rate, target in [(0.5, 0.9), (0.2, 0.95), (0.5, 0.5), (0.6, 0.98)]:
        rates = rates_to_target(rate, target)
        smallest = math.ceil(math.log(1 - target) / math.log(1 - rate) - 1e-9)
        assert len(rates) == smallest
        assert 1 - math.prod(1 - r for r in rates) == pytest.approx(target)
    t = _spec(target_sparsity=0.9, prune_rate=0.5).tickets
    assert t.round_rates() == pytest.approx([0.5, 0.5, 0.5, 0.2])
    assert _spec(strategy="one_shot", target_sparsity=0.9).tickets.round_rates() == [0.9]
    assert _spec(prune_rates=[0.5, 0.6], rounds=7).tickets.round_rates() == [0.5, 0.6]


def test_spec_aliases_and_checks() -> None:
    data = tiny_spec_dict(space={"target_sparsity": {"type": "float", "low": 0.5, "high": 0.95}})
    parse_spec(data)
    data = tiny_spec_dict(space={"time_steps_search": {"type": "int", "low": 1, "high": 2}})
    parse_spec(data)
    with pytest.raises(Exception, match="time_steps_search"):
        _spec(time_steps_search=5)


# ------------------------------------------------------------------ controls and rewinding (no training)


def test_random_prune_control_keeps_per_layer_density() -> None:
    model = _model()
    masks = magnitude_prune(model, 0.8, "global")
    rnd = random_masks(masks, seed=3)
    assert mask_stats(rnd).per_layer == mask_stats(masks).per_layer
    assert any(not torch.equal(rnd[n], masks[n]) for n in masks)
    assert all(torch.equal(rnd[n], random_masks(masks, seed=3)[n]) for n in masks)  # seeded


def test_reinit_control_keeps_the_mask_and_changes_the_weights() -> None:
    model = _model(0)
    checkpoint = {k: v.clone() for k, v in model.state_dict().items()}
    masks = magnitude_prune(model, 0.7, "global")
    fresh = _model(1).state_dict()
    state = reinit_state(checkpoint, fresh)
    rewind(model, state, masks)
    assert all(torch.equal(current_masks(model)[n], masks[n]) for n in masks)
    for name, layer in prunable_layers(model).items():
        assert not torch.equal(layer.weight, checkpoint[f"{name}.weight"] * masks[name])
        assert torch.equal(layer.weight, fresh[f"{name}.weight"] * masks[name])
    for key, value in model.state_dict().items():  # biases, BatchNorm, neurons: from the checkpoint
        if not key.endswith(("weight_mask",)) and key.rsplit(".", 1)[0] not in prunable_layers(model):
            assert torch.equal(value, checkpoint[key]), key


def test_rewind_restores_exactly_the_checkpoint() -> None:
    model = _model(0)
    checkpoint = {k: v.clone() for k, v in _model(5).state_dict().items()}
    masks = magnitude_prune(model, 0.5)
    rewind(model, checkpoint, masks)
    for key, value in model.state_dict().items():
        if key.endswith("weight_mask"):
            continue
        base = key.rsplit(".", 1)[0]
        expected = checkpoint[key] * masks[base] if key.endswith(".weight") and base in masks else checkpoint[key]
        assert torch.equal(value, expected), key


def test_mask_distance() -> None:
    a = {"x": torch.tensor([True, True, False, False])}
    b = {"x": torch.tensor([True, False, False, True])}
    assert mask_distance(a, a) == 0.0
    assert mask_distance(a, b) == 0.5


# ------------------------------------------------------------------ whole trials (tiny: 2 epochs, T=2)


@pytest.fixture(scope="module")
def controlled(tmp_path_factory: pytest.TempPathFactory):
    spec = _spec(rounds=1, prune_rate=0.7, controls=["random_prune", "random_reinit"])
    cache = StageCache(tmp_path_factory.mktemp("cache"))
    tickets = run_trial(spec, {}, TrialContext(cache=cache))
    return spec, cache, tickets


def test_controls_share_sparsity_and_never_are_the_trial_value(controlled) -> None:
    _, _, tickets = controlled
    by_kind = {t.kind: t for t in tickets}
    assert set(by_kind) == {"dense", "imp", "random_prune", "random_reinit"}
    assert tickets[-1].kind == "imp"
    imp = by_kind["imp"]
    for kind in ("random_prune", "random_reinit"):
        assert by_kind[kind].round == imp.round
        assert by_kind[kind].layer_sparsity == pytest.approx(imp.layer_sparsity)
        assert by_kind[kind].ticket_id == f"{imp.ticket_id}-{kind}"
    assert len({t.ticket_id for t in tickets}) == len(tickets)
    assert imp.sparsity == pytest.approx(0.7, abs=1e-3)


def test_rerun_skips_every_stage(controlled) -> None:
    spec, cache, first = controlled
    misses = cache.misses
    again = run_trial(spec, {}, TrialContext(cache=cache))
    assert cache.misses == misses  # nothing recomputed
    assert all(t.cached for t in again)
    assert [t.val_accuracy for t in again] == [t.val_accuracy for t in first]


def test_rewind_iteration_is_the_dense_state_after_k_steps(controlled) -> None:
    spec, cache, _ = controlled
    ctx = TrialContext(cache=cache)
    setup = prepare(spec, ctx)
    per_epoch = len(stages.train_loader(setup, spec.seed))
    replayed = pretrain_iterations(setup, per_epoch)  # k = one epoch of steps
    dense_epoch1 = stages.dense_checkpoint(setup, ctx, 1)
    for key, value in dense_epoch1.items():
        assert torch.equal(replayed[key], value), key
    state, start = stages.rewind_point(
        prepare(spec.with_params({"tickets.rewind_iteration": per_epoch + 2}), ctx), ctx
    )
    assert start == 1 and set(state) == set(dense_epoch1)


def test_early_time_searches_at_t_search_and_trains_final_at_t(monkeypatch, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    real_fit = stages.fit

    def spy(model, *args, **kwargs):
        calls.append((model.time_steps, kwargs.get("start_epoch", 0)))
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(stages, "fit", spy)
    data = tiny_spec_dict(tickets={"rounds": 1, "time_steps_search": 1}, train={"epochs": 1})
    data.pop("space")
    tickets = run_trial(parse_spec(data), {}, TrialContext(cache=StageCache(tmp_path)))
    assert [t.kind for t in tickets] == ["dense", "et_search", "early_time"]
    assert [t.time_steps for t in tickets] == [1, 1, 2]
    assert [c[0] for c in calls] == [1, 1, 2]  # dense and search round at T_search, final at T
    assert tickets[-1].layer_sparsity == tickets[1].layer_sparsity  # same mask


@pytest.mark.slow
def test_early_bird_draws_the_mask_during_dense_training(tmp_path: Path) -> None:
    data = tiny_spec_dict(
        tickets={"strategy": "early_bird", "target_sparsity": 0.8, "eb_threshold": 0.5}, train={"epochs": 3}
    )
    data.pop("space")
    cache = StageCache(tmp_path)
    tickets = run_trial(parse_spec(data), {}, TrialContext(cache=cache))
    assert tickets[-1].kind == "early_bird"
    assert tickets[-1].sparsity == pytest.approx(0.8, abs=1e-3)
    meta, _ = cache.load("imp", tickets[-1].stage_key)
    assert 1 <= meta["eb_epoch"] <= 2 and meta["eb_distances"]


def test_dense_cache_key_follows_the_preset_values_not_just_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A preset whose sizes change between versions must not reuse a cached dense net of the old shape."""
    from sltsearch.models.registry import MODELS

    spec = parse_spec(tiny_spec_dict())
    before = stages.dense_key(spec)
    family = MODELS[spec.model.name]
    wider = {**family.presets[spec.model.preset], "channels": [8, 16]}
    monkeypatch.setitem(family.presets, spec.model.preset, wider)
    assert stages.dense_key(spec) != before
