"""Energy counts that do not depend on the evaluation batch, the ``real_inputs`` convention, true dense
synapses, and agreement with NeuroBench's ``SynapticOperations`` (issue #15)."""

from __future__ import annotations

import itertools

import pytest
import torch
from spikingjelly.activation_based import layer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sltsearch.energy_model import measure_energy
from sltsearch.models.encoders import DirectEncoder
from sltsearch.spec import EnergySpec

BATCH_SIZES = (1, 2, 7, 256)


class Direct(nn.Module):
    """A direct-encoded model that names its encoder (as `SpikingClassifier` does): body on [T, B, ...]."""

    def __init__(self, body: nn.Module, time_steps: int = 1, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.body = body
        self.time_steps = time_steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.unsqueeze(0).expand(self.time_steps, *x.shape))


def measure(net: nn.Module, x: torch.Tensor, batch_size: int, **opts):
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=batch_size)
    return measure_energy(net, loader, torch.device("cpu"), EnergySpec(**opts))


def dense_linear(n_in: int, n_out: int) -> nn.Linear:
    lin = nn.Linear(n_in, n_out, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.5)  # every weight non-zero
    return lin


def encoding_inputs() -> torch.Tensor:
    """256 all-zero images first (a batch of 1, 2, 7 or 256 holding only them looks binary), then a mix."""
    real = torch.tensor([[0.5, 0.25], [0.0, 0.0]]).repeat(22, 1)
    return torch.cat([torch.zeros(256, 2), real])


@pytest.mark.parametrize("with_role", [False, True])
def test_encoding_layer_macs_do_not_depend_on_batch_size(with_role: bool) -> None:
    # issue case 1: Linear 2->3, all weights non-zero; the all-zero image alone in a batch looked like spikes
    x = encoding_inputs()
    for bs in BATCH_SIZES:
        encoder = DirectEncoder() if with_role else None
        r = measure(Direct(dense_linear(2, 3), encoder=encoder), x, bs)
        assert r.layers[0].input_kind == "real", bs
        assert r.macs == pytest.approx(6.0), bs  # every input position x 3 surviving weights, per sample
        assert r.acs == 0
        nonzero = measure(Direct(dense_linear(2, 3), encoder=encoder), x, bs, real_inputs="nonzero")
        assert nonzero.macs == pytest.approx(22 * 6 / len(x)), bs  # only [0.5, 0.25] has non-zero pixels


def test_encoding_layer_is_real_by_role_even_when_every_sample_is_zero() -> None:
    x = torch.zeros(9, 2)
    with_role = measure(Direct(dense_linear(2, 3), encoder=DirectEncoder()), x, 4)
    assert with_role.layers[0].input_kind == "real" and with_role.macs == pytest.approx(6.0)
    # without a named encoder the values decide, over all batches at once
    without = measure(Direct(dense_linear(2, 3)), x, 4)
    assert without.layers[0].input_kind == "spike" and without.acs == 0


class Residual(nn.Module):
    """Spikes through an identity layer, then a residual sum that is 0/1 for some samples and 2 for others."""

    time_steps = 1

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 4, bias=False)
        nn.init.eye_(self.first.weight)
        self.lin = nn.Linear(4, 3, bias=False)
        with torch.no_grad():  # non-zero weights per input column: 2, 1, 3, 2
            self.lin.weight.copy_(torch.tensor([[1.0, 0, 2, 0], [0, 0, 3, 1], [1, 1, 1, 1]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (self.first(x) > 0).float()
        return self.lin(s + s * torch.tensor([1.0, 0, 0, 0]))  # position 0 doubles: 2 where it fired


def residual_inputs() -> torch.Tensor:
    only_binary = torch.tensor([[0.0, 1, 1, 0]]).repeat(256, 1)  # sum stays 0/1: h = [0, 1, 1, 0]
    mixed = torch.tensor([[1.0, 0, 1, 0], [0, 1, 1, 0]]).repeat(22, 1)  # h = [2, 0, 1, 0] or [0, 1, 1, 0]
    return torch.cat([only_binary, mixed])


@pytest.mark.parametrize("nonbinary", ["mac", "ac_weighted"])
def test_integer_hidden_input_does_not_depend_on_batch_size(nonbinary: str) -> None:
    # issue case 2: an integer-valued hidden input that is only 0/1 in some batches
    x = residual_inputs()
    n = len(x)
    # lin: h = [0,1,1,0] -> columns 1, 2 -> 1 + 3 = 4; h = [2,0,1,0] -> 2 + 3 = 5 (|h|-weighted: 2*2 + 3 = 7)
    n_five = 22
    strict_macs = (4 * (n - n_five) + 5 * n_five) / n
    weighted_acs = (4 * (n - n_five) + 7 * n_five) / n
    first_acs = (2 * (n - n_five) + 2 * n_five) / n  # identity: one AC per input spike
    energies = []
    for bs in BATCH_SIZES:
        r = measure(Residual(), x, bs, nonbinary=nonbinary)
        lin = {layer.name: layer for layer in r.layers}["lin"]
        assert lin.input_kind == "integer", bs
        if nonbinary == "mac":
            assert (lin.macs, lin.acs) == (pytest.approx(strict_macs), 0), bs
        else:
            assert (lin.acs, lin.macs) == (pytest.approx(weighted_acs), 0), bs
        energies.append(r.energy_uj)
    expected = first_acs * 0.9 + (strict_macs * 4.6 if nonbinary == "mac" else weighted_acs * 0.9)
    assert energies == pytest.approx([expected * 1e-6] * len(BATCH_SIZES))


def test_first_layer_once_does_not_depend_on_batch_size() -> None:
    x = encoding_inputs()
    for bs in BATCH_SIZES:
        r = measure(Direct(dense_linear(2, 3), time_steps=4, encoder=DirectEncoder()), x, bs, first_layer="once")
        assert r.first_layer_once and r.layers[0].once
        assert r.macs == pytest.approx(6.0), bs  # counted once, not T = 4 times


def test_real_inputs_nonzero_and_dense_without_padding_taps() -> None:
    conv = layer.Conv2d(1, 2, 3, padding=1, bias=False, step_mode="m")  # sees [T, B, C, H, W]
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.weight[1] = 0.0  # second output channel fully pruned
        conv.weight[0, 0, 0, 0] = 0.0
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = 0.3  # one non-zero pixel, a corner: 4 outputs see it
    net = Direct(conv, encoder=DirectEncoder())
    every = measure(net, x, 1)
    nonzero = measure(net, x, 1, real_inputs="nonzero")
    taps = 4 * 4 + 8 * 6 + 4 * 9  # corner, edge, interior outputs x their valid taps (no padding): 100
    (counted,) = every.layers
    assert counted.dense_ops == pytest.approx(2 * taps)  # every synapse that exists, both channels
    # all: every input position x surviving weights of channel 0 (taps minus the pruned top-left tap)
    assert counted.macs == pytest.approx(taps - 9)  # the top-left tap is valid for the 9 outputs not in row/col 0
    # nonzero: the corner pixel reaches 4 outputs of channel 0; output (1, 1) reads it through the pruned tap
    assert nonzero.layers[0].macs == pytest.approx(3)
    # rate column and approximation agree: op rate 1 for real inputs counted at every position
    assert counted.op_rate == 1.0 and counted.firing_rate == pytest.approx(1 / 16)
    assert counted.approx_ops == pytest.approx(counted.dense_ops * 1.0 * (8 / 18))
    assert nonzero.layers[0].op_rate == pytest.approx(1 / 16)


# ----------------------------------------------------------------------------------------------- NeuroBench


def brute_force_synops(conv: nn.Conv2d, x: torch.Tensor, every_input: bool) -> int:
    """NeuroBench's definition by explicit loops: one op per (output, tap) pair whose input position exists
    (no padding), whose weight is non-zero, and whose input is non-zero (or any input, ``every_input``)."""
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = conv.weight.shape
    (sh, sw), (ph, pw) = conv.stride, conv.padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    ops = 0
    for b, o, i, j, c, u, v in itertools.product(
        range(n), range(c_out), range(oh), range(ow), range(c_in), range(kh), range(kw)
    ):
        r, s = i * sh - ph + u, j * sw - pw + v
        if 0 <= r < h and 0 <= s < w and conv.weight[o, c, u, v] != 0 and (every_input or x[b, c, r, s] != 0):
            ops += 1
    return ops


def test_counts_match_brute_force_reference() -> None:
    torch.manual_seed(1)
    conv = layer.Conv2d(2, 3, 3, stride=2, padding=1, bias=False, step_mode="m")
    full = layer.Conv2d(2, 3, 3, stride=2, padding=1, bias=False, step_mode="m")
    with torch.no_grad():
        conv.weight.mul_((torch.rand_like(conv.weight) < 0.4).float())  # pruned
        full.weight.fill_(1.0)
    real = torch.rand(3, 2, 5, 5) * (torch.rand(3, 2, 5, 5) < 0.6)  # real pixels with zeros
    spikes = (torch.rand(3, 2, 5, 5) < 0.3).float()
    for x, kind in ((real, "real"), (spikes, "spike")):
        for rule in ("all", "nonzero"):
            r = measure(Direct(conv, encoder=None), x, 2, real_inputs=rule)
            (counted,) = r.layers
            assert counted.input_kind == kind
            every = kind == "real" and rule == "all"
            assert counted.ops * len(x) == brute_force_synops(conv, x, every_input=every)
            assert counted.dense_ops * len(x) == brute_force_synops(full, x, every_input=True)


def test_matches_neurobench_synaptic_operations() -> None:
    """NeuroBench 2.3's own metric on a pruned tiny spiking CNN (direct encoding, T = 4, per-step counts).

    NeuroBench requires torchaudio, so it is not a project dependency; this runs where it can be imported
    (e.g. ``pip install --no-deps --target DIR neurobench snntorch`` and ``PYTHONPATH=DIR``).
    """
    pytest.importorskip("snntorch")
    workload = pytest.importorskip("neurobench.metrics.workload")
    from neurobench.models import TorchModel
    from spikingjelly.activation_based import functional

    from sltsearch.models import build_model
    from sltsearch.spec import ModelSpec
    from sltsearch.tickets import attach_masks, magnitude_prune

    torch.manual_seed(0)
    model = build_model(ModelSpec(time_steps=4), (1, 8, 8), 10)
    attach_masks(model, magnitude_prune(model, 0.7, "global"))
    model.eval()
    x = torch.rand(6, 1, 8, 8) * (torch.rand(6, 1, 8, 8) < 0.6)  # real pixels, 40 % zeros
    with torch.no_grad():  # a trained-looking firing rate: scale the BatchNorm so the LIFs fire
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.fill_(3.0)
    ours = measure(model, x, 3, real_inputs="nonzero")

    net = TorchModel(model)
    net.register_hooks()
    metric = workload.SynapticOperations()
    for batch in (x[:3], x[3:]):
        functional.reset_net(model)
        with torch.no_grad():
            preds = net(batch)
        result = metric(net, preds, (batch, torch.zeros(len(batch))))
        net.reset_hooks()
    net.cleanup_hooks()
    assert ours.acs > 0 and ours.layers[0].input_kind == "real"
    assert result["Effective_MACs"] == pytest.approx(ours.macs)
    assert result["Effective_ACs"] == pytest.approx(ours.acs)
    assert result["Dense"] == pytest.approx(sum(c.dense_ops for c in ours.layers))
    # the tiny CNN's first conv: 61,952 existing synapses over T = 4 (not 32 x 64 outputs x 9 taps x 4)
    assert ours.layers[0].dense_ops == pytest.approx(61_952)


def test_energy_command_takes_the_conventions(tiny_spec_file) -> None:
    from typer.testing import CliRunner

    from sltsearch.cli import app

    runner = CliRunner()
    args = ["energy", str(tiny_spec_file), "--samples", "16"]
    result = runner.invoke(app, [*args, "--real-inputs", "nonzero", "--first-layer", "once"], terminal_width=160)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "counted once" in text and "real inputs: nonzero" in text and "op rate" in text
    bad = runner.invoke(app, [*args, "--real-inputs", "some"])
    assert bad.exit_code == 2 and "real_inputs" in bad.output and len(bad.output.strip().splitlines()) == 1
