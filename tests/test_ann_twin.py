"""The ANN twin (issue 23): ``model.neuron.type: relu`` builds the same layers with ReLU, runs once, is pruned,
measured (every synaptic op a MAC), stored with ``network = ann`` and exported like any ticket."""

from __future__ import annotations

import importlib
import uuid
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import tiny_spec_dict, write_spec
from spikingjelly.activation_based.neuron import BaseNode
from typer.testing import CliRunner

import sltsearch
from sltsearch.cli import app
from sltsearch.energy_model import measure_energy
from sltsearch.errors import SpecError, UserError
from sltsearch.models import build_model
from sltsearch.models.twin import ReLUActivation
from sltsearch.results import unique_tickets
from sltsearch.results.plots import dense_labels, plot_front
from sltsearch.spec import EnergySpec, parse_spec
from sltsearch.tickets import attach_masks, magnitude_prune
from sltsearch.trial import stages

runner = CliRunner()
FAMILIES = [
    ("spiking_cnn", (1, 8, 8), {}),
    ("spiking_cnn", (1, 40), {}),
    ("spiking_vgg", (1, 8, 8), {}),
    ("spiking_resnet", (1, 8, 8), {}),
    ("spikformer", (1, 8, 8), {}),
    ("spikformer", (1, 40), {"attention": "softmax"}),
]


def _model(name: str, shape: tuple[int, ...], options: dict, neuron: str, **model: object) -> torch.nn.Module:
    spec = parse_spec({"model": {"name": name, "options": options, "neuron": {"type": neuron}, **model}})
    torch.manual_seed(0)
    return build_model(spec.model, shape, 10)


@pytest.mark.parametrize(("name", "shape", "options"), FAMILIES)
def test_every_family_has_a_twin_with_the_same_layers_run_once(name: str, shape: tuple, options: dict) -> None:
    snn = _model(name, shape, options, "lif", time_steps=4)
    ann = _model(name, shape, options, "relu", time_steps=4)
    assert (snn.network, snn.time_steps, ann.network, ann.time_steps) == ("snn", 4, "ann", 1)
    assert {k: v.shape for k, v in snn.state_dict().items()} == {k: v.shape for k, v in ann.state_dict().items()}
    assert not any(isinstance(m, BaseNode) for m in ann.modules())
    relus = sum(isinstance(m, ReLUActivation) for m in ann.modules())
    assert relus == sum(isinstance(m, BaseNode) for m in snn.modules()) > 0  # one ReLU where each neuron was
    out = ann(torch.rand(3, *shape))
    assert out.shape == (3, 10) and bool((out != 0).any())


def _mac_reference(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(MACs at every input position, MACs at non-zero inputs) by brute force: conv of ones / of 1[x != 0] with
    1[w != 0] for every Conv/Linear, summed; and ReLU output density."""
    totals = [0.0, 0.0]
    hooks = []

    def hook(module: torch.nn.Module, inputs: tuple, _out: torch.Tensor) -> None:
        xin = inputs[0].detach()
        w = (module.weight != 0).float()
        for i, operand in enumerate((torch.ones_like(xin), (xin != 0).float())):
            if isinstance(module, torch.nn.Linear):
                totals[i] += float((operand.reshape(-1, w.shape[1]) @ w.t()).sum())
            else:
                conv = torch.nn.functional.conv2d if w.dim() == 4 else torch.nn.functional.conv1d
                rows = operand.reshape(-1, *operand.shape[-(w.dim() - 1) :])
                totals[i] += float(conv(rows, w, stride=module.stride, padding=module.padding).sum())

    for m in model.modules():
        if isinstance(m, torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Linear):
            hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return totals[0] / len(x), totals[1] / len(x)


@pytest.mark.parametrize("name", ["spiking_cnn", "spiking_resnet"])
def test_twin_energy_is_dense_macs_per_surviving_synapse_whatever_t(name: str) -> None:
    shape = (1, 8, 8)
    x = torch.rand(16, *shape)
    loader = [(x, torch.zeros(16, dtype=torch.long))]
    reports = {}
    for steps in (2, 8):
        model = _model(name, shape, {}, "relu", time_steps=steps)
        attach_masks(model)
        magnitude_prune(model, 0.6, "global")
        model.eval()
        for real_inputs in ("all", "nonzero"):
            energy = EnergySpec(real_inputs=real_inputs, count_neuron_updates=True)
            reports[steps, real_inputs] = measure_energy(model, loader, torch.device("cpu"), energy)
    every, nonzero = _mac_reference(model, x)
    dense, sparse = reports[8, "all"], reports[8, "nonzero"]
    assert dense.macs == pytest.approx(every) and sparse.macs == pytest.approx(nonzero)
    assert sparse.macs < dense.macs
    assert dense.acs == dense.binary_ops == dense.neuron_updates == 0.0  # ReLUs are never neuron updates
    assert dense.energy_uj == pytest.approx(dense.macs * 4.6e-6)
    assert dense.network == "ann" and dense.time_steps == 1
    assert reports[2, "all"].macs == dense.macs and reports[2, "all"].energy_uj == dense.energy_uj  # T is moot
    # firing_rate = activation density: non-zero ReLU outputs / ReLU outputs
    outs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: outs.append(o)) for m in model.modules()
             if isinstance(m, ReLUActivation)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    density = sum(float((o != 0).sum()) for o in outs) / sum(o.numel() for o in outs)
    assert dense.firing_rate == pytest.approx(density)


def test_spikformer_twin_attention_is_macs_at_every_pair_and_binary_activations_stay_acs() -> None:
    shape = (1, 8, 8)
    x = torch.rand(8, *shape)
    loader = [(x, torch.zeros(8, dtype=torch.long))]
    model = _model("spikformer", shape, {}, "relu")
    model.eval()
    report = measure_energy(model, loader, torch.device("cpu"), EnergySpec())
    layers = {c.name: c for c in report.layers}
    qk = next(c for n, c in layers.items() if n.endswith("attn.qk"))
    assert qk.input_kind == "real" and qk.macs == qk.dense_ops and qk.acs == 0  # [H, L, d] x [H, d, L]: every pair
    assert report.acs == 0.0
    nonzero = measure_energy(model, loader, torch.device("cpu"), EnergySpec(real_inputs="nonzero"))
    assert next(c for c in nonzero.layers if c.name.endswith("attn.qk")).macs <= qk.macs
    # MultiSp level 3 on the twin: the ConvPEP output becomes {0, 1}, so the first Q/K/V projection accumulates
    model.body.patch_embed.binary_activation.fill_(True)
    binary = measure_energy(model, loader, torch.device("cpu"), EnergySpec())
    qkv = next(c for c in binary.layers if c.name.endswith("blocks.0.attn.qkv_conv_bn.0"))
    assert qkv.input_kind == "spike" and qkv.acs > 0 and qkv.macs == 0


def test_spec_rules_for_the_twin(tmp_path: Path) -> None:
    spec = parse_spec(tiny_spec_dict(space={"model.neuron.type": {"type": "categorical", "choices": ["lif", "relu"]}}))
    assert spec.with_params({"model.neuron.type": "relu"}).model.network == "ann"
    with pytest.raises(SpecError, match="rate encoding draws spikes"):
        parse_spec(tiny_spec_dict(model={"neuron": {"type": "relu"}, "encoder": "rate"}))
    with pytest.raises(SpecError, match=r"model\.neuron\.type='relu' with encoder='rate'"):
        parse_spec(tiny_spec_dict(space={"model.neuron.type": {"type": "categorical", "choices": ["lif", "relu"]},
                                         "encoder": {"type": "categorical", "choices": ["direct", "rate"]}}))
    frames = parse_spec(tiny_spec_dict(model={"neuron": {"type": "relu"}}))
    with pytest.raises(SpecError, match="event-frame data"):
        build_model(frames.model, (2, 8, 8), 10, frames=True)


def test_twin_stage_keys_ignore_t_and_spiking_parameters_only() -> None:
    base = parse_spec(tiny_spec_dict(model={"neuron": {"type": "relu"}}))
    key = stages.dense_key(base)
    for change in ({"model.time_steps": 8}, {"model.neuron.tau": 3.0}, {"model.neuron.v_threshold": 0.5},
                   {"model.neuron.surrogate": "sigmoid"}):
        assert stages.dense_key(base.with_params(change)) == key, change
    for change in ({"model.neuron.type": "lif"}, {"train.lr": 0.02}, {"model.preset": "small"}, {"seed": 1}):
        assert stages.dense_key(base.with_params(change)) != key, change
    snn = base.with_params({"model.neuron.type": "lif"})
    assert stages.dense_key(snn) != stages.dense_key(snn.with_params({"model.time_steps": 8}))
    # early-time tickets have nothing to shorten in the twin: plain IMP
    assert stages.search_spec(base.with_params({"tickets.time_steps_search": 1})).model.time_steps == 2


USER_NETS = '''
import torch
from spikingjelly.activation_based import layer, neuron


def own_neurons(input_shape, num_classes, options):
    return torch.nn.Sequential(
        layer.Flatten(), layer.Linear(64, 16), neuron.LIFNode(), layer.Linear(16, num_classes), neuron.IFNode()
    )


def takes_make_neuron(input_shape, num_classes, options, make_neuron):
    return torch.nn.Sequential(layer.Flatten(), layer.Linear(64, 16), make_neuron(), layer.Linear(16, num_classes))


def no_neurons(input_shape, num_classes, options):
    return torch.nn.Sequential(layer.Flatten(), layer.Linear(64, num_classes))
'''


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"usernet_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(USER_NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return name


def test_a_users_network_has_a_twin_when_its_neurons_can_be_replaced(user_module: str) -> None:
    from sltsearch.spec.preflight import check_user_inputs

    for fn in ("own_neurons", "takes_make_neuron"):
        spec = parse_spec(tiny_spec_dict(model={"name": f"{user_module}:{fn}", "neuron": {"type": "relu"}}))
        model = build_model(spec.model, (1, 8, 8), 10)
        assert model.network == "ann" and not any(isinstance(m, BaseNode) for m in model.modules())
        assert sum(isinstance(m, ReLUActivation) for m in model.modules()) == (2 if fn == "own_neurons" else 1)
        check_user_inputs(spec, {})  # the 2-sample probe at T = 1 passes
    spec = parse_spec(tiny_spec_dict(model={"name": f"{user_module}:no_neurons", "neuron": {"type": "relu"}}))
    with pytest.raises(SpecError, match="no spiking neurons to replace with ReLU"):
        check_user_inputs(spec, {})


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A search over neuron.type and T: SNN and ANN tickets of the tiny CNN in one run (4 trials)."""
    root = tmp_path_factory.mktemp("mixed")
    spec = tiny_spec_dict(
        train={"epochs": 1},
        tickets={"rounds": 1, "prune_rate": 0.5, "controls": ["random_prune"]},
        search={"n_trials": 4, "population_size": 2, "sampler": "random"},
        space={
            "model.neuron.type": {"type": "categorical", "choices": ["lif", "relu"]},
            "time_steps": {"type": "categorical", "choices": [1, 2]},
        },
    )
    return sltsearch.run(write_spec(root / "spec.yaml", spec), run_dir=root / "run").run_dir


def _ann_trials(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["network"] == "ann"]


def test_one_search_holds_snn_and_ann_tickets(mixed_run: Path) -> None:
    frame = sltsearch.load(mixed_run)
    assert set(frame["network"]) == {"snn", "ann"}, "the seeded random sampler draws both types in 4 trials"
    ann = _ann_trials(frame)
    assert (ann["time_steps"] == 1).all() and (ann["param_model.neuron.type"] == "relu").all()
    assert (frame[frame["network"] == "snn"]["param_model.neuron.type"] == "lif").all()
    assert {"dense", "imp", "random_prune"} <= set(ann["kind"])
    # twins of trials with different T share their stages: one dense ANN ticket, its T blanked in the front view
    unique = unique_tickets(frame)
    dense_ann = unique[(unique["network"] == "ann") & (unique["kind"] == "dense")]
    assert len(dense_ann) == 1 and dense_ann["param_time_steps"].isna().all()
    assert unique[unique["network"] == "snn"]["param_time_steps"].notna().all()


def test_pareto_shows_the_network_and_plots_both_kinds(mixed_run: Path, tmp_path: Path) -> None:
    html = tmp_path / "front.html"
    result = runner.invoke(app, ["pareto", str(mixed_run), "--plot", str(html), "--csv", str(tmp_path / "f.csv")])
    assert result.exit_code == 0, result.output
    assert " net " in result.output and "ann" in result.output and "one per T and network" in result.output
    page = html.read_text()
    assert "SNN tickets" in page and "ANN tickets" in page and "dense ANN" in page and "dense SNN" in page
    assert '"symbol":"triangle-up"' in page.replace(" ", "") and '"symbol":"diamond"' in page.replace(" ", "")
    png = plot_front(sltsearch.load(mixed_run), sltsearch.pareto(mixed_run), {"val_accuracy": "maximize",
                     "energy_uj": "minimize"}, tmp_path / "front.png", "t")
    assert png is not None and png.read_bytes().startswith(b"\x89PNG")
    dense = pd.DataFrame({"time_steps": [2, 1], "network": ["snn", "ann"], "ticket_id": ["a", "b"]})
    assert dense_labels(dense) == ["dense T=2", "dense ANN"]


def test_an_ann_ticket_exports_and_reloads_to_the_same_numbers(mixed_run: Path, tmp_path: Path) -> None:
    frame = sltsearch.load(mixed_run)
    ticket = str(_ann_trials(frame).query("kind == 'imp'")["ticket_id"].iloc[0])
    result = sltsearch.export(mixed_run, ticket=ticket, out=tmp_path / "ann")
    assert result.reproduced, result.manifest["export_check"]["metrics"]
    assert result.manifest["model_io"]["network"] == "ann" and result.manifest["model_io"]["time_steps"] == 1
    evaluation = sltsearch.evaluate(result.path)
    assert evaluation.matches, evaluation.metrics
    model, _ = sltsearch.load_ticket(result.path)
    assert model.network == "ann" and model.time_steps == 1
    with pytest.raises(UserError, match="ANN twin ticket .* has no NIR form"):
        sltsearch.export(mixed_run, ticket=ticket, out=tmp_path / "nir", format="nir")
    assert not (tmp_path / "nir").exists()


def test_rungs_and_front_table_follow_the_network() -> None:
    from sltsearch.cli.tables import front_table
    from sltsearch.search.early_stop import last_rung

    spec = parse_spec(tiny_spec_dict(tickets={"rounds": 3, "time_steps_search": 1}))
    assert last_rung(spec, {}) == 0  # early-time search rounds are no rungs
    assert last_rung(spec, {"model.neuron.type": "relu"}) == 3  # the twin ignores time_steps_search: IMP rounds
    rows = pd.DataFrame({"ticket_id": ["t0000r00", "t0001r00"], "network": ["snn", "snn"], "sparsity": [0.0, 0.0],
                         "val_accuracy": [0.9, 0.8], "energy_uj": [1.0, 0.5], "param_model.neuron.type": ["lif"] * 2})
    objectives = {"val_accuracy": "maximize", "energy_uj": "minimize"}
    headers = [c.header for c in front_table(rows, objectives, "t").columns]
    assert "net" not in headers and "model.neuron.type" in headers  # a spiking run looks as before
    headers = [c.header for c in front_table(rows.assign(network=["snn", "ann"]), objectives, "t").columns]
    assert "net" in headers and "model.neuron.type" not in headers  # the net column says it
