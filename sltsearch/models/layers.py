"""Multi-step layer types for 1-D signals (e.g. MNIST-1D) or 2-D images, chosen once per model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spikingjelly.activation_based import layer
from torch import nn


@dataclass(frozen=True)
class SpatialLayers:
    """The conv, BatchNorm and max-pool classes for one input dimensionality."""

    ndim: int
    conv: type
    bn: type
    # max-pooling keeps spikes binary, so the next layer stays accumulate-only
    max_pool: type
    # average pooling: what NIR consumers import (AvgPool2d, or SumPool2d with the next weights scaled)
    avg_pool: type

    def pool(self, kind: str) -> type:
        """The pooling class of ``model.options.pool`` (max | avg)."""
        if kind not in ("max", "avg"):
            raise ValueError(f"model.options.pool: '{kind}' not allowed; allowed: max, avg")
        return self.max_pool if kind == "max" else self.avg_pool


_BY_NDIM = {
    1: SpatialLayers(1, layer.Conv1d, layer.BatchNorm1d, layer.MaxPool1d, layer.AvgPool1d),
    2: SpatialLayers(2, layer.Conv2d, layer.BatchNorm2d, layer.MaxPool2d, layer.AvgPool2d),
}


def layers_for_ndim(ndim: int) -> SpatialLayers:
    return _BY_NDIM[ndim]


def spatial_layers(input_shape: tuple[int, ...], family: str) -> SpatialLayers:
    """Layer types for a sample shape [C, L] or [C, H, W]; any other shape is a one-line error."""
    ndim = len(input_shape) - 1
    if ndim not in _BY_NDIM:
        raise ValueError(f"{family} takes 1-D or 2-D inputs, got sample shape {input_shape}")
    return _BY_NDIM[ndim]


def classifier_head(
    channels: int, spatial: list[int], hidden: int, num_classes: int, make_neuron: Callable[[], nn.Module]
) -> list[nn.Module]:
    """Flatten, an optional spiking hidden layer, and the linear readout of a conv feature map."""
    features = channels
    for size in spatial:
        features *= size
    head: list[nn.Module] = [layer.Flatten()]
    if hidden:
        head += [layer.Linear(features, hidden), make_neuron()]
        features = hidden
    head.append(layer.Linear(features, num_classes))
    return head
