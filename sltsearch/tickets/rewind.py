"""Weight rewinding: surviving weights go back to their values at the rewind point."""

from __future__ import annotations

import torch
from torch import nn

from sltsearch.tickets.masks import MASK, apply_masks, attach_masks


@torch.no_grad()
def rewind(model: nn.Module, checkpoint: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
    """Load every parameter and buffer from ``checkpoint`` (BatchNorm statistics and neuron parameters too),
    then install ``masks`` and zero the pruned weights. Masks in the checkpoint, if any, are ignored.
    """
    state = {k: v for k, v in checkpoint.items() if not k.endswith(MASK)}
    own = model.state_dict()
    missing = [k for k in own if not k.endswith(MASK) and k not in state]
    if missing:
        raise KeyError(f"checkpoint lacks {len(missing)} entries, e.g. {missing[:3]}")
    for key, value in state.items():
        own[key].copy_(value)
    attach_masks(model, masks)
    apply_masks(model)


def reinit_state(
    checkpoint: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The random re-initialisation control: every prunable weight (``*.weight`` with a mask) from a freshly
    initialised model, all else (biases, BatchNorm, neuron parameters) from ``checkpoint``."""
    masked = {k[: -len(MASK)] + "weight" for k in fresh if k.endswith(MASK)}
    masked |= {k[: -len(MASK)] + "weight" for k in checkpoint if k.endswith(MASK)}
    return {k: (fresh[k] if k in masked else v) for k, v in checkpoint.items()}
