"""Lottery-ticket machinery: masks, magnitude pruning, rewinding and IMP rounds."""

from sltsearch.tickets.masks import (
    apply_masks,
    attach_masks,
    current_masks,
    mask_stats,
    prunable_layers,
)
from sltsearch.tickets.pruning import magnitude_prune, mask_distance, random_masks, resolve_layers
from sltsearch.tickets.rewind import reinit_state, rewind

__all__ = [
    "apply_masks",
    "attach_masks",
    "current_masks",
    "magnitude_prune",
    "mask_distance",
    "mask_stats",
    "prunable_layers",
    "random_masks",
    "reinit_state",
    "resolve_layers",
    "rewind",
]
