"""Magnitude pruning: remove a fraction of the *remaining* weights with the smallest |w|.

Global scope ranks all prunable weights together; layerwise scope prunes each layer by the same fraction.
Exactly ``round(rate * remaining)`` weights are removed (ties broken by position, deterministically).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from sltsearch.tickets.masks import MASK, prunable_layers


def _prune_lowest(scores: torch.Tensor, alive: torch.Tensor, count: int) -> torch.Tensor:
    """A new mask: ``alive`` minus the ``count`` alive entries with the lowest scores."""
    flat_alive = alive.flatten()
    keep = flat_alive.clone()
    if count <= 0:
        return keep.view_as(alive)
    alive_idx = flat_alive.nonzero().squeeze(1)
    # stable sort: equal magnitudes are pruned in index order, so results never depend on the device
    order = torch.sort(scores.flatten()[alive_idx], stable=True).indices
    keep[alive_idx[order[:count]]] = False
    return keep.view_as(alive)


@torch.no_grad()
def magnitude_prune(
    model: nn.Module,
    rate: float,
    scope: Literal["global", "layerwise"] = "global",
    exclude: tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    """Masks that drop ``rate`` of each layer's (layerwise) or all (global) remaining weights by |w|.

    Reads the model's current weights and masks; returns the new masks without modifying the model.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"pruning rate must be in [0, 1), got {rate}")
    layers = prunable_layers(model, exclude)
    weights = {n: m.weight.detach().abs().float().cpu() for n, m in layers.items()}
    alive = {
        n: (
            getattr(m, MASK).detach().cpu()
            if hasattr(m, MASK)
            else torch.ones_like(weights[n], dtype=torch.bool)
        )
        for n, m in layers.items()
    }
    if scope == "layerwise":
        return {n: _prune_lowest(weights[n], alive[n], round(rate * int(alive[n].sum()))) for n in layers}
    names = list(layers)
    flat_scores = torch.cat([weights[n].flatten() for n in names])
    flat_alive = torch.cat([alive[n].flatten() for n in names])
    flat_keep = _prune_lowest(flat_scores, flat_alive, round(rate * int(flat_alive.sum())))
    out, start = {}, 0
    for n in names:
        size = weights[n].numel()
        out[n] = flat_keep[start : start + size].view_as(weights[n])
        start += size
    # layers left dense keep a full mask so every prunable layer reports its density
    for n, m in prunable_layers(model).items():
        out.setdefault(n, alive.get(n, torch.ones_like(m.weight, dtype=torch.bool, device="cpu")))
    return out
