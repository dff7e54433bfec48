"""Input encoders: static samples [B, ...] -> a time sequence [T, B, ...]."""

from __future__ import annotations

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


ENCODERS: dict[str, type[nn.Module]] = {"direct": DirectEncoder, "rate": RateEncoder, "frames": FrameEncoder}
