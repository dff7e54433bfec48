"""The encoding layer as a lever (issue #15): its own sparsity target, the encoder as a searchable choice
(direct, rate, learned), and tickets saying whether their energy assumes ``first_layer: once``."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_spec_dict
from torch.utils.data import DataLoader, TensorDataset

import sltsearch.trial.stages as stages
from sltsearch.energy_model import measure_energy
from sltsearch.errors import SpecError
from sltsearch.models import build_model
from sltsearch.models.registry import resolved_options
from sltsearch.spec import EnergySpec, ModelSpec, parse_spec
from sltsearch.spec.keys import content_key
from sltsearch.tickets import attach_masks, encoding, prunable_layers
from sltsearch.trial import run_trial


def _measure(model, x, batch_size=8, **opts):
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=batch_size)
    return measure_energy(model, loader, torch.device("cpu"), EnergySpec(**opts))


@pytest.mark.parametrize("family", ["spiking_cnn", "spiking_vgg", "spiking_resnet", "spikformer"])
@pytest.mark.parametrize("encoder", ["direct", "learned"])
def test_encoding_layer_is_the_first_layer_the_counter_sees(family: str, encoder: str) -> None:
    torch.manual_seed(0)
    model = build_model(ModelSpec(name=family, encoder=encoder, time_steps=2), (1, 8, 8), 10)
    attach_masks(model)
    report = _measure(model, torch.rand(4, 1, 8, 8), batch_size=4)
    name = encoding.encoding_layer(model)
    assert report.encoding_layer == name
    first = {c.name: c for c in report.layers}[name]
    assert first.input_kind == "real" and first.macs > 0 and report.encoder == encoder
    if encoder == "learned":
        assert name == "encoder.conv"
        # the body's first layer now sees the encoder's spikes
        second = next(c for c in report.layers if c.type.startswith(("Conv", "Linear")) and c.name != name)
        assert second.input_kind == "spike"


def test_learned_encoder_pays_real_macs_once_per_sample() -> None:
    torch.manual_seed(0)
    x = torch.rand(6, 1, 8, 8)
    macs = {}
    for t in (2, 4):
        torch.manual_seed(0)
        model = build_model(ModelSpec(encoder="learned", encoder_channels=4, time_steps=t), (1, 8, 8), 10)
        attach_masks(model)
        report = _measure(model, x)
        enc = {c.name: c for c in report.layers}["encoder.conv"]
        macs[t] = enc.macs
        assert not report.first_layer_once and not enc.once  # no assumption needed: it runs once
    # conv(1, 1[w!=0]) over one 8x8 image, 4 output channels, no padding taps: (3*8-2)^2 * 4, whatever T is
    assert macs[2] == macs[4] == pytest.approx(22 * 22 * 4)


def test_direct_encoding_with_first_layer_once_is_flagged() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 1, 8, 8)
    model = build_model(ModelSpec(time_steps=4), (1, 8, 8), 10)
    attach_masks(model)
    per_step, once = _measure(model, x), _measure(model, x, first_layer="once")
    assert not per_step.first_layer_once and once.first_layer_once
    assert once.encoding_energy_uj == pytest.approx(per_step.encoding_energy_uj / 4)
    rate = build_model(ModelSpec(time_steps=4, encoder="rate"), (1, 8, 8), 10)
    attach_masks(rate)
    report = _measure(rate, x, first_layer="once")
    assert not report.first_layer_once and report.layers[0].input_kind == "spike"


def test_prune_encoding_follows_a_geometric_schedule() -> None:
    torch.manual_seed(0)
    model = build_model(ModelSpec(time_steps=2), (1, 8, 8), 10)
    attach_masks(model)
    name = encoding.encoding_layer(model)
    layer = prunable_layers(model)[name]
    n = layer.weight.numel()
    for r in (1, 2, 3):
        mask = encoding.prune_encoding(model, name, 0.875, r, 3)
        assert 1 - int(mask.sum()) / n == pytest.approx(1 - 0.5 ** r, abs=1 / n)  # (1 - 0.875)^(r/3) = 0.5^r
        attach_masks(model, {name: mask})
    kept = layer.weight.detach().abs()[layer.weight_mask]
    assert kept.min() >= layer.weight.detach().abs().max() * 0 and int(layer.weight_mask.sum()) == round(n / 8)


@pytest.mark.slow
def test_trial_reaches_the_encoding_target_and_rows_say_so() -> None:
    spec = parse_spec(
        tiny_spec_dict(
            tickets={"rounds": 2, "prune_rate": 0.5, "encoding_sparsity": 0.9},
            train={"epochs": 1},
            objective={"energy": {"samples": 32, "first_layer": "once"}},
        )
    )
    tickets = run_trial(spec, {})
    dense, final = tickets[0], tickets[-1]
    n = 32 * 9  # tiny CNN first conv: 1 -> 32, 3x3
    assert final.encoding_sparsity == pytest.approx(round(0.9 * n) / n)
    assert tickets[1].encoding_sparsity == pytest.approx(round((1 - 0.1**0.5) * n) / n)
    assert dense.encoding_sparsity == 0.0
    assert final.encoder == "direct" and final.first_layer_once and 0 < final.encoding_energy_uj <= final.energy_uj
    assert final.encoding_energy_uj < dense.encoding_energy_uj
    # the other layers followed prune_rate, ranked without the first conv: half of the remaining per round
    total = final.prunable_params - n
    after_one = total - round(0.5 * total)
    assert final.nonzero_params - (n - round(0.9 * n)) == after_one - round(0.5 * after_one)
    assert "param_encoding_sparsity" not in final.row()  # a spec value, not a searched one


def test_keys_stay_valid_unless_the_new_fields_are_set() -> None:
    spec = parse_spec(tiny_spec_dict())
    old_dense = content_key(
        {
            "data": spec.data.model_dump(mode="json", exclude={"path"}),  # fields newer than the key: unset
            "model": spec.model.model_dump(mode="json", exclude={"encoder_channels", "version"}),
            "model_options": resolved_options(spec.model),
            "train": spec.train.model_dump(mode="json", exclude={"device"}),
            "seed": spec.seed,
        }
    )
    assert stages.dense_key(spec) == old_dense
    old_round = content_key({"dense": "d", "rewind_epoch": 0, "scope": "global", "rates": [0.5]})
    assert stages.round_key("d", spec, [0.5]) == old_round
    targeted = parse_spec(tiny_spec_dict(tickets={"rounds": 1, "encoding_sparsity": 0.5}))
    assert stages.round_key("d", targeted, [0.5]) != old_round
    wide = parse_spec(tiny_spec_dict(model={"encoder": "learned", "encoder_channels": 8}))
    assert stages.dense_key(wide) != stages.dense_key(wide.model_copy(update={"model": wide.model.model_copy(
        update={"encoder_channels": None})}))


def test_spec_levers_are_searchable_and_checked() -> None:
    spec = parse_spec(
        tiny_spec_dict(
            space={
                "encoder": {"type": "categorical", "choices": ["direct", "rate", "learned"]},
                "encoding_sparsity": {"type": "float", "low": 0.0, "high": 0.95},
            }
        )
    )
    concrete = spec.with_params({"encoder": "learned", "encoding_sparsity": 0.5})
    assert concrete.model.encoder == "learned" and concrete.tickets.encoding_sparsity == 0.5
    with pytest.raises(SpecError, match="early_bird"):
        parse_spec(tiny_spec_dict(tickets={"strategy": "early_bird", "target_sparsity": 0.5, "encoding_sparsity": 0.5}))
    with pytest.raises(SpecError, match="keep_dense"):
        parse_spec(tiny_spec_dict(tickets={"keep_dense": ["first"], "encoding_sparsity": 0.5}))
    with pytest.raises(SpecError, match="encoder"):
        parse_spec(tiny_spec_dict(model={"encoder": "poisson"}))
    pep_dense = {"multisp": {"pep_first_conv": "dense"}, "tickets": {"encoding_sparsity": 0.5}}
    with pytest.raises(SpecError, match="pep_first_conv"):
        parse_spec(tiny_spec_dict(model={"name": "spikformer"}, **pep_dense))
    # with a learned encoder the encoding layer is the encoder's conv, not the first ConvPEP conv
    assert parse_spec(tiny_spec_dict(model={"name": "spikformer", "encoder": "learned"}, **pep_dense))


def test_front_shows_which_tickets_assume_first_layer_once() -> None:
    import pandas as pd
    from rich.console import Console

    from sltsearch.cli.tables import front_table

    def render(flags: list[bool]) -> str:
        front = pd.DataFrame(
            {"ticket_id": ["t0000r00", "t0001r01"], "val_accuracy": [0.9, 0.8], "energy_uj": [0.2, 0.1],
             "first_layer_once": flags, "param_encoder": ["direct", "learned"]}
        )
        console = Console(width=120, record=True)
        console.print(front_table(front, {"val_accuracy": "maximize", "energy_uj": "minimize"}, "front"))
        return console.export_text()

    shown = render([True, False])
    assert " 1x" in shown and "enc" in shown and "learned" in shown
    assert " 1x" not in render([False, False])  # no ticket assumes it: no column
