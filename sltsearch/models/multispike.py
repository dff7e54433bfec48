"""A LIF neuron that fires several spikes in one step, as Sinabs (and the Speck / DynapCNN chips) do.

Sinabs's LIF, which its NIR import builds, fires ``floor(v / threshold)`` spikes where the membrane passes
several thresholds in one step and subtracts that many thresholds (``MultiSpike`` with ``MembraneSubtract``).
spikingjelly's neurons fire at most one spike per step, so a soft-reset LIF ticket run in Sinabs differs
wherever its membrane goes past twice the threshold (`results/benchmarks/nir_targets.md`). A ticket trained
with this neuron computes what Sinabs computes. The first spike of a step carries the surrogate gradient;
the further ones are counted without one (they only occur well above the threshold).
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import neuron


class MultiSpikeLIFNode(neuron.LIFNode):
    """LIF with soft reset: ``h = v + (x - v) / tau``, ``spikes = floor(h / threshold)`` where
    ``h >= threshold``, ``v = h - spikes * threshold``. Multi-step only (``[T, ...]`` in, counts out)."""

    def __init__(self, **kwargs: object) -> None:
        kwargs["v_reset"] = None
        kwargs["step_mode"] = "m"
        super().__init__(**kwargs)

    def multi_step_forward(self, x_seq: torch.Tensor, *args: torch.Tensor, **kwargs: object) -> torch.Tensor:
        v = self.v
        if not isinstance(v, torch.Tensor) or v.shape != x_seq.shape[1:]:
            v = torch.full_like(x_seq[0], float(v) if not isinstance(v, torch.Tensor) else 0.0)
        threshold = self.v_threshold
        out = []
        for x in x_seq:
            h = v + (x - v) / self.tau if self.decay_input else v - v / self.tau + x
            first = self.surrogate_function(h - threshold)  # 1 where h >= threshold, with the surrogate gradient
            more = torch.clamp(torch.floor(h.detach() / threshold) - 1.0, min=0.0) * first.detach()
            spikes = first + more
            v = h - (spikes.detach() if self.detach_reset else spikes) * threshold
            out.append(spikes)
        self._memories["v"] = v
        return torch.stack(out)

    def single_step_forward(self, x: torch.Tensor, *args: torch.Tensor, **kwargs: object) -> torch.Tensor:
        return self.multi_step_forward(x.unsqueeze(0))[0]
