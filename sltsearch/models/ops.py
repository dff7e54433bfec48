"""Small modules that exist so the energy counter can see operations that are not Conv/Linear layers.

`SpikeMatmul` wraps a matrix product of two spike tensors (spiking self-attention's Q·K^T and (QK^T)·V):
as a module it can be hooked, and the counter counts its exact spike-driven operations.
"""

from __future__ import annotations

import torch
from torch import nn


class SpikeMatmul(nn.Module):
    """``a @ b`` for tensors [..., n, k] x [..., k, m]; optional constant ``scale`` applied after."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = a @ b
        return out * self.scale if self.scale != 1.0 else out
