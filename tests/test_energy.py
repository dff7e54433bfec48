"""Hand-checked tests of the energy / cost model (sltsearch.energy_model)."""

from __future__ import annotations

import pytest
import torch
from spikingjelly.activation_based import layer, neuron
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sltsearch.energy_model import layer_storage, measure_energy
from sltsearch.models.ops import SpikeMatmul
from sltsearch.spec import EnergySpec, parse_spec


class Wrap(nn.Module):
    """Repeats a static input T times (direct encoding) and runs ``body`` on [T, B, ...]."""

    def __init__(self, body: nn.Module, time_steps: int = 1) -> None:
        super().__init__()
        self.body = body
        self.time_steps = time_steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.unsqueeze(0).expand(self.time_steps, *x.shape))


def measure(net: nn.Module, x: torch.Tensor, batch_size: int = 64, **opts):
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=batch_size)
    return measure_energy(net, loader, torch.device("cpu"), EnergySpec(**opts))


def masked_linear() -> nn.Linear:
    lin = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        # non-zero weights per input column: 2, 1, 3, 2 (8 of 12 survive)
        lin.weight.copy_(torch.tensor([[1.0, 0, 2, 0], [0, 0, 3, 1], [1, 1, 1, 1]]))
    return lin


SPIKES = torch.tensor([[1.0, 0, 1, 0], [0, 1, 1, 1]])  # sample ops: 2+3 = 5 and 1+3+2 = 6


def test_linear_known_rate_and_mask() -> None:
    r = measure(Wrap(masked_linear(), time_steps=2), SPIKES)
    (layer,) = r.layers
    assert layer.input_kind == "spike"
    assert layer.firing_rate == pytest.approx(5 / 8)
    assert layer.acs == pytest.approx(2 * 5.5)  # summed over T = 2 steps, mean over 2 samples
    assert r.macs == 0
    assert layer.dense_ops == pytest.approx(2 * 12)
    assert layer.approx_ops == pytest.approx(2 * 12 * (5 / 8) * (8 / 12))  # T x rate x density x dense
    assert r.energy_uj == pytest.approx(11 * 0.9e-6)
    assert (layer.params, layer.nonzero_params) == (12, 8)


def test_counts_do_not_depend_on_batch_size() -> None:
    x = (torch.rand(13, 4) < 0.4).float()
    a = measure(Wrap(masked_linear(), 3), x, batch_size=1)
    b = measure(Wrap(masked_linear(), 3), x, batch_size=5)
    assert a.acs == pytest.approx(b.acs) and a.energy_uj == pytest.approx(b.energy_uj)
    assert a.layers[0].firing_rate == pytest.approx(b.layers[0].firing_rate)


def test_conv_padding_and_stride() -> None:
    conv = layer.Conv2d(1, 1, 3, stride=2, padding=1, bias=False, step_mode="m")  # sees [T, B, C, H, W]
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.weight[0, 0, 1, 1] = 0.0  # centre pruned: 8 of 9 weights
    r = measure(Wrap(conv), torch.ones(1, 1, 4, 4))
    # output centres (0,0), (0,2), (2,0), (2,2): valid inputs 4, 6, 6, 9, each minus the pruned centre
    assert r.acs == pytest.approx(3 + 5 + 5 + 8)
    # dense: every synapse that exists, every weight, no zero-padding taps (not 4 outputs x 9 = 36)
    assert r.layers[0].dense_ops == pytest.approx(4 + 6 + 6 + 9)


class SSA(nn.Module):
    """Spiking self-attention skeleton: spike projections, Q·K^T and (QK^T)·V through SpikeMatmul."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        for lin in (self.q, self.k, self.v):
            nn.init.ones_(lin.weight)
        self.qk, self.av = SpikeMatmul(), SpikeMatmul(scale=0.125)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [T, B, N, D] spikes
        q, k, v = ((lin(x) > 0).float() for lin in (self.q, self.k, self.v))
        attn = self.qk(q, k.transpose(-2, -1))  # integer counts, not binary
        return self.av(attn, v)


@pytest.mark.parametrize("tokens", [8, 4])
def test_ssa_block_counts_and_token_dropping(tokens: int) -> None:
    d = 4
    r = measure(Wrap(SSA(d)), torch.ones(1, tokens, d))
    by = {layer.name: layer for layer in r.layers}
    for proj in ("body.q", "body.k", "body.v"):
        assert by[proj].acs == tokens * d * d  # every token, every weight
    assert by["body.qk"].input_kind == "spike"
    assert by["body.qk"].acs == tokens * tokens * d  # (1[q] @ 1[k^T]).sum()
    assert by["body.av"].input_kind == "integerxspike"
    assert by["body.av"].acs == tokens * tokens * d  # V binary: selected adds, ACs
    assert r.macs == 0


def test_token_dropping_counts_remaining_tokens() -> None:
    d = 4
    full = {x.name: x.acs for x in measure(Wrap(SSA(d)), torch.ones(1, 8, d)).layers}
    half = {x.name: x.acs for x in measure(Wrap(SSA(d)), torch.ones(1, 4, d)).layers}
    assert half["body.q"] == full["body.q"] / 2  # projections: linear in tokens
    assert half["body.qk"] == full["body.qk"] / 4  # N x N attention: quadratic in tokens


def test_matmul_both_nonbinary_is_mac() -> None:
    mm = SpikeMatmul()
    x = torch.tensor([[[2.0, 0.0], [1.0, 3.0]]])  # [B=1, 2, 2] integer counts

    class Sq(nn.Module):
        time_steps = 1

        def __init__(self) -> None:
            super().__init__()
            self.mm = mm

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.mm(x, x)

    r = measure(Sq(), x)
    # pairs: sum_k (nonzeros in column k) x (nonzeros in row k) = 2*1 + 1*2 = 4
    assert r.macs == 4 and r.acs == 0


def test_nonbinary_input_rule() -> None:
    class Res(nn.Module):  # a residual sum of two spike maps feeds a linear layer
        time_steps = 1

        def __init__(self) -> None:
            super().__init__()
            self.first = nn.Linear(4, 4, bias=False)
            nn.init.eye_(self.first.weight)
            self.lin = masked_linear()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = (self.first(x) > 0).float()
            return self.lin(s + s * torch.tensor([1.0, 0, 0, 0]))  # values 2, 0, 1, 0

    x = torch.tensor([[1.0, 0, 1, 0]])
    strict = measure(Res(), x)
    lin = {layer.name: layer for layer in strict.layers}["lin"]
    assert lin.input_kind == "integer"
    assert lin.macs == 2 + 3 and lin.acs == 0  # non-zero inputs x surviving weights, as MACs
    weighted = measure(Res(), x, nonbinary="ac_weighted")
    lin = {layer.name: layer for layer in weighted.layers}["lin"]
    assert lin.acs == 2 * 2 + 1 * 3 and lin.macs == 0  # |x| x surviving weights, as ACs


def test_binarized_weights_go_to_their_own_column() -> None:
    lin = masked_linear()
    lin.sltsearch_binary = True
    r = measure(Wrap(lin, 2), SPIKES)
    assert r.acs == 0 and r.macs == 0
    assert r.binary_ops == pytest.approx(2 * 5.5)
    assert r.energy_uj == pytest.approx(11 * 0.9e-6)
    n, nnz, bits, dense = layer_storage(lin)
    assert (n, nnz, dense) == (12, 8, 12 * 32)
    # dense binary with pruning: 2 bits per weight; plus one 32-bit scale per output row
    assert bits == min(12 * 2, 8 * (1 + 2) + 4 * 32) + 3 * 32


def test_sparse_storage_format() -> None:
    lin = nn.Linear(64, 2, bias=False)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[0, :3] = 1.0
    _, nnz, bits, dense = layer_storage(lin)
    assert nnz == 3 and dense == 128 * 32
    assert bits == 3 * (32 + 6) + 3 * 32  # value + 6-bit column index; 3 row pointers


def test_zero_spikes_give_zero_ac_energy() -> None:
    r = measure(Wrap(masked_linear(), 4), torch.zeros(3, 4) + torch.zeros(3, 4))
    assert r.acs == 0 and r.energy_uj == 0


def test_first_layer_once_or_per_step() -> None:
    x = torch.tensor([[0.5, 0.25, -1.0, 2.0]])  # real-valued: MACs, every input position
    per_step = measure(Wrap(masked_linear(), 4), x)
    once = measure(Wrap(masked_linear(), 4), x, first_layer="once")
    assert per_step.layers[0].input_kind == "real"
    assert per_step.macs == 4 * 8
    assert once.macs == 8
    assert per_step.energy_uj == pytest.approx(32 * 4.6e-6)


def test_neuron_updates_and_memory_model() -> None:
    body = nn.Sequential(masked_linear(), neuron.LIFNode(step_mode="m"), nn.Linear(3, 2, bias=False))
    x = torch.rand(5, 4)
    base = measure(Wrap(body, 2), x)
    counted = measure(Wrap(body, 2), x, count_neuron_updates=True, e_neuron_pj=1.0)
    assert base.neuron_updates == 0
    assert counted.neuron_updates == 2 * 3  # T x neurons
    assert counted.energy_uj == pytest.approx(base.energy_uj + 6e-6)
    mem = measure(Wrap(body, 2), x, model="memory")
    assert mem.compute_uj == pytest.approx(base.energy_uj)
    assert mem.memory_uj > 0 and mem.energy_uj == pytest.approx(mem.compute_uj + mem.memory_uj)


def test_spec_knows_storage_metric_and_rejects_bad_breakpoints() -> None:
    spec = parse_spec({"objective": {"metrics": {"val_accuracy": "maximize", "storage_bits": "minimize"}}})
    assert spec.objective.metrics["storage_bits"] == "minimize"
    from sltsearch.errors import SpecError

    with pytest.raises(SpecError, match="memory_breakpoints"):
        parse_spec({"objective": {"energy": {"memory_breakpoints": [[0, 0], [1, 1]]}}})


def test_report_reloads_a_ticket_from_a_run_folder(tmp_path) -> None:
    from sltsearch.data import build_data, make_loader
    from sltsearch.energy_model.report import energy_report
    from sltsearch.models import build_model
    from sltsearch.results import TicketStore
    from sltsearch.results.record import Ticket
    from sltsearch.runfolder.folder import prepare_run_dir
    from sltsearch.ticket_io.source import TicketNotFound
    from sltsearch.tickets import attach_masks, magnitude_prune
    from sltsearch.train import state_copy
    from sltsearch.trial.cache import StageCache

    spec = parse_spec(
        {
            "train": {"epochs": 2},
            "objective": {"energy": {"samples": 16}},
            "space": {"time_steps": {"type": "categorical", "choices": [2, 3]}},
        }
    )
    prepare_run_dir(spec, tmp_path, None)
    tspec = spec.with_params({"time_steps": 3})
    data = build_data(tspec.data)
    model = build_model(tspec.model, data.input_shape, data.num_classes)
    attach_masks(model)
    magnitude_prune(model, 0.75, "global")
    StageCache(tmp_path / "cache").store("imp", "k1", {}, {"state": state_copy(model)})
    fields = dict.fromkeys(["sparsity", "density", "val_accuracy", "test_accuracy", "energy_uj"], 0.0)
    fields |= dict.fromkeys(["macs", "acs", "firing_rate", "wall_time_s"], 0.0)
    fields |= dict.fromkeys(["nonzero_params", "prunable_params", "best_epoch", "epochs_trained"], 0)
    ticket = Ticket(0, 1, "imp", {"time_steps": 3}, 0, 3, stage_key="k1", **fields)
    TicketStore(tmp_path).append([ticket])

    run = energy_report(tmp_path, ticket="t0000r01")
    direct = measure_energy(
        model, make_loader(data.val, 512, shuffle=False), torch.device("cpu"), tspec.objective.energy, 16
    )
    assert run.trained and run.report.time_steps == 3
    assert run.report.energy_uj == pytest.approx(direct.energy_uj)
    assert run.report.nonzero_params == direct.nonzero_params < direct.params
    assert list(run.frame()["name"]) == [layer.name for layer in direct.layers]
    with pytest.raises(TicketNotFound):
        energy_report(tmp_path, ticket="t0009r09")

    # a control ticket's weights live under another stage kind (cache/control/<key>): found by its key alone
    StageCache(tmp_path / "cache").store("control", "k2", {}, {"state": state_copy(model)})
    TicketStore(tmp_path).append([Ticket(0, 1, "random_prune", {"time_steps": 3}, 0, 3, stage_key="k2", **fields)])
    control = energy_report(tmp_path, ticket="t0000r01-random_prune")
    assert "control stage k2" in control.source
    assert control.report.energy_uj == pytest.approx(direct.energy_uj)


@pytest.mark.parametrize("kw", [{"stride": 2, "padding": 1}, {"dilation": 2, "padding": 2, "groups": 2}, {"stride": 3}])
def test_fanout_count_equals_direct_convolution(kw) -> None:
    import torch.nn.functional as F

    from sltsearch.energy_model.layer_ops import layer_ops

    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, bias=False, **kw)
    with torch.no_grad():
        conv.weight.mul_((torch.rand_like(conv.weight) < 0.5).float())
    x = (torch.rand(5, 4, 9, 11) < 0.3).float()
    direct = F.conv2d(
        x,
        (conv.weight != 0).float(),
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
    ).sum()
    ops, _, _ = layer_ops(conv, x)
    assert ops == pytest.approx(float(direct))


def test_memory_model_does_not_depend_on_batch_size() -> None:
    body = nn.Sequential(masked_linear(), neuron.LIFNode(step_mode="m"), nn.Linear(3, 2, bias=False))
    x = torch.rand(6, 4) * 3
    a = measure(Wrap(body, 2), x, batch_size=1, model="memory")
    b = measure(Wrap(body, 2), x, batch_size=6, model="memory")
    assert a.memory_uj == pytest.approx(b.memory_uj) and a.memory_uj > 0
