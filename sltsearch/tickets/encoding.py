"""The encoding layer's own sparsity target (``tickets.encoding_sparsity``), for every model family.

Why: under direct encoding the first weighted layer multiplies real-valued pixels (MACs at every input
position), so on sparse tickets it becomes most of the energy, and global magnitude pruning rarely prunes
it (its weights are few and large). Like MultiSp's ConvPEP target, the layer gets its own final sparsity:
round r of R reaches ``1 - (1 - target)^(r / R)`` inside the layer (a geometric schedule), pruning its
smallest-|w| surviving weights; the layer is kept out of the global (or layerwise / MultiSp group)
ranking, which the other layers follow as before.

The encoding layer is the first prunable layer in module order: the learned encoder's conv when
``model.encoder: learned``, else the body's first conv (Spikformer: the first ConvPEP conv). The energy
counter finds the same layer as the first weighted layer to run (`EnergyReport.encoding_layer`).
"""

from __future__ import annotations

import torch
from torch import nn

from sltsearch.tickets.masks import MASK, prunable_layers
from sltsearch.tickets.pruning import _prune_lowest


def encoding_layer(model: nn.Module) -> str | None:
    """Name of the encoding (first prunable) layer, None for a model without prunable layers."""
    return next(iter(prunable_layers(model)), None)


def round_goal(target: float, round_: int, total_rounds: int) -> float:
    """The layer's sparsity after round ``round_`` of ``total_rounds`` (geometric schedule to ``target``)."""
    frac = min(1.0, round_ / max(total_rounds, 1))
    return 1.0 - (1.0 - target) ** frac


@torch.no_grad()
def prune_encoding(model: nn.Module, name: str, target: float, round_: int, total_rounds: int) -> torch.Tensor:
    """The encoding layer's mask for this round: its smallest surviving |w| pruned to the round's goal."""
    mod = prunable_layers(model)[name]
    weight = mod.weight.detach().abs().float().cpu()
    mask = getattr(mod, MASK, None)
    alive = mask.detach().cpu().bool() if mask is not None else torch.ones_like(weight, dtype=torch.bool)
    pruned = alive.numel() - int(alive.sum())
    count = max(0, round(round_goal(target, round_, total_rounds) * alive.numel()) - pruned)
    return _prune_lowest(weight, alive, min(count, int(alive.sum())))
