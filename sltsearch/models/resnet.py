"""Spiking ResNet in the ResNet-19 style of the SNN literature (tdBN, Zheng et al. 2021), 1-D or 2-D.

ResNet-19: a 3x3 stem conv (128), three stages of basic blocks (3 x 128, 3 x 256 stride 2,
2 x 512 stride 2), global average pooling, FC 256 + spiking neuron, FC classes. Each basic block is
conv-BN-neuron-conv-BN, plus the shortcut (identity, or 1x1 conv-BN when the shape changes), then the
neuron after the sum (the "spiking ResNet" placement, as in spikingjelly's ``spiking_resnet``), so
every block outputs binary spikes. The global pool is ``avg`` as in the paper (its output is
real-valued, the FC after it counts as MACs); ``pool: max`` keeps it binary.

spikingjelly's ``spiking_resnet`` builds the torchvision ImageNet ResNets (7x7 stem, 4 stages, 2-D
only), which does not fit 8x8 digits, MNIST-1D or the ResNet-19 layout; the block here mirrors its
``BasicBlock``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from spikingjelly.activation_based import layer
from torch import nn

from sltsearch.models.layers import layers_for_ndim, spatial_layers

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"stem": 32, "channels": [32, 64], "blocks": [1, 1], "hidden": 0, "pool": "avg"},
    "resnet19": {"stem": 128, "channels": [128, 256, 512], "blocks": [3, 3, 2], "hidden": 256, "pool": "avg"},
}

_OPTIONS = {"stem", "channels", "blocks", "hidden", "pool", "width"}


class BasicBlock(nn.Module):
    """conv3x3-BN-neuron-conv3x3-BN (+ shortcut) -> neuron, multi-step."""

    def __init__(self, ndim: int, in_ch: int, out_ch: int, stride: int, make_neuron: Callable[[], nn.Module]) -> None:
        super().__init__()
        kinds = layers_for_ndim(ndim)
        conv, bn = kinds.conv, kinds.bn
        self.conv1 = conv(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = bn(out_ch)
        self.sn1 = make_neuron()
        self.conv2 = conv(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = bn(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(conv(in_ch, out_ch, 1, stride=stride, bias=False), bn(out_ch))
        self.sn2 = make_neuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.sn1(self.bn1(self.conv1(x)))))
        return self.sn2(out + identity)


def _ints(name: str, value: Any) -> list[int]:
    items = [int(v) for v in (value if isinstance(value, list | tuple) else [value])]
    if not items or any(v <= 0 for v in items):
        raise ValueError(f"model.options.{name}: need a non-empty list of positive ints, got {value!r}")
    return items


def build_spiking_resnet(
    input_shape: tuple[int, ...],
    num_classes: int,
    make_neuron: Callable[[], nn.Module],
    options: dict[str, Any],
) -> nn.Module:
    """Multi-step body [T, B, C, *spatial] -> [T, B, num_classes].

    Options: ``stem`` (stem channels), ``channels`` and ``blocks`` (one entry per stage; stage i > 0
    uses stride 2 while the map is at least 2 wide), ``width`` (channel multiplier), ``hidden`` (0 or
    the size of a spiking FC layer before the readout), ``pool`` (``avg`` | ``max`` global pooling).
    """
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ValueError(f"model.options: unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(_OPTIONS))}")
    width = float(options.get("width", 1.0))
    if width <= 0:
        raise ValueError(f"model.options.width must be > 0, got {width}")
    stem = max(1, round(_ints("stem", options.get("stem", 128))[0] * width))
    channels = [max(1, round(c * width)) for c in _ints("channels", options.get("channels", [128, 256, 512]))]
    blocks = _ints("blocks", options.get("blocks", [3, 3, 2]))
    if len(channels) != len(blocks):
        raise ValueError(
            f"model.options: 'channels' ({len(channels)} stages) and 'blocks' ({len(blocks)}) must have equal length"
        )
    hidden = int(options.get("hidden", 0))
    pool_kind = options.get("pool", "avg")
    if pool_kind not in ("avg", "max"):
        raise ValueError(f"model.options.pool: '{pool_kind}' not allowed; allowed: avg, max")
    kinds = spatial_layers(input_shape, "spiking_resnet")
    ndim, conv, bn = kinds.ndim, kinds.conv, kinds.bn
    if pool_kind == "avg":
        gpool: nn.Module = layer.AdaptiveAvgPool2d(1) if ndim == 2 else layer.AdaptiveAvgPool1d(1)
    else:  # spikingjelly has no adaptive max pool layer: wrap torch's, applied to [T*B, ...]
        gpool = layer.SeqToANNContainer(nn.AdaptiveMaxPool2d(1) if ndim == 2 else nn.AdaptiveMaxPool1d(1))

    mods: list[nn.Module] = [conv(input_shape[0], stem, 3, padding=1, bias=False), bn(stem), make_neuron()]
    in_ch = stem
    size = min(input_shape[1:])
    for stage, (out_ch, n) in enumerate(zip(channels, blocks, strict=True)):
        for b in range(n):
            stride = 2 if (stage > 0 and b == 0 and size >= 2) else 1
            mods.append(BasicBlock(ndim, in_ch, out_ch, stride, make_neuron))
            size = (size + 1) // 2 if stride == 2 else size
            in_ch = out_ch
    mods += [gpool, layer.Flatten()]
    features = in_ch
    if hidden:
        mods += [layer.Linear(features, hidden), make_neuron()]
        features = hidden
    mods.append(layer.Linear(features, num_classes))
    return nn.Sequential(*mods)
