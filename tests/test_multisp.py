"""MultiSp: each level really lowers the energy count; per-group targets; spec validation; trial wiring."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sltsearch.energy_model import measure_energy
from sltsearch.errors import SpecError
from sltsearch.models import build_model
from sltsearch.spec import EnergySpec, ModelSpec, MultiSpSpec, parse_spec
from sltsearch.tickets import attach_masks, multisp

FIRST = "body.patch_embed.stages.0.conv_bn.block.0"
QKV = "body.blocks.0.attn.qkv_conv_bn.0"


def _model():
    """A small Spikformer whose BatchNorm running stats equal one batch's stats, so it spikes in eval mode."""
    torch.manual_seed(0)
    spec = ModelSpec(
        name="spikformer",
        preset="tiny",
        time_steps=2,
        options={"embed_dim": 16, "heads": 2, "pep_channels": [8, 16], "mlp_ratio": 2.0},
    )
    model = build_model(spec, (1, 8, 8), 10)
    attach_masks(model)
    x = torch.rand(16, 1, 8, 8)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(x)
    model.reset_state()
    return model, [(x, torch.zeros(16, dtype=torch.long))]


def _energy(model, data):
    report = measure_energy(model, data, torch.device("cpu"), EnergySpec())
    return report, {c.name: c for c in report.layers}


def test_patch_keep_drops_block_energy():
    model, data = _model()
    dense, dense_layers = _energy(model, data)
    scores = multisp.patch_scores(model, data, 16)
    assert scores.shape == (16,)
    mask = multisp.keep_top_patches(model, scores, 0.5)
    assert int(mask.sum()) == 8 and bool(scores[mask].min() >= scores[~mask].max())
    sparse, layers = _energy(model, data)
    blocks = [n for n in layers if ".blocks." in n and "Matmul" not in layers[n].type]
    # dense ops of every projection / MLP layer halve exactly; Q.K^T pairs quarter
    for n in blocks:
        if layers[n].type == "Conv1d":
            assert layers[n].dense_ops == pytest.approx(dense_layers[n].dense_ops / 2)
    qk = "body.blocks.0.attn.qk"
    assert layers[qk].dense_ops == pytest.approx(dense_layers[qk].dense_ops / 4)
    assert sparse.energy_uj < dense.energy_uj


def test_pep_sparsity_and_binarization_lower_convpep_energy():
    model, data = _model()
    dense, dense_layers = _energy(model, data)
    msp = MultiSpSpec(pep_sparsity=0.9)
    masks = multisp.prune_groups(model, msp, 0.2, "layerwise", round_=1, total_rounds=1)
    attach_masks(model, masks)
    fields = multisp.ticket_fields(model)
    assert fields["pep_sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert fields["attn_sparsity"] == pytest.approx(0.2, abs=0.01)  # follows prune_rate
    pruned, layers = _energy(model, data)
    pep = [n for n in layers if ".patch_embed." in n and layers[n].type == "PEPConv2d"]
    assert sum(layers[n].energy_pj for n in pep) < sum(dense_layers[n].energy_pj for n in pep)
    assert layers[FIRST].macs < dense_layers[FIRST].macs

    # binarization: the encoding conv's multiply-accumulates become accumulates of the same count
    multisp.set_binary(model, weights=True, activations=False)
    binary, blayers = _energy(model, data)
    assert blayers[FIRST].macs == 0 and blayers[FIRST].binary_ops == pytest.approx(layers[FIRST].macs)
    assert blayers[FIRST].energy_pj == pytest.approx(layers[FIRST].energy_pj * 0.9 / 4.6)


def test_binary_activations_turn_qkv_macs_into_acs():
    model, data = _model()
    _, dense_layers = _energy(model, data)
    assert dense_layers[QKV].input_kind == "integer" and dense_layers[QKV].macs > 0
    multisp.set_binary(model, weights=False, activations=True)
    _, layers = _energy(model, data)
    assert layers[QKV].input_kind == "spike" and layers[QKV].macs == 0
    assert layers[QKV].energy_pj < dense_layers[QKV].energy_pj


def test_group_targets_reached_over_rounds():
    model, _ = _model()
    msp = MultiSpSpec(pep_sparsity=0.9, attn_sparsity=0.5, mlp_sparsity=0.75)
    for r in (1, 2, 3):
        attach_masks(model, multisp.prune_groups(model, msp, 0.3, "global", r, 3))
    fields = multisp.ticket_fields(model)
    assert fields["pep_sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert fields["attn_sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert fields["mlp_sparsity"] == pytest.approx(0.75, abs=1e-3)


def test_spec_rejects_multisp_for_other_models():
    with pytest.raises(SpecError, match="model spiking_cnn has no ConvPEP; multisp needs model.name: spikformer"):
        parse_spec({"multisp": {"patch_keep": 0.5}})
    with pytest.raises(SpecError, match="has no ConvPEP"):
        parse_spec({"space": {"pep_sparsity": {"type": "float", "low": 0.5, "high": 0.9}}})
    spec = parse_spec(
        {
            "model": {"name": "spikformer"},
            "space": {
                "patch_keep": {"type": "float", "low": 0.25, "high": 1.0},
                "pep_binary_weights": {"type": "categorical", "choices": [True, False]},
            },
        }
    )
    assert spec.with_params({"patch_keep": 0.5}).multisp.patch_keep == 0.5
    with pytest.raises(SpecError, match="multisp"):
        parse_spec({"model": {"name": "spikformer"}, "multisp": {"patch_keep": 0.0}})


def _small_spikformer_trial(tickets: dict, multisp: dict):
    """A one-epoch, T=1 spec of a narrowed tiny Spikformer on digits, for whole-trial MultiSp tests."""
    return parse_spec(
        {
            "model": {"name": "spikformer", "preset": "tiny", "time_steps": 1,
                      "options": {"embed_dim": 16, "pep_channels": [8, 16]}},
            "data": {"batch_size": 128},
            "train": {"epochs": 1},
            "tickets": tickets,
            "objective": {"energy": {"samples": 32}},
            "multisp": multisp,
        }
    )


@pytest.mark.slow
def test_trial_records_every_level():
    from sltsearch.trial import run_trial

    spec = _small_spikformer_trial(
        tickets={"rounds": 1, "prune_rate": 0.5},
        multisp={"patch_keep": 0.5, "pep_sparsity": 0.9, "pep_binary_weights": True, "pep_binary_activations": True},
    )
    dense, ticket = run_trial(spec, {})
    assert dense.tokens_kept == 16 and dense.pep_binary_weights is False
    assert ticket.tokens_kept == 8 and ticket.patch_keep == 0.5
    assert ticket.pep_sparsity == pytest.approx(0.9, abs=1e-3)
    assert ticket.pep_binary_weights and ticket.pep_binary_activations
    assert ticket.pep_first_binary and ticket.pep_first_sparsity > 0
    assert ticket.energy_uj < dense.energy_uj


@pytest.mark.slow
def test_trial_with_dense_first_conv_over_rounds():
    from sltsearch.trial import run_trial

    spec = _small_spikformer_trial(
        tickets={"rounds": 2, "prune_rate": 0.3},
        multisp={"pep_sparsity": 0.9, "pep_binary_weights": True, "pep_first_conv": "dense"},
    )
    dense, first, second = run_trial(spec, {})
    assert dense.pep_first_sparsity == 0.0 and dense.pep_first_binary is False
    assert first.pep_sparsity == pytest.approx(1 - 0.1**0.5, abs=1e-3)  # geometric schedule
    assert second.pep_sparsity == pytest.approx(0.9, abs=1e-3)
    assert second.pep_first_sparsity == 0.0 and second.pep_first_binary is False and second.pep_binary_weights


def test_every_level_works_on_one_d_signals():
    torch.manual_seed(0)
    spec = ModelSpec(name="spikformer", preset="tiny", time_steps=2,
                     options={"embed_dim": 16, "pep_channels": [8, 16]})
    model = build_model(spec, (1, 40), 10)
    attach_masks(model)
    x = torch.rand(8, 1, 40)
    model.train()
    model(x)  # BatchNorm statistics, so eval-mode layers spike
    model.reset_state()
    data = [(x, torch.zeros(8, dtype=torch.long))]
    dense, _ = _energy(model, data)
    mask = multisp.keep_top_patches(model, multisp.patch_scores(model, data, 8), 0.5)
    assert int(mask.sum()) == 10
    attach_masks(model, multisp.prune_groups(model, MultiSpSpec(pep_sparsity=0.9), 0.5, "global", 1, 1))
    multisp.set_binary(model, weights=True, activations=True)
    fields = multisp.ticket_fields(model)
    assert fields["tokens_kept"] == 10 and fields["tokens_total"] == 20
    assert fields["pep_sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert fields["pep_binary_weights"] and fields["pep_binary_activations"]
    tokens = model.body.patch_embed(model.encoder(x, 2))
    model.reset_state()
    assert tokens.shape[-1] == 10 and set(tokens.unique().tolist()) <= {0.0, 1.0}
    sparse, layers = _energy(model, data)
    first = layers["body.patch_embed.stages.0.conv_bn.block.0"]
    assert first.type == "PEPConv1d" and first.macs == 0 and first.binary_ops > 0
    assert sparse.energy_uj < dense.energy_uj
    out = model(x)
    out.sum().backward()
    assert out.shape == (8, 10)


def test_first_conv_real_keeps_it_out_of_binarization():
    model, data = _model()
    multisp.set_binary(model, weights=True, activations=False, first_real=True)
    pe = model.body.patch_embed
    convs = [m for m in pe.modules() if hasattr(m, "binary_weights")]
    assert not convs[0].sltsearch_binary and all(m.sltsearch_binary for m in convs[1:])
    fields = multisp.ticket_fields(model)
    assert fields["pep_binary_weights"] and fields["pep_first_binary"] is False
    _, layers = _energy(model, data)
    assert layers[FIRST].macs > 0 and layers[FIRST].binary_ops == 0  # real weights on real pixels: MACs
    assert layers["body.patch_embed.stages.1.conv_bn.block.0"].binary_ops > 0


def test_first_conv_dense_counts_in_the_whole_convpep_target():
    model, _ = _model()
    msp = MultiSpSpec(pep_sparsity=0.9, pep_first_conv="dense")
    assert multisp.first_pep_conv(model) == FIRST
    for r in (1, 2, 3):
        attach_masks(model, multisp.prune_groups(model, msp, 0.3, "global", r, 3))
    fields = multisp.ticket_fields(model)
    assert fields["pep_first_sparsity"] == 0.0
    assert fields["pep_sparsity"] == pytest.approx(0.9, abs=1e-3)  # the whole ConvPEP, first conv included
    rest = [n for n, g in multisp.layer_groups(model).items() if g == "pep" and n != FIRST]
    layers = dict(model.named_modules())
    rest_sparsity = sum(int((layers[n].weight == 0).sum()) for n in rest) / sum(layers[n].weight.numel() for n in rest)
    assert rest_sparsity > 0.9
    # unreachable: the first conv alone is 72 of 3,528 ConvPEP weights (2 %)
    with pytest.raises(SpecError, match="cannot be reached with pep_first_conv: dense"):
        multisp.check_reachable(model, MultiSpSpec(pep_sparsity=0.99, pep_first_conv="dense"))
    multisp.check_reachable(model, MultiSpSpec(pep_sparsity=0.97, pep_first_conv="dense"))


def test_pep_first_conv_is_searchable_and_validated():
    spec = parse_spec(
        {"model": {"name": "spikformer"},
         "space": {"pep_first_conv": {"type": "categorical", "choices": ["same", "real", "dense"]}}}
    )
    assert spec.with_params({"pep_first_conv": "dense"}).multisp.pep_first_conv == "dense"
    with pytest.raises(SpecError, match="pep_first_conv"):
        parse_spec({"model": {"name": "spikformer"}, "multisp": {"pep_first_conv": "frozen"}})
    with pytest.raises(SpecError, match="has no ConvPEP"):
        parse_spec({"multisp": {"pep_first_conv": "real"}})
