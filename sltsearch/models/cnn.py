"""A small spiking CNN (conv-BN-LIF blocks, max pooling, linear readout) for 8x8 or 1-D inputs.

The ``deployable`` preset is ``tiny`` with average pooling: the layers every NIR consumer imports
(`sltsearch.ticket_io.nir_targets`); max pooling of spikes has no node in any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from sltsearch.models.layers import classifier_head, spatial_layers

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"channels": [32, 64], "hidden": 0},
    "small": {"channels": [64, 128], "hidden": 128},
    "base": {"channels": [64, 128, 256], "hidden": 256},
    "deployable": {"channels": [32, 64], "hidden": 0, "pool": "avg"},
}


def build_spiking_cnn(
    input_shape: tuple[int, ...],
    num_classes: int,
    make_neuron: Callable[[], nn.Module],
    options: dict[str, Any],
) -> nn.Module:
    """Multi-step body: [T, B, C, *spatial] -> [T, B, num_classes]. Works for 2-D images and 1-D signals."""
    unknown = set(options) - {"channels", "hidden", "pool"}
    if unknown:
        raise ValueError(f"model.options: unknown key(s) {sorted(unknown)}; allowed: channels, hidden, pool")
    channels: list[int] = list(options["channels"])
    hidden: int = int(options.get("hidden", 0))
    kinds = spatial_layers(input_shape, "spiking_cnn")
    conv, bn, pool = kinds.conv, kinds.bn, kinds.pool(options.get("pool", "max"))

    blocks: list[nn.Module] = []
    in_ch = input_shape[0]
    spatial = list(input_shape[1:])
    for i, out_ch in enumerate(channels):
        blocks += [conv(in_ch, out_ch, 3, padding=1, bias=False), bn(out_ch), make_neuron()]
        if min(spatial) >= 2 and (i < len(channels) - 1 or min(spatial) >= 4):
            blocks.append(pool(2))
            spatial = [s // 2 for s in spatial]
        in_ch = out_ch
    blocks += classifier_head(in_ch, spatial, hidden, num_classes, make_neuron)
    return nn.Sequential(*blocks)
