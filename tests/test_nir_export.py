"""NIR export per target: the graph each consumer (snnTorch, Sinabs, Rockpool) imports with its own public API
runs to the ticket's outputs; BatchNorm folding keeps pruned weights zero; what a target cannot express is
refused in one line that says what would export; the consumers' limits we rely on are pinned."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import layer

nir = pytest.importorskip("nir")
pytest.importorskip("snntorch")
pytest.importorskip("sinabs")
if importlib.util.find_spec("rockpool") is None:  # imported through sltsearch.compat.rockpool (no samna shim)
    pytest.skip("rockpool is not installed", allow_module_level=True)

from sltsearch.models import SpikingClassifier, build_model  # noqa: E402
from sltsearch.models.encoders import DirectEncoder  # noqa: E402
from sltsearch.models.neurons import neuron_factory  # noqa: E402
from sltsearch.spec import ModelSpec, NeuronSpec  # noqa: E402
from sltsearch.ticket_io.nir_consumers import import_graph  # noqa: E402
from sltsearch.ticket_io.nir_export import NirUnsupported, ticket_graph  # noqa: E402
from sltsearch.tickets import attach_masks, magnitude_prune  # noqa: E402

HARD = {}  # the default neuron: LIF, reset to 0, one spike per step at most (snnTorch)
MULTI = {"type": "lif_multi", "v_reset": None}  # reset by subtraction, several spikes per step (Sinabs)
SOFT = {"v_reset": None}  # reset by subtraction, one spike per step at most (neither)


def _io(shape: tuple[int, ...], family: str = "spiking_cnn", steps: int = 4) -> dict:
    return {"family": family, "input_shape": list(shape), "num_classes": 10, "frames": False, "time_steps": steps}


def _prune_and_perturb(model: torch.nn.Module, drive: float = 4.0) -> torch.nn.Module:
    """Pruned 60 % with non-trivial BatchNorm statistics, strong enough that every layer fires on rand inputs."""
    attach_masks(model)
    attach_masks(model, magnitude_prune(model, 0.6, "global"))
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(-1.0, 3.0)  # some negative scales: folding flips those channels' signs
                mod.bias.uniform_(0.2, 1.0)
            if isinstance(mod, torch.nn.Linear):
                mod.weight.mul_(drive)
    return model.eval()


def _ticket_model(family: str, preset: str, neuron: dict, shape: tuple[int, ...] = (1, 8, 8)) -> tuple:
    torch.manual_seed(0)
    spec = ModelSpec(name=family, preset=preset, time_steps=4, neuron=neuron)
    return _prune_and_perturb(build_model(spec, shape, 10)), _io(shape, family)


def _mlp(neuron: dict | None) -> tuple:
    """A user's MLP on flat (tabular) samples: Linear-LIF-Linear, or Linear only when ``neuron`` is None."""
    torch.manual_seed(0)
    mods: list[torch.nn.Module] = [layer.Linear(20, 32)]
    if neuron is not None:
        mods += [layer.BatchNorm1d(32), neuron_factory(NeuronSpec(**neuron))(), layer.Linear(32, 10)]
    model = SpikingClassifier(DirectEncoder(), torch.nn.Sequential(*mods), 4, "user_mlp")
    return _prune_and_perturb(model, drive=1.0), _io((20,), "user_mlp")


def _through_file(graph: object, tmp_path: Path) -> object:
    nir.write(str(tmp_path / "t.nir"), graph)
    return nir.read(str(tmp_path / "t.nir"))


def _both(model: torch.nn.Module, graph: object, target: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        expected = model(x)
    model.reset_state()
    in_shape = tuple(int(v) for v in graph.nodes["input"].input_type["input"])
    got = import_graph(graph, target, model.time_steps)(x.reshape(x.shape[0], *in_shape))
    return expected, got


CASES = [
    ("spiking_cnn", "deployable", HARD, (1, 8, 8), "snntorch"),
    ("spiking_vgg", "deployable", {"type": "plif"}, (1, 8, 8), "snntorch"),
    ("spiking_cnn", "deployable", HARD, (1, 40), "snntorch"),  # 1-D: Conv2d over [C, 1, L]
    ("spiking_cnn", "deployable", MULTI, (1, 8, 8), "sinabs"),
    ("spiking_vgg", "deployable", MULTI, (1, 8, 8), "sinabs"),
    ("spiking_cnn", "deployable", MULTI, (1, 40), "sinabs"),
]


@pytest.mark.parametrize(("family", "preset", "neuron", "shape", "target"), CASES)
def test_the_consumer_runs_the_graph_to_the_tickets_outputs(family, preset, neuron, shape, target, tmp_path) -> None:
    """Each consumer computes the ticket's arithmetic: the same class on every sample, the readout to float
    rounding (snnTorch spike-exact; Sinabs decays by exp(-1/tau) and scales the membrane by tau)."""
    model, io = _ticket_model(family, preset, neuron, shape)
    graph = _through_file(ticket_graph(model, io, target)[0], tmp_path)
    x = torch.rand(64, *shape, generator=torch.Generator().manual_seed(1))
    rates: list[float] = []
    hooks = [m.register_forward_hook(lambda m, i, o: rates.append(float(o.mean()))) for m in model.modules()
             if type(m).__name__.startswith(("Fused", "MultiSpike"))]
    expected, got = _both(model, graph, target, x)
    for h in hooks:
        h.remove()
    assert rates and all(0.0 < r < 0.99 for r in rates), rates  # spikes flow through every layer
    assert torch.equal(expected.argmax(1), got.argmax(1))
    assert torch.allclose(got, expected, atol=1e-4), float((got - expected).abs().max())


@pytest.mark.parametrize("target", ["snntorch", "sinabs"])
def test_a_users_mlp_on_flat_samples_runs_in_snntorch_and_sinabs(target: str, tmp_path: Path) -> None:
    model, io = _mlp(HARD if target == "snntorch" else MULTI)
    graph = _through_file(ticket_graph(model, io, target)[0], tmp_path)
    chain, nxt = [], dict(graph.edges)
    node = "input"
    while node:
        chain.append(type(graph.nodes[node]).__name__)
        node = nxt.get(node)
    assert chain == ["Input", "Affine", "LIF", "Affine", "Output"]
    expected, got = _both(model, graph, target, torch.rand(64, 20, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(expected.argmax(1), got.argmax(1)) and torch.allclose(got, expected, atol=1e-4)


def test_rockpool_runs_a_network_of_linear_layers(tmp_path: Path) -> None:
    model, io = _mlp(None)
    graph = _through_file(ticket_graph(model, io, "rockpool")[0], tmp_path)
    x = torch.rand(16, 20, generator=torch.Generator().manual_seed(1))
    expected, got = _both(model, graph, "rockpool", x)
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("target", ["snntorch", "sinabs"])
def test_batchnorm_folding_keeps_every_pruned_weight_zero_and_the_sparsity(target: str) -> None:
    model, io = _ticket_model("spiking_cnn", "deployable", HARD if target == "snntorch" else MULTI)
    graph, holders = ticket_graph(model, io, target)
    state = model.state_dict()
    assert set(holders.values()) == {"body.0", "body.4", "body.9"}
    for node, layer_name in holders.items():
        weight = np.asarray(graph.nodes[node].weight)
        mask = state[f"{layer_name}.weight_mask"].numpy()
        assert weight.shape == mask.shape
        assert np.array_equal(weight == 0, ~mask), layer_name  # zero exactly where pruned, nowhere else
        assert not np.signbit(weight[~mask]).any()  # +0.0, not -0.0 from a negative BatchNorm scale
    assert not any(isinstance(n, nir.Scale) for n in graph.nodes.values())  # nothing left of BatchNorm


def test_node_types_and_shapes_per_target() -> None:
    model, io = _ticket_model("spiking_cnn", "deployable", HARD)
    graph, _ = ticket_graph(model, io, "snntorch")
    kinds = [type(n).__name__ for n in graph.nodes.values()]
    assert kinds == ["Input", "Conv2d", "LIF", "AvgPool2d", "Conv2d", "LIF", "AvgPool2d", "Flatten", "Affine",
                     "Output"]
    assert tuple(graph.nodes["body_2"].tau.shape) == (32, 8, 8)  # per neuron, as NIR types it
    assert graph.nodes["body_2"].tau[0, 0, 0] == np.float32(2.0 * 1e-4)
    flatten = graph.nodes["body_8"]
    assert (flatten.start_dim, flatten.end_dim) == (-3, -1)  # the same with or without a batch dim
    assert tuple(flatten.output_type["output"]) == (256,)
    model, io = _ticket_model("spiking_cnn", "deployable", MULTI)
    graph, _ = ticket_graph(model, io, "sinabs")
    assert [type(n).__name__ for n in graph.nodes.values()].count("SumPool2d") == 2
    assert tuple(graph.nodes["body_2"].tau.shape) == (32, 1, 1)  # one value per channel
    assert graph.nodes["body_2"].v_threshold[0, 0, 0] == np.float32(2.0)  # 1/tau gain moved into the threshold
    one_d, io = _ticket_model("spiking_cnn", "deployable", HARD, (1, 40))
    graph, _ = ticket_graph(one_d, io, "snntorch")
    assert tuple(graph.nodes["input"].input_type["input"]) == (1, 1, 40)
    assert graph.nodes["body_0"].weight.shape == (32, 1, 1, 3)


@pytest.mark.parametrize(
    ("family", "preset", "neuron", "target", "message"),
    [
        ("spiking_cnn", "tiny", HARD, "snntorch", "max-pools spikes, which no node of snnTorch 1.0.0 computes"),
        ("spiking_cnn", "tiny", MULTI, "sinabs", "max-pools spikes"),
        ("spiking_cnn", "deployable", SOFT, "sinabs", "fires at most one spike in a step, but Sinabs 3.1.3's LIF"),
        ("spiking_cnn", "deployable", MULTI, "snntorch", "soft reset (v_reset: null), but snnTorch 1.0.0 resets"),
        ("spiking_cnn", "deployable", SOFT, "snntorch", "soft reset (v_reset: null), but snnTorch 1.0.0 resets"),
        ("spiking_cnn", "deployable", HARD, "sinabs", "reset to 0, but Sinabs 3.1.3 resets the membrane by sub"),
        ("spiking_cnn", "deployable", {"v_reset": -0.5}, "snntorch", "reset to -0.5"),
        ("spiking_cnn", "deployable", {"type": "if"}, "snntorch", "is IF"),
        ("spiking_resnet", "tiny", HARD, "snntorch", "passes a node's two inputs as two arguments"),
        ("spiking_resnet", "tiny", MULTI, "sinabs", "runs the nodes depth-first"),
        ("spiking_cnn", "deployable", HARD, "rockpool", "is a convolution, which Rockpool 3.1.0 does not import"),
    ],
)
def test_what_a_target_cannot_express_is_refused_in_one_line(family, preset, neuron, target, message) -> None:
    model, io = _ticket_model(family, preset, neuron)
    with pytest.raises(NirUnsupported, match=re.escape(message)) as err:
        ticket_graph(model, io, target)
    line = str(err.value)
    assert "\n" not in line and line.startswith(f"NIR export for {target}: ")
    assert "export to" in line  # ... and says what would export


def test_rockpool_refuses_spiking_neurons_and_other_models_are_refused_for_every_target() -> None:
    model, io = _mlp(MULTI)
    with pytest.raises(NirUnsupported, match="tau_mem"):
        ticket_graph(model, io, "rockpool")
    spikformer = build_model(ModelSpec(name="spikformer", preset="tiny", time_steps=1,
                                       options={"embed_dim": 16, "pep_channels": [8, 16]}), (1, 8, 8), 10)
    with pytest.raises(NirUnsupported, match="spiking self-attention"):
        ticket_graph(spikformer, _io((1, 8, 8), "spikformer"))
    rate = build_model(ModelSpec(name="spiking_cnn", preset="deployable", encoder="rate"), (1, 8, 8), 10)
    with pytest.raises(NirUnsupported, match="rate encoder"):
        ticket_graph(rate, _io((1, 8, 8)))
    with pytest.raises(Exception, match="--target: 'loihi' is not one of snntorch, sinabs, rockpool"):
        ticket_graph(model, io, "loihi")


def test_consumer_limits_the_targets_rely_on() -> None:
    """Pins what the refusals and conventions are built on: when a consumer changes, this says so."""
    from snntorch.import_nir import import_from_nir

    from sltsearch.compat.rockpool import rockpool_from_nir

    samna_before = "samna" in sys.modules
    from_nir = rockpool_from_nir()
    assert from_nir.__module__.startswith("rockpool") and ("samna" in sys.modules) == samna_before

    one = np.ones(3, dtype=np.float32)
    lif = nir.LIF(tau=one * 2e-4, r=one * 2, v_leak=one * 0, v_threshold=one)
    nodes = {"input": nir.Input(input_type={"input": np.array([3])}), "lif": lif,
             "output": nir.Output(output_type={"output": np.array([3])})}
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "lif"), ("lif", "output")])
    with pytest.raises(AttributeError, match="tau_mem"):  # Rockpool reads a field nir.LIF does not have
        from_nir(graph)
    affine = nir.Affine(weight=np.eye(3, dtype=np.float32), bias=np.zeros(3, dtype=np.float32))
    nodes = {"input": nir.Input(input_type={"input": np.array([3])}), "a": affine, "b": affine, "lif": lif,
             "output": nir.Output(output_type={"output": np.array([3])})}
    edges = [("input", "a"), ("input", "b"), ("a", "lif"), ("b", "lif"), ("lif", "output")]
    net = import_from_nir(nir.NIRGraph(nodes=nodes, edges=edges))  # two inputs into one neuron (a shortcut)
    with pytest.raises(TypeError):  # snnTorch's neuron gets them as (input, mem), not summed
        net(torch.ones(1, 3))
    import sinabs

    nodes = {"input": nir.Input(input_type={"input": np.array([3])}), "a": affine, "b": affine, "c": affine,
             "lif": lif, "output": nir.Output(output_type={"output": np.array([3])})}
    edges = [("input", "a"), ("input", "b"), ("b", "c"), ("a", "lif"), ("c", "lif"), ("lif", "output")]
    order = [n.name for n in sinabs.from_nir(nir.NIRGraph(nodes=nodes, edges=edges), num_timesteps=1).execution_order]
    assert order.index("c") > order.index("lif")  # Sinabs runs depth-first: a conv shortcut after its neuron
    if_node = nir.IF(r=one, v_threshold=one)
    nodes = {"input": nir.Input(input_type={"input": np.array([3])}), "neuron": if_node,
             "output": nir.Output(output_type={"output": np.array([3])})}
    leaky = import_from_nir(nir.NIRGraph(nodes=nodes, edges=[("input", "neuron"), ("neuron", "output")]))
    assert float(leaky.get_submodule("neuron").beta) == pytest.approx(0.9)  # snnTorch's nir.IF is a leaky neuron


@pytest.mark.slow
@pytest.mark.parametrize("target", ["snntorch", "sinabs"])
def test_export_and_evaluate_target_on_real_validation_samples(target: str, tmp_path: Path) -> None:
    """A trained deployable ticket through `sltsearch export --format nir --target T` and `sltsearch evaluate
    DIR --target T`: the consumer predicts sltsearch's class on the digits validation split."""
    from conftest import tiny_spec_dict, write_spec
    from typer.testing import CliRunner

    import sltsearch
    from sltsearch.cli import app

    neuron = MULTI if target == "sinabs" else {}
    spec = tiny_spec_dict(model={"name": "spiking_cnn", "preset": "deployable", "time_steps": 2, "neuron": neuron},
                          search={"n_trials": 1, "population_size": 2})
    run = sltsearch.run(write_spec(tmp_path / "s.yaml", spec), run_dir=tmp_path / "run").run_dir
    result = sltsearch.export(run, ticket="t0000r01", format="nir", target=target, out=tmp_path / "nir")
    assert result.manifest["nir"]["target"] == target and "ticket.nir" in result.manifest["files"]
    check = sltsearch.evaluate(result.path, target=target)
    val = check.splits[0]
    assert val.split == "val" and val.samples == 360
    assert val.sltsearch_accuracy == result.manifest["ticket"]["val_accuracy"]
    assert val.consumer_accuracy == val.recorded_accuracy
    assert check.agreement_min == 1.0 and val.max_readout_diff < 1e-4
    out = CliRunner().invoke(app, ["evaluate", str(result.path), "--target", target])
    assert out.exit_code == 0, out.output
    consumer = {"snntorch": "snnTorch 1.0.0", "sinabs": "Sinabs 3.1.3"}[target]
    says = "the ticket's class on every sample" if check.agreement_min == 1.0 else "another class on some samples"
    assert f"{consumer} predicts {says}" in out.output.replace("\n", " ")
    other = "sinabs" if target == "snntorch" else "snntorch"
    out = CliRunner().invoke(app, ["evaluate", str(result.path), "--target", other])
    assert out.exit_code == 2 and f"was written for {target}, not {other}" in out.output
    manifest = json.loads((result.path / "ticket.json").read_text())
    assert manifest["versions"][target] is not None
    out = CliRunner().invoke(app, ["export", str(run), "--ticket", "t0000r01", "--format", "nir", "--target",
                                   other, "--out", str(tmp_path / "other")])
    assert out.exit_code == 2 and "export to" in out.output and len(out.output.strip().splitlines()) == 1
    assert not (tmp_path / "other").exists()  # refused before anything is written


@pytest.mark.slow
def test_a_one_d_ticket_exports_and_runs_in_snntorch(tmp_path: Path) -> None:
    """MNIST-1D with the deployable CNN (Conv1d, AvgPool1d): written over [C, 1, L] and run by snnTorch."""
    from conftest import tiny_spec_dict, write_spec

    import sltsearch

    spec = tiny_spec_dict(data={"name": "mnist1d", "batch_size": 64},
                          model={"name": "spiking_cnn", "preset": "deployable", "time_steps": 2},
                          train={"epochs": 1}, search={"n_trials": 1, "population_size": 2})
    run = sltsearch.run(write_spec(tmp_path / "s.yaml", spec), run_dir=tmp_path / "run").run_dir
    result = sltsearch.export(run, ticket="t0000r01", format="nir", out=tmp_path / "nir")
    check = sltsearch.evaluate(result.path, target="snntorch")
    assert check.agreement_min == 1.0
    graph = nir.read(str(result.path / "ticket.nir"))
    assert graph.metadata["target"] == "snntorch" and len(graph.nodes["input"].input_type["input"]) == 3


@pytest.mark.parametrize(("space", "target"), [("deployable", "snntorch"), ("deployable_sinabs", "sinabs")])
def test_the_bundled_deployable_spaces_train_models_their_target_expresses(space: str, target: str) -> None:
    from sltsearch.api import bundled_spaces
    from sltsearch.spec import load_spec
    from sltsearch.ticket_io.nir_targets import DEPLOYABLE_SPACE

    spec = load_spec(bundled_spaces()[space])
    assert DEPLOYABLE_SPACE[target] == space and spec.model.preset == "deployable"
    for steps in spec.space["time_steps"].choices:
        model = build_model(spec.model.model_copy(update={"time_steps": steps}), (1, 8, 8), 10).eval()
        graph, _ = ticket_graph(model, _io((1, 8, 8), steps=steps), target)
        assert graph.metadata["target"] == target
    vgg = build_model(ModelSpec(name="spiking_vgg", preset="deployable", neuron=spec.model.neuron.model_dump()),
                      (1, 8, 8), 10).eval()
    assert ticket_graph(vgg, _io((1, 8, 8), "spiking_vgg"), target)[0].metadata["target"] == target


def test_lif_multi_fires_what_sinabs_fires_and_needs_a_soft_reset() -> None:
    """The neuron behind the Sinabs target: floor(h / threshold) spikes, that many thresholds subtracted."""
    from pydantic import ValidationError
    from spikingjelly.activation_based import functional

    make = neuron_factory(NeuronSpec(**MULTI))
    node = make()
    x = torch.tensor([0.5, 5.0, 0.0, 3.0]).reshape(4, 1)
    assert node(x).flatten().tolist() == [0.0, 2.0, 0.0, 1.0]  # h = 0.25, 2.625, 0.3125, 1.65625
    assert float(node.v) == pytest.approx(0.65625)
    functional.reset_net(node)
    assert float(node.v) == 0.0
    with pytest.raises(ValidationError, match="type lif_multi resets the membrane by subtraction"):
        NeuronSpec(type="lif_multi")
