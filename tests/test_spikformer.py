"""Spikformer body: shapes, registry, patch dropping, binarized weights / activations."""

from __future__ import annotations

import torch

from sltsearch.models import build_model
from sltsearch.models.ops import SpikeMatmul
from sltsearch.models.spikformer import BinaryActivation, PEPConv2d, binarize_weight
from sltsearch.spec import ModelSpec
from sltsearch.tickets import attach_masks, prunable_layers


def _model(**options):
    torch.manual_seed(0)
    spec = ModelSpec(name="spikformer", preset="tiny", time_steps=2, options=options)
    return build_model(spec, (1, 8, 8), 10)


def test_tiny_shapes_and_names():
    model = _model()
    x = torch.rand(3, 1, 8, 8)
    assert model(x).shape == (3, 10)
    seq = model.encoder(x, 2)
    model.reset_state()
    assert model.body(seq).shape == (2, 3, 10)
    names = set(prunable_layers(model))
    # spikingjelly-compatible parameter names
    assert "body.patch_embed.stages.0.conv_bn.block.0" in names
    assert "body.blocks.0.attn.qkv_conv_bn.0" in names
    assert "body.blocks.0.mlp.fc1.0" in names
    assert any(isinstance(m, SpikeMatmul) for m in model.modules())


def test_cifar_preset_builds():
    spec = ModelSpec(name="spikformer", preset="cifar", time_steps=1)
    model = build_model(spec, (3, 32, 32), 10)
    assert model.body.patch_embed.num_patches == 64
    assert len(model.body.blocks) == 4
    assert model.body.blocks[0].attn.qkv_conv_bn[0].weight.shape == (3 * 384, 384, 1)


def test_dropped_patches_are_absent_downstream():
    model = _model()
    pe = model.body.patch_embed
    seen = {}
    model.body.blocks[0].attn.qk.register_forward_hook(lambda m, i, o: seen.__setitem__("qk", o.shape))
    model.body.blocks[0].mlp.fc1[0].register_forward_hook(lambda m, i, o: seen.__setitem__("fc1", o.shape))
    x = torch.rand(2, 1, 8, 8)
    model(x)
    model.reset_state()
    assert seen["qk"][-2:] == (16, 16) and seen["fc1"][-1] == 16
    mask = torch.zeros(16, dtype=torch.bool)
    mask[[0, 5, 6, 15]] = True
    pe.patch_keep_mask.copy_(mask)
    out = model(x)
    model.reset_state()
    assert out.shape == (2, 10)
    assert seen["qk"][-2:] == (4, 4) and seen["fc1"][-1] == 4
    # the mask is a persistent buffer: a saved ticket reproduces it
    state = model.state_dict()
    assert state["body.patch_embed.patch_keep_mask"].sum() == 4
    other = _model()
    other.load_state_dict(state)
    assert torch.equal(other.body.patch_embed.kept_index(), torch.tensor([0, 5, 6, 15]))


def test_binarized_weights_two_values_per_channel_and_gradients():
    conv = PEPConv2d(3, 4, 3, padding=1, bias=False)
    conv.sltsearch_binary = True
    assert conv.state_dict()["binary_weights"].item() is True
    w = conv.effective_weight().detach()
    for c in range(4):
        values = torch.unique(w[c])
        assert len(values) == 2 and torch.allclose(values[0], -values[1])
    conv(torch.rand(2, 3, 5, 5)).sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    # pruned weights stay zero: {-a, 0, +a}
    attach_masks(conv, {"": torch.rand_like(conv.weight) > 0.5})
    assert set(binarize_weight(conv.weight).detach()[0].sign().unique().tolist()) <= {-1.0, 0.0, 1.0}


def test_binary_activation_outputs_zero_one_with_gradient():
    act = BinaryActivation()
    x = torch.tensor([0.0, 1.0, 2.0, 1.0, 0.0], requires_grad=True)
    y = act(x)
    assert set(y.tolist()) <= {0.0, 1.0} and y.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(5))
    model = _model()
    model.body.patch_embed.binary_activation.fill_(True)
    tokens = model.body.patch_embed.token_map(model.encoder(torch.rand(2, 1, 8, 8), 2))
    assert set(tokens.unique().tolist()) <= {0.0, 1.0}


def test_one_d_signals_shapes_and_patch_grid():
    model = build_model(ModelSpec(name="spikformer", preset="tiny", time_steps=2), (1, 40), 10)
    pe = model.body.patch_embed
    assert pe.ndim == 1 and pe.grid == (20,) and pe.num_patches == 20  # tiny: patch_size 2 -> 40 / 2 tokens
    assert type(pe.stages[0].conv_bn.block[0]).__name__ == "PEPConv1d"
    seen = {}
    model.body.blocks[0].attn.qk.register_forward_hook(lambda m, i, o: seen.__setitem__("qk", o.shape))
    x = torch.rand(3, 1, 40)
    assert model(x).shape == (3, 10)
    model.reset_state()
    assert seen["qk"][-2:] == (20, 20)
    assert model.body(model.encoder(x, 2)).shape == (2, 3, 10)
    model.reset_state()
    # an explicit patch_grid fixes the token count instead of the preset's patch size
    grid10 = build_model(ModelSpec(name="spikformer", time_steps=1, options={"patch_grid": 10}), (1, 40), 10)
    assert grid10.body.patch_embed.num_patches == 10 and grid10(x).shape == (3, 10)


def test_bad_shapes_and_grids_are_one_line_errors():
    import pytest

    from sltsearch.errors import SpecError

    with pytest.raises(SpecError, match="spikformer takes 1-D or 2-D inputs"):
        build_model(ModelSpec(name="spikformer", time_steps=1), (1, 4, 8, 8), 10)
    with pytest.raises(SpecError, match="patch_grid 3 must divide"):
        build_model(ModelSpec(name="spikformer", time_steps=1, options={"patch_grid": 3}), (1, 8, 8), 10)
    with pytest.raises(SpecError, match="patch_size must be a power of two"):
        build_model(ModelSpec(name="spikformer", time_steps=1, options={"patch_size": 3}), (1, 40), 10)


def test_one_d_training_steps_reduce_loss():
    torch.manual_seed(0)
    model = build_model(ModelSpec(name="spikformer", preset="tiny", time_steps=2), (1, 40), 2)
    # two classes of random signals: weak (amplitude 0.3) or strong (1.5)
    y = torch.arange(32) % 2
    x = torch.rand(32, 1, 40) * (0.3 + 1.2 * y.view(-1, 1, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        model.reset_state()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_single_step_body_runs_as_a_plain_ann():
    from spikingjelly.activation_based import functional
    from torch import nn

    from sltsearch.models import MODELS

    family = MODELS["spikformer"]
    for shape in [(1, 8, 8), (1, 40)]:
        body = family.build(shape, 10, nn.ReLU, dict(family.presets["tiny"]))
        functional.set_step_mode(body, "s")
        assert body.step_mode == "s"
        out = body(torch.rand(6, *shape))
        assert out.shape == (6, 10)
        out.sum().backward()
        assert body.patch_embed.stages[0].conv_bn.block[0].weight.grad is not None
        functional.set_step_mode(body, "m")
        assert body(torch.rand(2, 6, *shape)).shape == (2, 6, 10)
