"""Weight masks stored as persistent ``weight_mask`` buffers on each prunable layer.

Pruned weights stay *exactly* zero: the mask zeroes their gradient (so optimizer moments never build up)
and is re-applied after every optimizer step (so weight decay or momentum cannot revive them).
Masks live in the module's state_dict, so a saved ticket carries its mask.

Both multiplications use the mask in the weight's dtype, cached per layer until the boolean buffer changes (a new
tensor, or an in-place write such as ``load_state_dict``, which bumps its version counter): multiplying by the boolean
buffer cast it to float twice per layer and step (profiled in results/benchmarks/snn_step_cpu.md). ``w * 1.0`` and
``w * 0.0`` are what the boolean product computed, so the weights are bit-for-bit the same. `apply_masks` multiplies
all layers in one ``torch._foreach_mul_`` (one fused kernel per dtype and device on CUDA).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sltsearch.compat.torch import foreach_mul_, version

MASK = "weight_mask"
_PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def prunable_layers(model: nn.Module, exclude: tuple[str, ...] = ()) -> dict[str, nn.Module]:
    """Conv and linear layers whose weights may be pruned (BatchNorm and biases never are).

    A layer can opt out with ``layer.sltsearch_prunable = False``; ``exclude`` names layers to keep dense.
    """
    return {
        name: mod
        for name, mod in model.named_modules()
        if isinstance(mod, _PRUNABLE) and getattr(mod, "sltsearch_prunable", True) and name not in exclude
    }


_CACHE = "_sltsearch_mask_cache"


def mask_like_weight(module: nn.Module) -> torch.Tensor:
    """``module``'s mask as a tensor of its weight's dtype and device, cached until the mask buffer changes.

    The cache holds the buffer itself (compared by identity, so a replaced buffer never matches) and its version
    counter (bumped by every in-place write: ``copy_``, ``load_state_dict``, ``fill_``).
    """
    mask, weight = getattr(module, MASK), module.weight
    cached = module.__dict__.get(_CACHE)
    if (
        cached is None
        or cached[0] is not mask
        or cached[1] != version(mask)
        or cached[2].dtype != weight.dtype
        or cached[2].device != weight.device
    ):
        cached = (mask, version(mask), mask.detach().to(dtype=weight.dtype, device=weight.device))
        module.__dict__[_CACHE] = cached  # a plain attribute: not a buffer, never in the state_dict
    return cached[2]


def _grad_hook(module: nn.Module):
    def hook(grad: torch.Tensor) -> torch.Tensor:
        mask = mask_like_weight(module)
        return grad * (mask if mask.dtype == grad.dtype else mask.to(grad.dtype))

    return hook


def attach_masks(model: nn.Module, masks: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Give every prunable layer a mask buffer (all ones unless ``masks`` names one) and apply it.

    Calling it again replaces the mask values in place; the gradient hook is registered once.
    """
    masks = masks or {}
    for name, mod in prunable_layers(model).items():
        value = masks.get(name)
        value = (
            torch.ones_like(mod.weight, dtype=torch.bool) if value is None else value.to(mod.weight.device)
        )
        if value.shape != mod.weight.shape:
            raise ValueError(
                f"mask for {name} has shape {tuple(value.shape)}, weight has {tuple(mod.weight.shape)}"
            )
        if hasattr(mod, MASK):
            getattr(mod, MASK).copy_(value.bool())
        else:
            mod.register_buffer(MASK, value.bool().clone(), persistent=True)
            mod.weight.register_hook(_grad_hook(mod))
    apply_masks(model)
    return current_masks(model)


@torch.no_grad()
def apply_masks(model: nn.Module) -> None:
    """Zero every pruned weight in place; call after each optimizer step and after loading weights."""
    weights, masks = [], []
    for mod in model.modules():
        if getattr(mod, MASK, None) is not None:
            weights.append(mod.weight)
            masks.append(mask_like_weight(mod))
    if weights:
        foreach_mul_(weights, masks)


def masks_in(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The masks a state dict holds (its ``<layer>.weight_mask`` entries), by layer name."""
    suffix = "." + MASK
    return {name.removesuffix(suffix): value for name, value in state.items() if name.endswith(suffix)}


def load_masked_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Install a stage's or a ticket's state, masks included: the mask buffers first (so the state fits the
    model), then the state, then the masks applied (so pruned weights are exactly zero whatever was loaded)."""
    attach_masks(model, masks_in(state))
    model.load_state_dict(state)
    apply_masks(model)


def current_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Layer name -> a CPU copy of its boolean mask."""
    return {
        name: getattr(mod, MASK).detach().cpu().clone()
        for name, mod in model.named_modules()
        if getattr(mod, MASK, None) is not None
    }


@dataclass(frozen=True)
class MaskStats:
    """Counts over the prunable weights: ``sparsity`` = fraction that is zero; per-layer sparsity too."""

    total: int
    remaining: int
    per_layer: dict[str, float]

    @property
    def sparsity(self) -> float:
        return 1.0 - self.remaining / self.total if self.total else 0.0

    @property
    def density(self) -> float:
        return 1.0 - self.sparsity


def mask_stats(masks: dict[str, torch.Tensor]) -> MaskStats:
    total = sum(m.numel() for m in masks.values())
    remaining = sum(int(m.sum()) for m in masks.values())
    per_layer = {name: 1.0 - int(m.sum()) / m.numel() for name, m in masks.items()}
    return MaskStats(total=total, remaining=remaining, per_layer=per_layer)
