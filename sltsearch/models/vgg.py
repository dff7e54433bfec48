"""Spiking VGG (VGG-11 / VGG-16 layouts, BatchNorm, max pooling) for 2-D images and 1-D signals.

Written here rather than reusing ``spikingjelly.activation_based.model.spiking_vgg.SpikingVGG``: that
class is the torchvision ImageNet VGG (3 input channels fixed, 7x7 adaptive average pool and two
4096-wide FC layers, 2-D only). We need CIFAR-size and 8x8 / 1-D inputs, a width multiplier, the
neuron built by `neuron_factory`, and max pooling everywhere (keeps spikes binary, so every layer after
the first is accumulate-only for the energy counter). The layouts are the torchvision/spikingjelly
``cfgs`` "A" (VGG-11) and "D" (VGG-16).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from sltsearch.models.layers import classifier_head, spatial_layers

LAYOUTS: dict[str, list[int | str]] = {
    "tiny": [32, 32, "M", 64, 64, "M"],
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"layout": "tiny", "width": 1.0, "hidden": 0},
    "vgg11": {"layout": "vgg11", "width": 1.0, "hidden": 0},
    "vgg16": {"layout": "vgg16", "width": 1.0, "hidden": 0},
    # tiny with average pooling: what every NIR consumer imports (max pooling of spikes has no NIR node)
    "deployable": {"layout": "tiny", "width": 1.0, "hidden": 0, "pool": "avg"},
}

_OPTIONS = {"layout", "width", "hidden", "pool"}


def _layout(value: Any) -> list[int | str]:
    if isinstance(value, str):
        if value not in LAYOUTS:
            raise ValueError(f"model.options.layout: unknown layout '{value}'; known: {', '.join(LAYOUTS)}")
        return list(LAYOUTS[value])
    items = list(value)
    for item in items:
        if item != "M" and not (isinstance(item, int) and item > 0):
            raise ValueError(f"model.options.layout: entries must be positive ints or 'M', got {item!r}")
    return items


def build_spiking_vgg(
    input_shape: tuple[int, ...],
    num_classes: int,
    make_neuron: Callable[[], nn.Module],
    options: dict[str, Any],
) -> nn.Module:
    """Multi-step body [T, B, C, *spatial] -> [T, B, num_classes].

    Options: ``layout`` (a name in `LAYOUTS` or a list of channel counts and ``"M"`` for max pool),
    ``width`` (channel multiplier), ``hidden`` (0 = linear readout right after the features, else one
    spiking FC layer of that size first), ``pool`` (``max``, or ``avg`` for NIR export). A pool is skipped
    once the map is smaller than 2.
    """
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ValueError(f"model.options: unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(_OPTIONS))}")
    layout = _layout(options.get("layout", "vgg11"))
    width = float(options.get("width", 1.0))
    if width <= 0:
        raise ValueError(f"model.options.width must be > 0, got {width}")
    hidden = int(options.get("hidden", 0))
    kinds = spatial_layers(input_shape, "spiking_vgg")
    conv, bn, pool = kinds.conv, kinds.bn, kinds.pool(options.get("pool", "max"))

    blocks: list[nn.Module] = []
    in_ch = input_shape[0]
    spatial = list(input_shape[1:])
    for item in layout:
        if item == "M":
            if min(spatial) >= 2:
                blocks.append(pool(2))
                spatial = [s // 2 for s in spatial]
            continue
        out_ch = max(1, round(int(item) * width))
        blocks += [conv(in_ch, out_ch, 3, padding=1, bias=False), bn(out_ch), make_neuron()]
        in_ch = out_ch
    blocks += classifier_head(in_ch, spatial, hidden, num_classes, make_neuron)
    return nn.Sequential(*blocks)
