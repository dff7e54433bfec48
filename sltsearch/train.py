"""Train and evaluate spiking classifiers with surrogate-gradient BPTT.

Membrane state is reset after every batch. The learning rate is a function of the *absolute* epoch of
the recipe, so retraining a ticket rewound to epoch k replays the dense run's schedule from k onwards
(the open_lth convention); the optimizer itself starts fresh after a rewind (its moments are not rewound).
Model selection (``select: best_val``) looks at the validation split only.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from sltsearch.tickets.masks import apply_masks


def lr_at(recipe: Any, epoch: int) -> float:
    """Learning rate for (0-based) ``epoch`` of a `TrainSpec`."""
    if recipe.schedule == "constant":
        return recipe.lr
    return 0.5 * recipe.lr * (1.0 + math.cos(math.pi * epoch / recipe.epochs))


def make_optimizer(model: nn.Module, recipe: Any) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
        )
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, amp: bool = True) -> float:
    """Top-1 accuracy in [0, 1]; ``amp=False`` evaluates in FP32 on CUDA too (a ticket's measurement)."""
    model.eval()
    correct = total = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        with autocast(device) if amp else contextlib.nullcontext():
            logits = model(x)
        correct += int((logits.argmax(1) == y).sum())
        total += len(y)
        model.reset_state()
    return correct / max(total, 1)


def use_amp(device: torch.device) -> bool:
    """Mixed precision only on CUDA (CPU runs stay in FP32, bit-for-bit as before)."""
    return torch.device(device).type == "cuda"


def autocast(device: torch.device) -> Any:
    """``torch.autocast`` (FP16) on CUDA, a no-op context elsewhere."""
    if use_amp(device):
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def make_scaler(device: torch.device) -> torch.amp.GradScaler | None:
    return torch.amp.GradScaler("cuda") if use_amp(device) else None


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """One pass; returns the mean training loss. Masks are re-applied after every step.

    On CUDA the forward runs under autocast and the loss is scaled by ``scaler`` (made here when not given).
    """
    model.train()
    if scaler is None:
        scaler = make_scaler(device)
    total_loss, batches = 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            loss = F.cross_entropy(model(x).float(), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        apply_masks(model)
        model.reset_state()
        total_loss += loss.item()
        batches += 1
    return total_loss / max(batches, 1)


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the state_dict (safe to keep while training continues)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@dataclass
class TrainResult:
    """What a training run produced; ``val_accuracy`` belongs to the selected epoch."""

    best_epoch: int
    val_accuracy: float
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoints: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    recipe: Any,
    device: torch.device,
    start_epoch: int = 0,
    keep_checkpoints: bool = False,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train from ``start_epoch`` to ``recipe.epochs``; select the epoch by validation accuracy.

    With ``keep_checkpoints`` the state at the *start* of every epoch (0 = initialisation) is kept,
    so rewind points can be taken from it. The model ends holding the selected epoch's weights.
    """
    optimizer = make_optimizer(model, recipe)
    scaler = make_scaler(device)
    result = TrainResult(best_epoch=start_epoch, val_accuracy=-1.0)
    best_state: dict[str, torch.Tensor] | None = None
    for epoch in range(start_epoch, recipe.epochs):
        if keep_checkpoints:
            result.checkpoints[epoch] = state_copy(model)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(recipe, epoch)
        loss = train_one_epoch(model, train_loader, optimizer, device, scaler)
        val_acc = evaluate(model, val_loader, device)
        result.history.append({"epoch": epoch + 1, "loss": loss, "val_accuracy": val_acc})
        if on_epoch:
            on_epoch(epoch + 1, val_acc)
        last = epoch == recipe.epochs - 1
        if (recipe.select == "best_val" and val_acc > result.val_accuracy) or (
            recipe.select == "last" and last
        ):
            result.best_epoch, result.val_accuracy = epoch + 1, val_acc
            best_state = copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return result
