"""Spiking VGG and ResNet: shapes, forward/backward, presets, registry errors, a short digits run."""

from __future__ import annotations

import pytest
import torch

from sltsearch.data import build_data, make_loader
from sltsearch.errors import SpecError
from sltsearch.models import MODELS, build_model
from sltsearch.spec import ModelSpec, Spec
from sltsearch.train import evaluate, fit

FAMILIES = ["spiking_vgg", "spiking_resnet"]


def _model(name: str, preset: str, shape: tuple[int, ...], classes: int = 10, **kw: object):
    return build_model(ModelSpec(name=name, preset=preset, time_steps=2, **kw), shape, classes)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 40)])
def test_tiny_forward_backward_2d_and_1d(name: str, shape: tuple[int, ...]) -> None:
    model = _model(name, "tiny", shape)
    x = torch.rand(3, *shape)
    out = model(x)
    assert out.shape == (3, 10)
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    model.reset_state()


@pytest.mark.parametrize("name", FAMILIES)
def test_body_is_multistep(name: str) -> None:
    model = _model(name, "tiny", (1, 8, 8), classes=5)
    seq = torch.rand(3, 2, 1, 8, 8)  # [T, B, C, H, W]
    assert model.body(seq).shape == (3, 2, 5)


@pytest.mark.parametrize(
    ("name", "preset"), [("spiking_vgg", "vgg11"), ("spiking_vgg", "vgg16"), ("spiking_resnet", "resnet19")]
)
def test_cifar_presets_build_and_run(name: str, preset: str) -> None:
    model = _model(name, preset, (3, 32, 32), options={"width": 0.125})
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_full_size_presets_have_paper_sizes() -> None:
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # VGG-11 conv stack ~9.2M weights (+ BN, readout); ResNet-19 ~12.6M parameters (tdBN paper: 12.63M)
    assert 9.0e6 < n(_model("spiking_vgg", "vgg11", (3, 32, 32))) < 9.6e6
    assert 14.5e6 < n(_model("spiking_vgg", "vgg16", (3, 32, 32))) < 15.0e6
    assert 12.0e6 < n(_model("spiking_resnet", "resnet19", (3, 32, 32))) < 13.5e6


def test_frames_input_uses_frames_encoder() -> None:
    spec = ModelSpec(name="spiking_vgg", preset="tiny", time_steps=4)
    model = build_model(spec, (2, 8, 8), 11, frames=True)
    assert model(torch.rand(3, 5, 2, 8, 8)).shape == (3, 11)  # [B, T, C, H, W]


def test_registry_errors_list_known_names() -> None:
    for name in FAMILIES:
        assert name in MODELS
    with pytest.raises(SpecError, match="spiking_resnet.*spiking_vgg|spiking_vgg"):
        build_model(ModelSpec(name="nope"), (1, 8, 8), 10)
    with pytest.raises(SpecError, match="vgg11.*vgg16"):
        build_model(ModelSpec(name="spiking_vgg", preset="huge"), (1, 8, 8), 10)
    with pytest.raises(SpecError, match="allowed"):
        build_model(ModelSpec(name="spiking_resnet", options={"depth": 3}), (1, 8, 8), 10)
    with pytest.raises(SpecError, match="layout"):
        build_model(ModelSpec(name="spiking_vgg", options={"layout": "vgg99"}), (1, 8, 8), 10)
    with pytest.raises(SpecError, match="equal length"):
        build_model(ModelSpec(name="spiking_resnet", options={"blocks": [1]}), (1, 8, 8), 10)


def test_resnet_max_pool_keeps_spikes_binary() -> None:
    model = _model("spiking_resnet", "tiny", (1, 8, 8), options={"pool": "max", "hidden": 16})
    seen: list[torch.Tensor] = []
    readout = list(model.body)[-3]  # Linear(features, hidden): its input is the pooled map
    readout.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    model(torch.rand(2, 1, 8, 8))
    assert torch.all((seen[0] == 0) | (seen[0] == 1))


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_digits_default_recipe_reaches_95(name: str) -> None:
    torch.manual_seed(0)
    spec = Spec.model_validate({"model": {"name": name, "preset": "tiny"}})
    data = build_data(spec.data)
    model = build_model(spec.model, data.input_shape, data.num_classes)
    fit(model, make_loader(data.train, 32, True, 0), make_loader(data.val, 512, False), spec.train, torch.device("cpu"))
    assert evaluate(model, make_loader(data.test, 512, False), torch.device("cpu")) >= 0.95


@pytest.mark.parametrize("name", ["spiking_cnn", "spiking_vgg"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 40)])
def test_deployable_presets_pool_by_average_and_the_pool_option_is_checked(name: str, shape: tuple[int, ...]) -> None:
    from torch import nn

    model = _model(name, "deployable", shape)
    pools = [m for m in model.modules() if isinstance(m, nn.AvgPool1d | nn.AvgPool2d | nn.MaxPool1d | nn.MaxPool2d)]
    assert len(pools) == 2 and all(isinstance(m, nn.AvgPool1d | nn.AvgPool2d) for m in pools)
    assert model(torch.rand(2, *shape)).shape == (2, 10)
    tiny = _model(name, "tiny", shape)
    assert any(isinstance(m, nn.MaxPool1d | nn.MaxPool2d) for m in tiny.modules())  # max stays the default
    with pytest.raises(SpecError, match="model.options.pool: 'min' not allowed; allowed: max, avg"):
        _model(name, "tiny", shape, options={"pool": "min"})
