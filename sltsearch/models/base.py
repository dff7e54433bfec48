"""`SpikingClassifier`: the one model interface the rest of sltsearch relies on.

It takes static samples [B, ...], encodes them to [T, B, ...], runs a multi-step body and returns the
mean output over time [B, C]. ``time_steps`` is a plain attribute so that early-time tickets can search
masks at a smaller T and train the final ticket at the full T on the same module. ``network`` says whether the
body is spiking (``snn``) or the ANN twin (``ann``, `sltsearch.models.twin`: ReLU for every neuron, T = 1).
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import functional
from torch import nn


class SpikingClassifier(nn.Module):
    def __init__(
        self, encoder: nn.Module, body: nn.Module, time_steps: int, family: str, network: str = "snn"
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.body = body
        self.time_steps = time_steps
        self.family = family
        self.network = network
        functional.set_step_mode(self.body, "m")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.encoder(x, self.time_steps)
        out = self.body(seq)
        return out.mean(0)

    def reset_state(self) -> None:
        """Clear membrane state; call between independent batches."""
        functional.reset_net(self)
