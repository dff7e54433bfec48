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
    out: dict[str, torch.Tensor] = {}
    if scope == "layerwise":
        out = {n: _prune_lowest(weights[n], alive[n], round(rate * int(alive[n].sum()))) for n in layers}
        return _with_dense_layers(model, out)
    names = list(layers)
    flat_scores = torch.cat([weights[n].flatten() for n in names])
    flat_alive = torch.cat([alive[n].flatten() for n in names])
    flat_keep = _prune_lowest(flat_scores, flat_alive, round(rate * int(flat_alive.sum())))
    start = 0
    for n in names:
        size = weights[n].numel()
        out[n] = flat_keep[start : start + size].view_as(weights[n])
        start += size
    return _with_dense_layers(model, out)


def _with_dense_layers(model: nn.Module, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Layers left out (``exclude``) keep their current mask so every prunable layer reports its density."""
    for n, m in prunable_layers(model).items():
        if n not in out:
            mask = getattr(m, MASK, None)
            out[n] = (
                mask.detach().cpu().clone() if mask is not None else torch.ones_like(m.weight, dtype=torch.bool)
            ).cpu()
    return out


def resolve_layers(model: nn.Module, names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Layer names from ``keep_dense`` entries: 'first' / 'last' prunable layer, or exact layer names."""
    layers = list(prunable_layers(model))
    out: list[str] = []
    for name in names:
        if name == "first":
            out.append(layers[0])
        elif name == "last":
            out.append(layers[-1])
        elif name in layers:
            out.append(name)
        else:
            raise ValueError(f"keep_dense: no prunable layer '{name}'; prunable: first, last, {', '.join(layers)}")
    return tuple(dict.fromkeys(out))


def random_masks(masks: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """The random-pruning control: per layer, the same number of surviving weights at random positions."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, mask in masks.items():
        flat = torch.zeros(mask.numel(), dtype=torch.bool)
        keep = int(mask.sum())
        flat[torch.randperm(mask.numel(), generator=gen)[:keep]] = True
        out[name] = flat.view_as(mask)
    return out


def mask_distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Normalised Hamming distance between two mask sets: fraction of prunable weights whose bit differs."""
    diff = sum(int((a[n].cpu() != b[n].cpu()).sum()) for n in a)
    total = sum(m.numel() for m in a.values())
    return diff / total if total else 0.0
