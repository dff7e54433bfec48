"""A ticket as a NIR graph that one consumer (snnTorch, Sinabs or Rockpool) imports and runs.

The conventions of each target are in `sltsearch.ticket_io.nir_targets`. What every graph shares:

* BatchNorm (eval statistics) is folded into the conv or linear layer before it: ``w' = s * w`` per output
  channel, ``b' = s * b + shift`` with ``s = gamma / sqrt(var + eps)``. A scale keeps every pruned weight an
  exact zero, so the graph's weights have the ticket's sparsity.
* A LIF / PLIF neuron's input gain (1/tau when spikingjelly decays the input) is folded into the weights of
  the layer that drives it (snnTorch: its neuron reads the input as it is and keeps the ticket's threshold),
  or the neuron's threshold is divided by it (Sinabs: the same spikes from a membrane scaled by tau).
* Average pooling is AvgPool2d (snnTorch) or SumPool2d with the next layer's weights divided by the window
  size (Sinabs; exact for windows of 2x2). Max pooling of spikes has no node in any consumer and is refused.
* 1-D models are written as 2-D ones over a [C, 1, L] map (no consumer reads Conv1d and 1-D pooling); their
  graph's input is the sample as [C, 1, L].
* The input is one time step of the sample (direct encoding); the output is the readout per step, whose mean
  over the ticket's T steps is sltsearch's prediction.

Refused, each in one line that says what would export: max pooling, spike-spike attention (Spikformer), ResNet
shortcuts (`Target.no_branch_reason`), a reset or a number of spikes per step the target does not compute, IF
neurons (snnTorch reads nir.IF as a leaky neuron, Sinabs clips it), rate or learned encoders and event frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from spikingjelly.activation_based import layer, neuron
from torch import nn

from sltsearch.errors import UserError
from sltsearch.models.multispike import MultiSpikeLIFNode
from sltsearch.ticket_io.nir_targets import DEPLOYABLE_SPACE, DT_S, Target, target_rules

_NEURONS = (neuron.IFNode, neuron.LIFNode, neuron.ParametricLIFNode)
_SKIPPED = (nn.Identity, nn.Dropout)


class NirUnsupported(UserError):
    """The ticket's model has a part the chosen NIR target cannot express."""


def _require_nir() -> Any:
    try:
        import nir
    except ImportError:
        raise UserError("--format nir needs the nir package: pip install 'sltsearch[nir]'") from None
    return nir


def what_exports(target: Target) -> str:
    """The half of a refusal that says what would export to ``target``."""
    if target.name in DEPLOYABLE_SPACE:
        neurons = "neuron type lif_multi with v_reset: null" if target.multi_spike else "LIF or PLIF, v_reset: 0.0"
        return (
            f"tickets of the bundled space '{DEPLOYABLE_SPACE[target.name]}' export to {target.name} (model.preset "
            f"deployable: average pooling; {neurons})"
        )
    return "only networks of Linear layers without spiking neurons export to rockpool; use --target snntorch or sinabs"


def _refuse(target: Target, what: str) -> NirUnsupported:
    return NirUnsupported(f"NIR export for {target.name}: {what}; {what_exports(target)}")


def _shapes(model: nn.Module, example: torch.Tensor) -> dict[int, tuple[tuple[int, ...], tuple[int, ...]]]:
    """id(module) -> (input shape, output shape) as the module saw them (T / batch dims still there)."""
    shapes: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        shapes[id(mod)] = (tuple(inputs[0].shape), tuple(output.shape))

    handles = [m.register_forward_hook(hook) for m in model.body.modules() if m is not model.body]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
        model.reset_state()
    return shapes


def _leaves(module: nn.Module, prefix: str, merged: bool = False) -> Iterator[tuple[str, nn.Module, bool]]:
    """The body's layers in order, containers opened; ``merged``: the layer sees [T*B, ...] (inside a
    SeqToANNContainer) rather than [T, B, ...]."""
    for name, child in module.named_children():
        if isinstance(child, layer.SeqToANNContainer):
            yield from _leaves(child, f"{prefix}{name}.", True)
        elif type(child) is nn.Sequential:
            yield from _leaves(child, f"{prefix}{name}.", merged)
        else:
            yield f"{prefix}{name}", child, merged


@dataclass
class _Op:
    """A node being written; weights stay float64 until the graph is made, so folds round once."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)


class _Writer:
    """Turns the body's layers into `_Op`s for one target, folding BatchNorm, neuron gains and pooling."""

    def __init__(self, target: Target, spatial: int) -> None:
        self.target = target
        self.spatial = spatial  # spatial dims of the sample: 0 (flat), 1 (signal) or 2 (image)
        self.ops: dict[str, _Op] = {}
        self.holders: dict[str, str] = {}  # NIR node -> the model layer whose weights it holds
        self.in_gain = 1.0  # multiplies the next weight layer's weights (sum pooling standing for an average)

    def as_2d(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A sample shape as the graph has it: 1-D maps [C, L] become [C, 1, L]."""
        return (shape[0], 1, shape[1]) if self.spatial == 1 and len(shape) == 2 else shape

    def last(self) -> tuple[str, _Op] | None:
        return next(reversed(self.ops.items()), None)

    def weights(self, name: str, mod: nn.Module, in_shape: tuple[int, ...]) -> None:
        weight = mod.weight.detach().double().cpu().numpy() * self.in_gain
        bias = mod.bias.detach().double().cpu().numpy() if mod.bias is not None else np.zeros(weight.shape[0])
        self.in_gain = 1.0
        if isinstance(mod, nn.Linear):
            self.ops[name] = _Op("affine", {"weight": weight, "bias": bias})
            return
        if not self.target.conv:
            raise _refuse(self.target, f"layer {name} is a convolution, which {self.target.consumer} does not import")
        if not isinstance(mod, nn.Conv1d | nn.Conv2d) or mod.padding_mode != "zeros" or isinstance(mod.padding, str):
            raise _refuse(self.target, f"layer {name} ({type(mod).__name__}, padding {mod.padding!r}) has no NIR node")
        pair = (lambda v: (1, int(v[0]))) if isinstance(mod, nn.Conv1d) else (lambda v: tuple(int(x) for x in v))
        if isinstance(mod, nn.Conv1d):
            weight = weight[:, :, None, :]
        self.ops[name] = _Op(
            "conv",
            {
                "input_shape": self.as_2d(in_shape)[1:],
                "weight": weight,
                "bias": bias,
                "stride": pair(mod.stride),
                "padding": (0, int(mod.padding[0])) if isinstance(mod, nn.Conv1d) else pair(mod.padding),
                "dilation": pair(mod.dilation),
                "groups": int(mod.groups),
            },
        )

    def batch_norm(self, name: str, bn: nn.Module) -> None:
        last = self.last()
        if last is None or last[1].kind not in ("conv", "affine"):
            raise _refuse(self.target, f"BatchNorm {name} follows no conv or linear layer it could be folded into")
        scale = (bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)).cpu().numpy()
        shift = bn.bias.detach().double().cpu().numpy() - bn.running_mean.double().cpu().numpy() * scale
        params = last[1].params
        params["weight"] = params["weight"] * scale.reshape(-1, *[1] * (params["weight"].ndim - 1))
        params["bias"] = params["bias"] * scale + shift

    def neuron(self, name: str, mod: nn.Module, out_shape: tuple[int, ...]) -> None:
        target = self.target
        if target.reset is None:
            raise _refuse(target, f"neuron {name}: {target.consumer} cannot run it ({target.no_neuron_reason})")
        if isinstance(mod, neuron.IFNode):
            raise _refuse(
                target,
                f"neuron {name} is IF, which {target.consumer} does not import as one (snnTorch reads nir.IF as a "
                "leaky neuron, Sinabs clips its membrane at -threshold)",
            )
        reset = "subtract" if mod.v_reset is None else ("zero" if float(mod.v_reset) == 0.0 else "other")
        if reset != target.reset:
            does = "resets the membrane to zero" if target.reset == "zero" else "resets the membrane by subtraction"
            have = {"subtract": "soft reset (v_reset: null)", "zero": "reset to 0", "other": f"reset to {mod.v_reset}"}
            raise _refuse(target, f"neuron {name} has {have[reset]}, but {target.consumer} {does}")
        multi = isinstance(mod, MultiSpikeLIFNode)
        if multi != target.multi_spike:
            have, want = ("several spikes", "at most one") if multi else ("at most one spike", "several")
            raise _refuse(target, f"neuron {name} fires {have} in a step, but {target.consumer}'s LIF fires {want}")
        last = self.last()
        if last is None or last[1].kind not in ("conv", "affine"):
            raise _refuse(target, f"neuron {name} is not driven by a conv or linear layer")
        plif = isinstance(mod, neuron.ParametricLIFNode)
        tau = 1.0 / float(mod.w.detach().sigmoid().item()) if plif else float(mod.tau)
        gain = 1.0 / tau if mod.decay_input else 1.0  # spikingjelly charges h = (1 - 1/tau) v + gain * x
        threshold = float(mod.v_threshold)
        shape = self.as_2d(out_shape)
        if target.name == "sinabs":  # v' = v / gain, threshold / gain; tau in steps: exp(-1/tau) = 1 - 1/tau
            shape = (shape[0], *[1] * (len(shape) - 1))  # one value per channel
            tau_node, r, threshold = -1.0 / math.log1p(-1.0 / tau), tau, threshold / gain
        else:  # the gain goes into the driving layer; tau in seconds, Euler steps of DT_S, r * DT_S / tau = 1
            last[1].params["weight"] = last[1].params["weight"] * gain
            last[1].params["bias"] = last[1].params["bias"] * gain
            tau_node, r = tau * DT_S, tau
        full = lambda value: np.full(shape, value, dtype=np.float32)  # noqa: E731
        self.ops[name] = _Op(
            "lif", {"tau": full(tau_node), "r": full(r), "v_leak": full(0.0), "v_threshold": full(threshold)}
        )

    def pool(self, name: str, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]) -> None:
        if self.target.pool is None:
            raise _refuse(self.target, f"pooling {name}: {self.target.consumer} imports no pooling node")
        if any(padding):
            raise _refuse(self.target, f"pooling {name} pads its input, which the {self.target.pool} pool node lacks")
        if self.target.pool == "sum":
            self.in_gain *= 1.0 / math.prod(kernel)
        self.ops[name] = _Op(f"{self.target.pool}_pool", {"kernel_size": kernel, "stride": stride, "padding": (0, 0)})

    def avg_pool(self, name: str, mod: nn.Module) -> None:
        def two(v: Any, pad: int = 1) -> tuple[int, ...]:  # 1-D windows become (pad, v) over the [C, 1, L] map
            vals = tuple(int(x) for x in (v if isinstance(v, tuple | list) else (v,) * max(self.spatial, 1)))
            return (pad, vals[0]) if self.spatial == 1 else vals

        if getattr(mod, "ceil_mode", False):
            raise _refuse(self.target, f"pooling {name} uses ceil_mode, which the pool nodes lack")
        stride = mod.stride if mod.stride is not None else mod.kernel_size
        self.pool(name, two(mod.kernel_size), two(stride), two(mod.padding, 0))

    def flatten(self, name: str, mod: nn.Flatten, in_shape: tuple[int, ...]) -> None:
        if mod.end_dim != -1:
            raise _refuse(self.target, f"flatten {name} keeps trailing dims (end_dim {mod.end_dim})")
        shape = self.as_2d(in_shape)
        self.ops[name] = _Op("flatten", {"input_shape": shape})


def _sample_shape(shapes: dict[int, Any], mod: nn.Module, merged: bool, which: int) -> tuple[int, ...]:
    if id(mod) not in shapes:
        raise NirUnsupported(f"NIR export: layer {type(mod).__name__} did not run on the example input")
    return shapes[id(mod)][which][1 if merged else 2 :]


def _write(model: nn.Module, target: Target, spatial: int, shapes: dict[int, Any]) -> _Writer:
    writer = _Writer(target, spatial)
    for layer_name, mod, merged in _leaves(model.body, "body."):
        name = layer_name.replace(".", "_")  # node names: nirtorch makes them torch module names (no dots)
        if isinstance(mod, _SKIPPED):
            continue
        if isinstance(mod, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
            writer.weights(name, mod, _sample_shape(shapes, mod, merged, 0))
            writer.holders[name] = layer_name
        elif isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d):
            writer.batch_norm(name, mod)
        elif isinstance(mod, _NEURONS):
            writer.neuron(name, mod, _sample_shape(shapes, mod, merged, 1))
        elif isinstance(mod, nn.AvgPool1d | nn.AvgPool2d):
            writer.avg_pool(name, mod)
        elif isinstance(mod, nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d):
            shape_in, shape_out = (writer.as_2d(_sample_shape(shapes, mod, merged, i)) for i in (0, 1))
            if tuple(shape_out[1:]) != (1, 1):
                raise _refuse(target, f"adaptive pooling {name} to {shape_out[1:]} is not a fixed window")
            writer.pool(name, tuple(shape_in[1:]), tuple(shape_in[1:]), (0, 0))
        elif isinstance(mod, nn.MaxPool1d | nn.MaxPool2d | nn.AdaptiveMaxPool1d | nn.AdaptiveMaxPool2d):
            raise _refuse(target, f"layer {name} max-pools spikes, which no node of {target.consumer} computes")
        elif isinstance(mod, nn.Flatten):
            writer.flatten(name, mod, _sample_shape(shapes, mod, merged, 0))
        elif type(mod).__name__ == "BasicBlock":
            raise _refuse(
                target, f"ResNet block {name} adds its shortcut to its main branch, and {target.no_branch_reason}"
            )
        else:
            raise _refuse(target, f"layer {name} ({type(mod).__name__}) has no NIR node")
    return writer


def _node(nir: Any, op: _Op) -> Any:
    p = op.params
    f32 = lambda a: (np.asarray(a, dtype=np.float64) + 0.0).astype(np.float32)  # noqa: E731  (+0.0: no -0.0)
    if op.kind == "affine":
        return nir.Affine(weight=f32(p["weight"]), bias=f32(p["bias"]))
    if op.kind == "conv":
        return nir.Conv2d(
            input_shape=tuple(p["input_shape"]),
            weight=f32(p["weight"]),
            stride=p["stride"],
            padding=p["padding"],
            dilation=p["dilation"],
            groups=p["groups"],
            bias=f32(p["bias"]),
        )
    if op.kind == "lif":
        return nir.LIF(**p)
    if op.kind in ("avg_pool", "sum_pool"):
        cls = nir.AvgPool2d if op.kind == "avg_pool" else nir.SumPool2d
        return cls(**{k: np.array(v) for k, v in p.items()})
    shape = p["input_shape"]
    return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=-len(shape), end_dim=-1)


def _check_model(model: nn.Module, io: dict[str, Any], target: Target) -> int:
    """The number of spatial dims of the sample; refusals that do not depend on the layers."""
    if getattr(model, "network", "snn") == "ann":
        raise _refuse(
            target,
            "an ANN twin ticket (model.neuron.type: relu) has no NIR form (NIR describes spiking graphs and has "
            "no ReLU node); export it as safetensors",
        )
    if io.get("family") == "spikformer" or hasattr(model.body, "patch_embed"):
        raise _refuse(
            target,
            "Spikformer's spiking self-attention multiplies two spike tensors, which no NIR node expresses "
            "(export it as safetensors)",
        )
    if io.get("frames"):
        raise _refuse(target, "models of event-frame data are not supported yet")
    kind = getattr(model.encoder, "kind", "direct")
    if kind != "direct":
        raise _refuse(target, f"the {kind} encoder has no NIR input (only direct encoding: the sample at every step)")
    spatial = len(io["input_shape"]) - 1
    if spatial not in (0, 1, 2):
        raise _refuse(target, f"input shape {tuple(io['input_shape'])} is not flat, [C, L] or [C, H, W]")
    return spatial


def ticket_graph(model: nn.Module, io: dict[str, Any], target: str | None = None) -> tuple[Any, dict[str, str]]:
    """The NIR graph of a ticket's model for ``target`` (default snntorch) and which node holds which
    layer's weights; `NirUnsupported` with one line when the target cannot express the model."""
    nir = _require_nir()
    rules = target_rules(target)
    spatial = _check_model(model, io, rules)
    device = next(model.parameters()).device
    writer = _write(model, rules, spatial, _shapes(model, torch.zeros(2, *io["input_shape"], device=device)))
    if writer.in_gain != 1.0:
        raise _refuse(rules, "the model ends in a pooling layer, which the readout must follow")
    in_shape = writer.as_2d(tuple(int(v) for v in io["input_shape"]))
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(in_shape)})}
    nodes.update({name: _node(nir, op) for name, op in writer.ops.items()})
    nodes["output"] = nir.Output(output_type={"output": np.array([int(io["num_classes"])])})
    names = list(nodes)
    metadata = {
        "producer": "sltsearch",
        "target": rules.name,
        "consumer": rules.consumer,
        "time_steps": int(io["time_steps"]),
        "dt": f"{DT_S} s per step" if rules.name == "snntorch" else "1 time step (tau in steps)",
        "input": f"one time step of the sample as {list(in_shape)} (direct encoding: the same sample every step)",
        "output": "readout per step; sltsearch's prediction is its mean over time_steps",
    }
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:], strict=True)), metadata=metadata)
    return graph, writer.holders


def nir_writer(model: nn.Module, io: dict[str, Any], target: str | None = None) -> Callable[[Path], None]:
    """Build the graph now (so an unsupported model fails before anything is written); write it later."""
    nir = _require_nir()
    graph, _ = ticket_graph(model, io, target)
    return lambda path: nir.write(str(path), graph)
