"""Input encoders: static samples [B, ...] -> a time sequence [T, B, ...].

``direct`` repeats the real-valued sample, so the model's first layer multiplies real pixels at every step
(MACs, T times unless the energy model assumes ``first_layer: once``); ``rate`` turns pixels into Poisson
(Bernoulli) spikes, so the first layer only accumulates; ``learned`` is a spiking encoding layer: a conv
that sees the real-valued sample once, BatchNorm, and a spiking neuron driven by that constant current
for T steps, so real-valued MACs are paid once per sample by construction and the body sees spikes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class DirectEncoder(nn.Module):
    """Repeats the real-valued input at every time step; the first layer then sees real values (MACs)."""

    kind = "direct"

    def forward(self, x: torch.Tensor, time_steps: int) -> torch.Tensor:
        return x.unsqueeze(0).expand(time_steps, *x.shape)


class RateEncoder(nn.Module):
    """Bernoulli spikes with probability = input clipped to [0, 1]; the first layer then sees spikes (ACs)."""

    kind = "rate"

    def forward(self, x: torch.Tensor, time_steps: int) -> torch.Tensor:
        p = x.clamp(0.0, 1.0).unsqueeze(0).expand(time_steps, *x.shape)
        return torch.bernoulli(p)


class FrameEncoder(nn.Module):
    """Event frames already carry time as [B, T, ...]: move it first."""

    kind = "frames"

    def forward(self, x: torch.Tensor, time_steps: int) -> torch.Tensor:
        return x.transpose(0, 1)


class LearnedEncoder(nn.Module):
    """A spiking encoding layer: conv (or linear) + BatchNorm on the static sample, once, then a neuron.

    The conv is marked ``sltsearch_once``: it runs on [B, ...], not on the T repeated steps, and the energy
    counter charges its real-valued MACs once per sample. Its weights are prunable like any layer's.
    """

    kind = "learned"

    def __init__(self, input_shape: tuple[int, ...], channels: int, make_neuron: Callable[[], nn.Module]) -> None:
        super().__init__()
        ndim = len(input_shape) - 1
        if ndim == 0:
            self.conv: nn.Module = nn.Linear(input_shape[0], channels, bias=False)
            self.bn: nn.Module = nn.BatchNorm1d(channels)
        elif ndim in (1, 2):
            conv, bn = (nn.Conv1d, nn.BatchNorm1d) if ndim == 1 else (nn.Conv2d, nn.BatchNorm2d)
            self.conv = conv(input_shape[0], channels, 3, padding=1, bias=False)
            self.bn = bn(channels)
        else:
            raise ValueError(f"model.encoder learned takes flat, 1-D or 2-D samples, got shape {input_shape}")
        self.conv.sltsearch_once = True
        self.neuron = make_neuron()
        self.out_shape = (channels, *input_shape[1:])

    def forward(self, x: torch.Tensor, time_steps: int) -> torch.Tensor:
        current = self.bn(self.conv(x))  # real pixels meet the weights once per sample
        return self.neuron(current.unsqueeze(0).expand(time_steps, *current.shape).contiguous())


ENCODERS: dict[str, type[nn.Module]] = {"direct": DirectEncoder, "rate": RateEncoder, "frames": FrameEncoder}
LEARNED_CHANNELS = 16  # default output channels of the learned encoder (model.encoder_channels)
