"""Forward hooks that count synaptic operations and spikes per layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from spikingjelly.activation_based.neuron import BaseNode
from torch import nn
from torch.utils.data import DataLoader

_CONV = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}


@dataclass
class LayerCount:
    """Per-sample counts of one layer, summed over time steps."""

    name: str
    type: str
    input_kind: str = "spike"  # "spike" (binary input: ACs) or "real" (MACs)
    input_rate: float = 0.0  # fraction of non-zero inputs
    dense_ops: float = 0.0  # every synapse, every step, no sparsity of any kind
    ops: float = 0.0  # counted: non-zero weights x (non-zero spikes | every real input)
    approx_ops: float = 0.0  # T x firing rate x weight density x dense ops per step
    energy_pj: float = 0.0
    _in_nonzero: float = field(default=0.0, repr=False)
    _in_total: float = field(default=0.0, repr=False)

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


@dataclass
class EnergyReport:
    """Totals and per-layer counts for one model on ``samples`` evaluation samples (per-sample values)."""

    layers: list[LayerCount]
    macs: float
    acs: float
    energy_uj: float
    firing_rate: float
    samples: int
    time_steps: int
    e_mac_pj: float
    e_ac_pj: float

    def table(self) -> list[dict[str, Any]]:
        total = sum(layer.energy_pj for layer in self.layers) or 1.0
        return [{**layer.public(), "energy_share": layer.energy_pj / total} for layer in self.layers]


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def _count(
    module: nn.Module, x: torch.Tensor, first_once: bool, time_steps: int
) -> tuple[float, float, float, bool]:
    """(counted ops, dense ops, non-zero inputs) summed over the whole batch and time, and the input kind."""
    weight = module.weight.detach()
    w_nz = (weight != 0).to(x.dtype)
    spikes = _is_binary(x)
    x_ind = (x != 0).to(x.dtype) if spikes else torch.ones_like(x)
    if isinstance(module, nn.Linear):
        x2 = x_ind.reshape(-1, x.shape[-1])
        ops = float(x2.sum(0) @ w_nz.sum(0))
        dense = float(x2.shape[0] * weight.numel())
    else:
        conv = (
            _CONV[type(module)]
            if type(module) in _CONV
            else next(f for c, f in _CONV.items() if isinstance(module, c))
        )
        spatial = weight.dim() - 2
        x2 = x_ind.reshape(-1, *x.shape[-(spatial + 1) :])
        kw = {
            "stride": module.stride,
            "padding": module.padding,
            "dilation": module.dilation,
            "groups": module.groups,
        }
        if isinstance(module.padding, str):
            kw["padding"] = module.padding
        ops = float(conv(x2, w_nz, **kw).sum())
        out = conv(x2[:1], torch.ones_like(w_nz), **kw)
        dense = float(out[0].numel() * weight[0].numel() * x2.shape[0])
    nonzero = float((x != 0).sum())
    if (
        first_once
        and not spikes
        and x.dim() > 1
        and x.shape[0] == time_steps
        and all(torch.equal(x[0], x[t]) for t in range(1, time_steps))
    ):
        ops /= time_steps
        dense /= time_steps
    return ops, dense, nonzero, spikes


@torch.no_grad()
def measure_energy(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    constants: Any,
    max_samples: int | None = None,
) -> EnergyReport:
    """Run ``model`` on up to ``max_samples`` samples of ``loader`` and count per-sample operations.

    ``constants`` is an `EnergySpec` (e_mac_pj, e_ac_pj, first_layer). Results do not depend on batch size.
    """
    model.eval()
    time_steps = int(getattr(model, "time_steps", 1))
    first_once = constants.first_layer == "once"
    layers = {
        name: mod for name, mod in model.named_modules() if isinstance(mod, tuple(_CONV) + (nn.Linear,))
    }
    counts = {name: LayerCount(name=name, type=type(mod).__name__) for name, mod in layers.items()}
    kinds: dict[str, set[bool]] = {name: set() for name in layers}
    spike_stats = {"spikes": 0.0, "neurons": 0.0}
    handles = []

    def layer_hook(name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            ops, dense, nonzero, spikes = _count(module, inputs[0], first_once, time_steps)
            c = counts[name]
            c.ops += ops
            c.dense_ops += dense
            c._in_nonzero += nonzero
            c._in_total += inputs[0].numel()
            kinds[name].add(spikes)

        return hook

    def neuron_hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        spike_stats["spikes"] += float(output.detach().sum())
        spike_stats["neurons"] += output.numel()

    for name, mod in layers.items():
        handles.append(mod.register_forward_hook(layer_hook(name)))
    for mod in model.modules():
        if isinstance(mod, BaseNode):
            handles.append(mod.register_forward_hook(neuron_hook))
    samples = 0
    try:
        for x, _ in loader:
            if max_samples is not None and samples >= max_samples:
                break
            if max_samples is not None:
                x = x[: max_samples - samples]
            model(x.to(device))
            model.reset_state()
            samples += len(x)
    finally:
        for h in handles:
            h.remove()

    macs = acs = 0.0
    for name, c in counts.items():
        c.input_kind = "spike" if kinds[name] == {True} else "real"
        c.ops /= max(samples, 1)
        c.dense_ops /= max(samples, 1)
        c.input_rate = c._in_nonzero / c._in_total if c._in_total else 0.0
        density = float((layers[name].weight != 0).float().mean())
        rate = c.input_rate if c.input_kind == "spike" else 1.0
        c.approx_ops = c.dense_ops * rate * density
        if c.input_kind == "spike":
            acs += c.ops
            c.energy_pj = c.ops * constants.e_ac_pj
        else:
            macs += c.ops
            c.energy_pj = c.ops * constants.e_mac_pj
    energy_pj = macs * constants.e_mac_pj + acs * constants.e_ac_pj
    firing = spike_stats["spikes"] / spike_stats["neurons"] if spike_stats["neurons"] else 0.0
    return EnergyReport(
        layers=list(counts.values()),
        macs=macs,
        acs=acs,
        energy_uj=energy_pj * 1e-6,
        firing_rate=firing,
        samples=samples,
        time_steps=time_steps,
        e_mac_pj=constants.e_mac_pj,
        e_ac_pj=constants.e_ac_pj,
    )
