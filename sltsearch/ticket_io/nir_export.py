"""A spiking CNN / VGG / ResNet ticket as a NIR graph (Neuromorphic Intermediate Representation).

Why not spikingjelly's ``activation_based.nir_exchange.export_to_nir`` on the whole model: it maps conv,
linear, average pooling, flatten and spikingjelly's own neuron classes (looked up by exact class), but no
BatchNorm and no max pooling, and all three model families use both (and sltsearch's fused neurons are
subclasses it does not look up). So the graph is built here with the public ``nir`` API, node by node, and
the neurons follow spikingjelly's conversion exactly (`neuron_node`; a test checks it against
``export_to_nir`` on a plain spikingjelly network):

* Conv / Linear: the ticket's weights unchanged (pruned weights are exact zeros).
* BatchNorm after a conv (eval statistics), ``y = s * x + shift`` with ``s = gamma / sqrt(var + eps)``:
  its shift moves into the conv's bias (``shift / s``) and its scale becomes a ``nir.Scale`` node
  after the conv, so the conv weights stay the ticket's.
* Max pooling of spikes (binary): ``nir.SumPool2d`` then ``nir.Threshold(0.5)`` (a window fires when any
  of its inputs does); global average pooling: ``nir.AvgPool2d`` over the whole map.
* LIF / PLIF / IF: ``nir.LIF`` / ``nir.IF`` with ``dt`` = 1e-4 s per time step (spikingjelly's
  convention): tau = tau * dt, r = 1 (input decays) or tau, v_leak = v_reset; hard reset only.
* ResNet shortcuts: two edges into the block's output neuron (NIR sums a node's inputs).

The input is one time step of the encoded sample (direct encoding: the sample itself at every step);
the output is the readout's value per step, which sltsearch averages over the T steps. 1-D models
(NIR has no 1-D pooling) and Spikformer (attention has no NIR node) are refused with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from spikingjelly.activation_based import layer, neuron
from torch import nn

from sltsearch.errors import UserError

DT_S = 1e-4  # seconds per time step, spikingjelly's default for NIR export
_NEURONS = (neuron.IFNode, neuron.LIFNode, neuron.ParametricLIFNode)


class NirUnsupported(UserError):
    """The ticket's model has a part NIR cannot express."""


def _require_nir() -> Any:
    try:
        import nir
    except ImportError:
        raise UserError("--format nir needs the nir package: pip install 'sltsearch[nir]'") from None
    return nir


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy().astype(np.float32) if t.is_floating_point() else t.cpu().numpy()


def neuron_node(module: nn.Module, shape: tuple[int, ...], dt: float = DT_S) -> Any:
    """The NIR node of a spiking neuron, with spikingjelly's conversion (see the module docstring)."""
    nir = _require_nir()
    if module.v_reset is None:
        raise NirUnsupported("NIR export: neurons with soft reset (v_reset: null) have no NIR form; use a hard reset")
    full = lambda value: np.full(shape, float(value), dtype=np.float32)  # noqa: E731
    if isinstance(module, neuron.IFNode):
        return nir.IF(r=full(1.0 / dt), v_threshold=full(module.v_threshold), v_reset=full(module.v_reset))
    plif = isinstance(module, neuron.ParametricLIFNode)
    tau = 1.0 / float(module.w.sigmoid().item()) if plif else float(module.tau)  # PLIF learns 1/tau = sigmoid(w)
    return nir.LIF(
        tau=full(tau * dt),
        r=full(1.0 if module.decay_input else tau),
        v_leak=full(module.v_reset),
        v_threshold=full(module.v_threshold),
        v_reset=full(module.v_reset),
    )


def _shapes(model: nn.Module, example: torch.Tensor) -> dict[int, tuple[tuple[int, ...], tuple[int, ...]]]:
    """id(module) -> (input shape, output shape) of one sample at one step (T and batch dims dropped)."""
    shapes: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        shapes[id(mod)] = (tuple(inputs[0].shape[2:]), tuple(output.shape[2:]))

    handles = [m.register_forward_hook(hook) for m in model.body.modules() if m is not model.body]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
        model.reset_state()
    return shapes


class _GraphBuilder:
    """Emits NIR nodes for the body's modules in order; ``sources`` feed the next node (summed by NIR)."""

    def __init__(self, shapes: dict[int, tuple[tuple[int, ...], tuple[int, ...]]]) -> None:
        self.nir = _require_nir()
        self.shapes = shapes
        self.nodes: dict[str, Any] = {}
        self.edges: list[tuple[str, str]] = []
        self.weights: dict[str, str] = {}  # NIR node -> the model's layer whose weights it holds

    def add(self, name: str, node: Any, sources: list[str]) -> list[str]:
        self.nodes[name] = node
        self.edges += [(s, name) for s in sources]
        return [name]

    def shape_in(self, mod: nn.Module, name: str) -> tuple[int, ...]:
        if id(mod) not in self.shapes:
            raise NirUnsupported(f"NIR export: layer {name} did not run on the example input")
        return self.shapes[id(mod)][0]

    def conv(self, name: str, conv: nn.Module, bn: nn.Module | None, sources: list[str]) -> list[str]:
        nir = self.nir
        if not isinstance(conv, nn.Conv2d):
            raise NirUnsupported(
                f"NIR export: layer {name} is a {type(conv).__name__}; NIR export supports 2-D image models "
                "(1-D models need 1-D pooling, which NIR lacks)"
            )
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise NirUnsupported(f"NIR export: conv {name} uses groups or non-zero padding, which NIR lacks")
        weight = _np(conv.weight)
        bias = _np(conv.bias) if conv.bias is not None else np.zeros(weight.shape[0], dtype=np.float32)
        scale = None
        if bn is not None:
            s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double()
            shift = bn.bias.detach().double() - bn.running_mean.detach().double() * s
            if bool((s == 0).any()):
                raise NirUnsupported(f"NIR export: BatchNorm after {name} has a zero scale; it cannot become a Scale")
            bias = (bias.astype(np.float64) + (shift / s).cpu().numpy()).astype(np.float32)
            scale = s.cpu().numpy().astype(np.float32)
        height, width = self.shape_in(conv, name)[-2:]
        node = nir.Conv2d(
            input_shape=(height, width),
            weight=weight,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=bias,
        )
        self.weights[name] = name
        out = self.add(name, node, sources)
        if scale is not None:
            out_shape = self.shapes[id(conv)][1]
            full = np.ascontiguousarray(np.broadcast_to(scale[:, None, None], out_shape)).astype(np.float32)
            out = self.add(f"{name}.bn_scale", nir.Scale(scale=full), out)
        return out

    def spike_max_pool(self, name: str, kernel: Any, stride: Any, padding: Any, out_shape: tuple[int, ...],
                       sources: list[str]) -> list[str]:
        """Max pooling of binary spikes: fires where any input of the window fired."""
        nir = self.nir
        pair = lambda v: np.array(v if isinstance(v, tuple | list) else (v, v))  # noqa: E731
        out = self.add(name, nir.SumPool2d(kernel_size=pair(kernel), stride=pair(stride), padding=pair(padding)),
                       sources)
        return self.add(f"{name}.any", nir.Threshold(threshold=np.full(out_shape, 0.5, dtype=np.float32)), out)

    def sequence(self, prefix: str, modules: list[tuple[str, nn.Module]], sources: list[str]) -> list[str]:
        nir = self.nir
        i = 0
        while i < len(modules):
            local, mod = modules[i]
            name = f"{prefix}{local}"
            nxt = modules[i + 1][1] if i + 1 < len(modules) else None
            if isinstance(mod, nn.Conv1d | nn.Conv2d | nn.Conv3d):
                bn = nxt if isinstance(nxt, nn.BatchNorm2d | nn.BatchNorm1d) else None
                sources = self.conv(name, mod, bn, sources)
                i += 2 if bn is not None else 1
                continue
            if isinstance(mod, _NEURONS):
                sources = self.add(name, neuron_node(mod, self.shapes[id(mod)][1]), sources)
            elif isinstance(mod, nn.MaxPool2d):
                sources = self.spike_max_pool(name, mod.kernel_size, mod.stride, mod.padding,
                                              self.shapes[id(mod)][1], sources)
            elif isinstance(mod, layer.SeqToANNContainer) and isinstance(mod[0], nn.AdaptiveMaxPool2d):
                shape_in, shape_out = self.shapes[id(mod)]
                sources = self.spike_max_pool(name, tuple(shape_in[-2:]), tuple(shape_in[-2:]), 0, shape_out, sources)
            elif isinstance(mod, nn.AdaptiveAvgPool2d):
                shape_in, shape_out = self.shapes[id(mod)]
                if tuple(shape_out[-2:]) != (1, 1):
                    raise NirUnsupported(f"NIR export: adaptive pooling {name} to {shape_out[-2:]} is not global")
                kernel = np.array(shape_in[-2:])
                sources = self.add(name, nir.AvgPool2d(kernel_size=kernel, stride=kernel, padding=np.array([0, 0])),
                                   sources)
            elif isinstance(mod, nn.Flatten):
                shape_in = self.shape_in(mod, name)
                sources = self.add(name, nir.Flatten(input_type={"input": np.array(shape_in)}, start_dim=0,
                                                     end_dim=-1), sources)
            elif isinstance(mod, nn.Linear):
                weight = _np(mod.weight)
                node = nir.Affine(weight=weight, bias=_np(mod.bias)) if mod.bias is not None else nir.Linear(weight)
                self.weights[name] = name
                sources = self.add(name, node, sources)
            elif type(mod).__name__ == "BasicBlock":
                main = self.sequence(
                    f"{name}.",
                    [(n, getattr(mod, n)) for n in ("conv1", "bn1", "sn1", "conv2", "bn2")],
                    sources,
                )
                shortcut = sources
                if mod.downsample is not None:
                    shortcut = self.sequence(f"{name}.downsample.", list(mod.downsample.named_children()), sources)
                sources = self.add(f"{name}.sn2", neuron_node(mod.sn2, self.shapes[id(mod.sn2)][1]), main + shortcut)
            else:
                raise NirUnsupported(f"NIR export: layer {name} ({type(mod).__name__}) has no NIR equivalent")
            i += 1
        return sources


def ticket_graph(model: nn.Module, io: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """The NIR graph of a ticket's model and which NIR node holds which model layer's weights."""
    nir = _require_nir()
    family = io.get("family", getattr(model, "family", "?"))
    if getattr(model, "network", "snn") == "ann":
        raise NirUnsupported(
            "NIR export: an ANN twin ticket (model.neuron.type: relu) has no NIR form (NIR describes spiking graphs "
            "and has no ReLU node); export it as safetensors"
        )
    if family == "spikformer" or hasattr(model.body, "patch_embed"):
        raise NirUnsupported(
            "NIR export: Spikformer tickets cannot be written as NIR (spiking self-attention multiplies two spike "
            "tensors, which no NIR node expresses); export them as safetensors"
        )
    if io.get("frames"):
        raise NirUnsupported("NIR export: models of event-frame data are not supported yet; export as safetensors")
    if getattr(model.encoder, "kind", "direct") != "direct":
        raise NirUnsupported("NIR export: only direct encoding maps to a NIR input (the rate encoder draws spikes)")
    if len(io["input_shape"]) != 3:
        raise NirUnsupported(
            f"NIR export: input shape {tuple(io['input_shape'])} is not an image [C, H, W]; NIR has no 1-D pooling"
        )
    device = next(model.parameters()).device
    example = torch.zeros(2, *io["input_shape"], device=device)
    builder = _GraphBuilder(_shapes(model, example))
    sources = builder.add("input", nir.Input(input_type={"input": np.array(io["input_shape"])}), [])
    sources = builder.sequence("body.", list(model.body.named_children()), sources)
    builder.add("output", nir.Output(output_type={"output": np.array([int(io["num_classes"])])}), sources)
    metadata = {
        "producer": "sltsearch",
        "dt_s": DT_S,
        "time_steps": int(io["time_steps"]),
        "input": "one time step of the sample (direct encoding: the same sample at every step)",
        "output": "readout per step; sltsearch's prediction is its mean over time_steps",
    }
    try:
        graph = nir.NIRGraph(nodes=builder.nodes, edges=builder.edges, metadata=metadata, type_check=True)
    except ValueError as err:
        raise NirUnsupported(f"NIR export: the graph does not type-check: {err}") from None
    return graph, builder.weights


def nir_writer(model: nn.Module, io: dict[str, Any]) -> Callable[[Path], None]:
    """Build the graph now (so an unsupported model fails before anything is written); write it later."""
    nir = _require_nir()
    graph, _ = ticket_graph(model, io)
    return lambda path: nir.write(str(path), graph)
