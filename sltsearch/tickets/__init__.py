"""Lottery-ticket machinery: masks, magnitude pruning, rewinding and IMP rounds."""

from sltsearch.tickets.masks import (
    apply_masks,
    attach_masks,
    current_masks,
    mask_stats,
    prunable_layers,
)
from sltsearch.tickets.pruning import magnitude_prune
from sltsearch.tickets.rewind import rewind

__all__ = [
    "apply_masks",
    "attach_masks",
    "current_masks",
    "magnitude_prune",
    "mask_stats",
    "prunable_layers",
    "rewind",
]
