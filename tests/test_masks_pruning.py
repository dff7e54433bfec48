"""Masks keep pruned weights at exactly zero; pruning removes the expected count; rewinding restores k."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sltsearch.data import build_data, make_loader
from sltsearch.models import build_model
from sltsearch.spec import parse_spec
from sltsearch.tickets import attach_masks, current_masks, magnitude_prune, mask_stats, prunable_layers, rewind
from sltsearch.train import fit, make_optimizer, train_one_epoch


def _model(time_steps: int = 2) -> nn.Module:
    torch.manual_seed(0)
    spec = parse_spec({"model": {"time_steps": time_steps}})
    return build_model(spec.model, (1, 8, 8), 10)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_pruned_weights_stay_exactly_zero_through_steps(optimizer: str) -> None:
    model = _model()
    attach_masks(model)
    attach_masks(model, magnitude_prune(model, 0.6))
    recipe = parse_spec({"train": {"optimizer": optimizer, "weight_decay": 0.1, "lr": 0.05}}).train
    opt = make_optimizer(model, recipe)
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    loader = [(x, y)] * 3
    train_one_epoch(model, loader, opt, torch.device("cpu"))
    for name, layer in prunable_layers(model).items():
        pruned = ~layer.weight_mask
        assert pruned.any(), name
        assert torch.count_nonzero(layer.weight[pruned]) == 0, name
        assert layer.weight.grad is None or torch.count_nonzero(layer.weight.grad[pruned]) == 0


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9])
def test_global_pruning_removes_expected_count(rate: float) -> None:
    model = _model()
    attach_masks(model)
    total = sum(m.weight.numel() for m in prunable_layers(model).values())
    masks = magnitude_prune(model, rate, "global")
    assert mask_stats(masks).remaining == total - round(rate * total)
    attach_masks(model, masks)
    # a second round prunes the same fraction of what remains
    remaining = mask_stats(masks).remaining
    masks2 = magnitude_prune(model, rate, "global")
    assert mask_stats(masks2).remaining == remaining - round(rate * remaining)
    assert all((masks2[n] <= masks[n]).all() for n in masks)  # nothing pruned comes back


def test_global_pruning_keeps_the_largest_magnitudes() -> None:
    model = _model()
    attach_masks(model)
    masks = magnitude_prune(model, 0.5, "global")
    layers = prunable_layers(model)
    kept = torch.cat([layers[n].weight.detach().abs()[masks[n]] for n in masks])
    dropped = torch.cat([layers[n].weight.detach().abs()[~masks[n]] for n in masks])
    assert kept.min() >= dropped.max()


def test_layerwise_prunes_each_layer_by_the_rate() -> None:
    model = _model()
    attach_masks(model)
    masks = magnitude_prune(model, 0.5, "layerwise")
    for name, layer in prunable_layers(model).items():
        assert int(masks[name].sum()) == layer.weight.numel() - round(0.5 * layer.weight.numel())


def test_rewinding_restores_surviving_weights_to_epoch_k() -> None:
    spec = parse_spec({"train": {"epochs": 3}, "model": {"time_steps": 2}})
    data = build_data(spec.data)
    model = _model()
    attach_masks(model)
    train = make_loader(data.train, 128, shuffle=True, seed=0)
    val = make_loader(data.val, 512, shuffle=False)
    result = fit(model, train, val, spec.train, torch.device("cpu"), keep_checkpoints=True)
    assert sorted(result.checkpoints) == [0, 1, 2]
    checkpoint = result.checkpoints[1]
    masks = magnitude_prune(model, 0.7)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    rewind(model, checkpoint, masks)
    state = model.state_dict()
    for name, mask in current_masks(model).items():
        weight = state[f"{name}.weight"]
        assert torch.equal(weight[mask], checkpoint[f"{name}.weight"][mask])
        assert torch.count_nonzero(weight[~mask]) == 0
        assert not torch.equal(weight, trained[f"{name}.weight"])
    for key, value in checkpoint.items():  # BatchNorm statistics and biases rewound too
        if not key.endswith("weight_mask") and "weight" not in key.rsplit(".", 1)[-1]:
            assert torch.equal(state[key], value), key


def _train_with_reference_masks(model: nn.Module, masks: dict[str, torch.Tensor], recipe, loader) -> None:
    """The masking of commit 8d8ca89 written out: the boolean mask multiplies the gradient (hook) and the weights
    (after every step), layer by layer."""
    layers = prunable_layers(model)
    for name, layer in layers.items():
        layer.weight.data.mul_(masks[name])
        layer.weight.register_hook(lambda grad, m=masks[name]: grad * m)
    opt = make_optimizer(model, recipe)
    model.train()
    for x, y in loader:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x).float(), y).backward()
        opt.step()
        with torch.no_grad():
            for name, layer in layers.items():
                layer.weight.mul_(masks[name])
        model.reset_state()


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_cached_float_masks_train_bit_for_bit_like_the_boolean_product(optimizer: str) -> None:
    """The masks are cached in the weight's dtype and applied in one foreach call: the same bits as multiplying by
    the boolean buffer layer by layer (the same tickets on the CPU)."""
    recipe = parse_spec({"train": {"optimizer": optimizer, "weight_decay": 0.05, "lr": 0.05}}).train
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    loader = [(x, y), (x.flip(0), y.flip(0))] * 2
    ours, reference = _model(), _model()
    masks = magnitude_prune(ours, 0.6)
    attach_masks(ours, masks)
    train_one_epoch(ours, loader, make_optimizer(ours, recipe), torch.device("cpu"))
    _train_with_reference_masks(reference, masks, recipe, loader)
    state = reference.state_dict()
    for name, value in ours.state_dict().items():
        if not name.endswith("weight_mask"):
            assert torch.equal(value, state[name]), name


def test_a_mask_written_in_place_or_loaded_replaces_the_cached_one() -> None:
    model = _model()
    attach_masks(model, magnitude_prune(model, 0.3))
    train_one_epoch(model, [(torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,)))], make_optimizer(
        model, parse_spec({}).train), torch.device("cpu"))  # the cache is filled
    attach_masks(model, magnitude_prune(model, 0.8))  # the buffers are written in place
    stats = mask_stats(current_masks(model))
    assert stats.sparsity > 0.7
    state = model.state_dict()
    other = _model()
    attach_masks(other)  # dense masks, cached by a training step
    train_one_epoch(other, [(torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,)))], make_optimizer(
        other, parse_spec({}).train), torch.device("cpu"))
    with torch.no_grad():
        for layer in prunable_layers(other).values():
            layer.weight.add_(1.0)  # every weight non-zero
    other.load_state_dict({k: v for k, v in state.items() if k.endswith("weight_mask")}, strict=False)
    from sltsearch.tickets import apply_masks

    apply_masks(other)
    for name, layer in prunable_layers(other).items():
        pruned = ~layer.weight_mask
        assert pruned.any() and torch.count_nonzero(layer.weight[pruned]) == 0, name
