"""NIR export: the graph reads back with `nir.read`, has the right nodes, shapes and the ticket's weights,
computes what the model computes (checked by simulating it step by step), and refuses Spikformer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

nir = pytest.importorskip("nir")
pytest.importorskip("nirtorch")

from sltsearch.models import build_model  # noqa: E402
from sltsearch.spec import ModelSpec  # noqa: E402
from sltsearch.ticket_io.nir_export import _NEURONS, NirUnsupported, neuron_node, ticket_graph  # noqa: E402
from sltsearch.tickets import attach_masks, magnitude_prune  # noqa: E402


def _ticket_model(name: str, options: dict | None = None, neuron: dict | None = None) -> tuple[torch.nn.Module, dict]:
    """A pruned 8x8 model with non-trivial BatchNorm statistics (no training needed for the graph)."""
    torch.manual_seed(0)
    spec = ModelSpec(name=name, preset="tiny", time_steps=3, options=options or {}, neuron=neuron or {})
    model = build_model(spec, (1, 8, 8), 10)
    attach_masks(model)
    attach_masks(model, magnitude_prune(model, 0.6, "global"))
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(1.5, 3.0)  # strong enough that every neuron layer fires on rand inputs
                mod.bias.uniform_(0.2, 1.0)
            if isinstance(mod, torch.nn.Linear):
                mod.weight.mul_(4.0)  # ... the hidden FC layer too
    model.eval()
    io = {"family": name, "input_shape": [1, 8, 8], "num_classes": 10, "frames": False, "time_steps": 3}
    return model, io


def _simulate(graph: nir.NIRGraph, x: np.ndarray, steps: int, dt: float) -> np.ndarray:
    """Run a NIR graph for ``steps`` time steps on one constant input (Euler steps of ``dt``, as the
    export assumes); returns the mean of the output over time. Nodes with several inputs sum them."""
    order, done = [], set()
    while len(order) < len(graph.nodes):
        for name in graph.nodes:
            preds = [a for a, b in graph.edges if b == name]
            if name not in done and all(p in done for p in preds):
                order.append(name)
                done.add(name)
    state: dict[str, np.ndarray] = {}
    total = 0.0
    for _ in range(steps):
        out: dict[str, torch.Tensor] = {}
        for name in order:
            node = graph.nodes[name]
            preds = [a for a, b in graph.edges if b == name]
            i = sum(out[p] for p in preds) if preds else torch.tensor(x)[None]
            if isinstance(node, nir.Conv2d):
                y = F.conv2d(i, torch.tensor(node.weight), torch.tensor(node.bias), tuple(node.stride),
                             tuple(node.padding), tuple(node.dilation), node.groups)
            elif isinstance(node, nir.Scale):
                y = i * torch.tensor(node.scale)
            elif isinstance(node, nir.SumPool2d):
                k, s, p = (tuple(int(v) for v in a) for a in (node.kernel_size, node.stride, node.padding))
                y = F.avg_pool2d(i, k, s, p, divisor_override=1)
            elif isinstance(node, nir.AvgPool2d):
                k, s = tuple(int(v) for v in node.kernel_size), tuple(int(v) for v in node.stride)
                y = F.avg_pool2d(i, k, s)
            elif isinstance(node, nir.Threshold):
                y = (i > torch.tensor(node.threshold)).float()
            elif isinstance(node, nir.Flatten):
                y = i.flatten(1)
            elif isinstance(node, nir.Affine):
                y = i @ torch.tensor(node.weight).T + torch.tensor(node.bias)
            elif isinstance(node, nir.Linear):
                y = i @ torch.tensor(node.weight).T
            elif isinstance(node, nir.LIF | nir.IF):
                v = state.get(name, torch.zeros_like(i))
                if isinstance(node, nir.LIF):
                    v = v + dt / torch.tensor(node.tau) * (torch.tensor(node.v_leak) - v + torch.tensor(node.r) * i)
                else:
                    v = v + dt * torch.tensor(node.r) * i
                y = (v >= torch.tensor(node.v_threshold)).float()
                state[name] = torch.where(y > 0, torch.tensor(node.v_reset), v)
            else:  # Input / Output
                y = i
            out[name] = y.float()
        total = total + out["output"]
    return (total / steps).numpy()[0]


@pytest.mark.parametrize(
    ("family", "options", "neuron"),
    [
        ("spiking_cnn", {}, {}),
        ("spiking_vgg", {}, {"type": "plif"}),
        ("spiking_resnet", {}, {"type": "if"}),
        ("spiking_resnet", {"pool": "max", "hidden": 16}, {}),
    ],
)
def test_graph_computes_what_the_ticket_computes(family: str, options: dict, neuron: dict, tmp_path: Path) -> None:
    model, io = _ticket_model(family, options, neuron)
    graph, holders = ticket_graph(model, io)
    nir.write(str(tmp_path / "t.nir"), graph)
    back = nir.read(str(tmp_path / "t.nir"))
    assert set(back.nodes) == set(graph.nodes) and sorted(back.edges) == sorted(graph.edges)
    state = model.state_dict()
    for node_name in holders:  # every conv / linear holds the ticket's own weights, zeros where pruned
        weight = back.nodes[node_name].weight
        ticket = state[f"{node_name}.weight"].numpy()
        mask = state[f"{node_name}.weight_mask"].numpy()
        assert weight.shape == ticket.shape and np.array_equal(weight, ticket)
        assert (weight[~mask] == 0).all() and (~mask).any()
    x = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(1))
    rates: list[float] = []
    hooks = [m.register_forward_hook(lambda m, i, o: rates.append(float(o.mean())))
             for m in model.modules() if isinstance(m, _NEURONS)]
    with torch.no_grad():
        expected = model(x[None]).numpy()[0]
    model.reset_state()
    for h in hooks:
        h.remove()
    assert rates and all(0.0 < r < 0.99 for r in rates), rates  # spikes flow through every layer
    got = _simulate(back, x.numpy(), model.time_steps, back.metadata["dt_s"])
    assert np.allclose(got, expected, atol=1e-4), (got, expected)


def test_cnn_graph_node_types_and_shapes() -> None:
    model, io = _ticket_model("spiking_cnn")
    graph, _ = ticket_graph(model, io)
    kinds = [type(graph.nodes[n]).__name__ for n in graph.nodes]
    assert kinds == ["Input", "Conv2d", "Scale", "LIF", "SumPool2d", "Threshold", "Conv2d", "Scale", "LIF",
                     "SumPool2d", "Threshold", "Flatten", "Affine", "Output"]
    assert graph.nodes["body.0"].weight.shape == (32, 1, 3, 3)
    assert tuple(graph.nodes["body.2"].tau.shape) == (32, 8, 8)  # one value per neuron
    assert tuple(graph.nodes["body.6"].output_type["output"]) == (64, 4, 4)
    assert graph.nodes["body.9"].weight.shape == (10, 256)
    resnet, io = _ticket_model("spiking_resnet")
    graph, _ = ticket_graph(resnet, io)
    into_sum = [a for a, b in graph.edges if b == "body.3.sn2"]  # the shortcut and the main path meet
    assert len(into_sum) == 2


def test_neurons_follow_spikingjelly_nir_exchange() -> None:
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    from sltsearch.models.fused_neurons import FusedIFNode, FusedLIFNode, FusedParametricLIFNode

    reference = torch.nn.Sequential(
        layer.Linear(4, 3), neuron.LIFNode(tau=3.0, v_threshold=0.7, v_reset=0.0),
        layer.Linear(3, 2), neuron.ParametricLIFNode(init_tau=2.5, v_reset=0.0),
        layer.Linear(2, 2), neuron.IFNode(v_reset=0.0),
    )
    functional.set_step_mode(reference, "m")
    graph = export_to_nir(reference, torch.zeros(2, 1, 4))
    theirs = [n for n in graph.nodes.values() if isinstance(n, nir.LIF | nir.IF)]
    ours = [
        neuron_node(FusedLIFNode(tau=3.0, v_threshold=0.7, v_reset=0.0), (3,)),
        neuron_node(FusedParametricLIFNode(init_tau=2.5, v_reset=0.0), (2,)),
        neuron_node(FusedIFNode(v_reset=0.0), (2,)),
    ]
    for a, b in zip(ours, theirs, strict=True):
        assert type(a) is type(b)
        for field in ("tau", "r", "v_leak", "v_threshold", "v_reset"):
            if hasattr(b, field):
                assert np.allclose(getattr(a, field), getattr(b, field), rtol=1e-6), field


def test_spikformer_soft_reset_and_one_d_models_are_refused() -> None:
    spikformer = build_model(ModelSpec(name="spikformer", preset="tiny", time_steps=1,
                                       options={"embed_dim": 16, "pep_channels": [8, 16]}), (1, 8, 8), 10)
    io = {"family": "spikformer", "input_shape": [1, 8, 8], "num_classes": 10, "frames": False, "time_steps": 1}
    with pytest.raises(NirUnsupported, match="Spikformer tickets cannot be written as NIR"):
        ticket_graph(spikformer, io)
    soft, io = _ticket_model("spiking_cnn", neuron={"v_reset": None})
    with pytest.raises(NirUnsupported, match="soft reset"):
        ticket_graph(soft, io)
    one_d = build_model(ModelSpec(name="spiking_cnn", preset="tiny", time_steps=2), (1, 40), 10)
    io = {"family": "spiking_cnn", "input_shape": [1, 40], "num_classes": 10, "frames": False, "time_steps": 2}
    with pytest.raises(NirUnsupported, match="NIR has no 1-D pooling"):
        ticket_graph(one_d, io)


@pytest.mark.slow
def test_export_format_nir_writes_a_checksummed_graph(tmp_path: Path) -> None:
    """Through `sltsearch export --format nir` on a real (one-epoch) run: the file is listed with its sha256,
    reads back, and its weights are the exported weights."""
    from conftest import tiny_spec_dict, write_spec

    import sltsearch

    spec = tiny_spec_dict(train={"epochs": 1}, search={"n_trials": 1, "population_size": 2})
    run = sltsearch.run(write_spec(tmp_path / "s.yaml", spec), run_dir=tmp_path / "run").run_dir
    result = sltsearch.export(run, ticket="t0000r01", format="nir", out=tmp_path / "nir")
    assert "ticket.nir" in result.manifest["files"] and result.manifest["formats"] == ["safetensors", "nir"]
    graph = nir.read(str(result.path / "ticket.nir"))
    weights = load_file(str(result.path / "weights.safetensors"))
    assert np.array_equal(graph.nodes["body.0"].weight, weights["body.0.weight"].numpy())
    assert sltsearch.evaluate(result.path).matches
    (result.path / "ticket.nir").write_bytes(b"not a graph")
    with pytest.raises(sltsearch.ticket_io.TicketFileError, match="ticket.nir"):
        sltsearch.load_ticket(result.path)
