"""A user's network (import path ``flaky_net:make_net``) whose builder fails for one searched option value.

The pre-run checks probe the spec's own options (``explode: false``), so the failure happens only inside the
trial that draws ``explode: true``: the way to test that a trial failing at run time does not stop a search
under every backend (Ray workers import it through PYTHONPATH)."""

from __future__ import annotations

from typing import Any

from spikingjelly.activation_based import layer
from torch import nn


def make_net(input_shape: tuple[int, ...], num_classes: int, options: dict[str, Any], make_neuron: Any) -> nn.Module:
    if options.get("explode"):
        raise RuntimeError("flaky_net: this trial's options make the builder fail")
    features = 1
    for size in input_shape:
        features *= size
    return nn.Sequential(layer.Flatten(), layer.Linear(features, 32), make_neuron(), layer.Linear(32, num_classes))
