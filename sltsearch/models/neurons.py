"""Neuron factory: turns a `NeuronSpec` into spikingjelly multi-step neurons (or the ANN twin's ReLU)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spikingjelly.activation_based import surrogate
from torch import nn

from sltsearch.models.fused_neurons import FusedIFNode, FusedLIFNode, FusedParametricLIFNode
from sltsearch.models.multispike import MultiSpikeLIFNode
from sltsearch.models.twin import ReLUActivation

_SURROGATES: dict[str, Callable[..., Any]] = {
    "atan": surrogate.ATan,
    "sigmoid": surrogate.Sigmoid,
    "fast_sigmoid": getattr(surrogate, "FastSigmoid", surrogate.Sigmoid),
    "piecewise_quadratic": surrogate.PiecewiseQuadratic,
}


def neuron_factory(spec: Any) -> Callable[[], nn.Module]:
    """A zero-argument constructor of the neuron named by ``spec`` (a `NeuronSpec`), in multi-step mode.

    LIF, PLIF and IF are spikingjelly's nodes with a fused multi-step path on CPU (`fused_neurons`);
    ``lif_multi`` is a soft-reset LIF that fires several spikes per step (`multispike`); ``relu`` gives the ANN
    twin's `ReLUActivation` (`sltsearch.models.twin`), which ignores the spiking parameters.
    """
    if spec.type == "relu":
        return ReLUActivation
    sg_cls = _SURROGATES[spec.surrogate]
    common = {
        "v_threshold": spec.v_threshold,
        "v_reset": spec.v_reset,
        "detach_reset": spec.detach_reset,
        "step_mode": "m",
    }

    def make() -> nn.Module:
        sg = sg_cls(alpha=spec.surrogate_alpha) if spec.surrogate_alpha else sg_cls()
        if spec.type == "lif":
            return FusedLIFNode(tau=spec.tau, surrogate_function=sg, **common)
        if spec.type == "lif_multi":
            return MultiSpikeLIFNode(tau=spec.tau, surrogate_function=sg, v_threshold=spec.v_threshold,
                                     detach_reset=spec.detach_reset)
        if spec.type == "plif":
            return FusedParametricLIFNode(init_tau=spec.tau, surrogate_function=sg, **common)
        return FusedIFNode(surrogate_function=sg, **common)

    return make
