"""`memory_budget`: what re-measuring an exported ticket can cost, stated and bounded before it runs.

Every value that sizes the work comes from ``ticket.json`` (time steps, evaluation batch, the model's sizes),
which anyone can edit inside the ranges a spec allows: T = 1024 with a batch of 512 takes gigabytes. So the
model is built on the meta device (no memory) and run once on one sample at the ticket's T: the worst case is
its parameters and buffers twice (the file's tensors and the model) plus every layer's output for a whole
evaluation batch at once, as if nothing were freed. Above the limit (``--max-memory-gb``, 8 GB unless raised)
the evaluation is refused in one line that says how to raise it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sltsearch.errors import UserError
from sltsearch.models import build_model
from sltsearch.spec import Spec
from sltsearch.system.device import seed_everything

DEFAULT_MAX_MEMORY_GB = 8.0
GB = 1e9


class OverBudget(UserError):
    """Re-measuring the ticket could take more memory than the user allows."""


@dataclass(frozen=True)
class Budget:
    """The worst-case bytes of an evaluation (None: the network could not be sized on the meta device)."""

    worst_bytes: int | None
    limit_bytes: int
    batch: int
    time_steps: int

    def describe(self) -> str:
        if self.worst_bytes is None:
            return "worst-case memory: unknown (the network does not run on the meta device)"
        return (
            f"worst-case memory {self.worst_bytes / GB:.2f} GB (batch {self.batch}, T={self.time_steps}; "
            f"limit {self.limit_bytes / GB:g} GB, --max-memory-gb)"
        )


def _is_layer(module: nn.Module) -> bool:
    from spikingjelly.activation_based.neuron import BaseNode

    direct = any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False))
    return direct or isinstance(module, BaseNode) or not any(True for _ in module.children())


def _activation_bytes(model: nn.Module, example: torch.Tensor) -> int:
    """Bytes of every layer's output for ``example`` (one sample), summed."""
    total = 0

    def hook(_mod: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        for out in output if isinstance(output, tuple | list) else (output,):
            if isinstance(out, torch.Tensor):
                total += out.numel() * out.element_size()

    handles = [m.register_forward_hook(hook) for m in model.modules() if _is_layer(m)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return total


def _steps(spec: Spec, io: dict[str, Any]) -> int:
    """The steps a run takes: the spec's (sltsearch's model) or model_io's (a NIR consumer), whichever is more."""
    return max(int(spec.model.inference_steps), int(io.get("time_steps", 1)))


def worst_case_bytes(spec: Spec, io: dict[str, Any]) -> int | None:
    """Parameters and buffers twice plus every layer's output for one evaluation batch, on the meta device."""
    shape = tuple(int(v) for v in io["input_shape"])
    steps = _steps(spec, io)
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            seed_everything(spec.seed)
            model = build_model(spec.model, shape, int(io["num_classes"]), frames=bool(io["frames"]))
            model.time_steps = steps
            model.eval()
            example = torch.zeros(1, steps, *shape) if io.get("frames") else torch.zeros(1, *shape)
            per_sample = _activation_bytes(model, example)
    except UserError:
        raise
    except Exception:  # noqa: BLE001 - a network (a user's) that cannot run on the meta device
        return None
    held = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return 2 * held + int(spec.data.eval_batch_size) * per_sample


def memory_budget(spec: Spec, io: dict[str, Any], max_memory_gb: float | None, where: str) -> Budget:
    """The evaluation's worst case against the limit; `OverBudget` (one line naming the fix) above it."""
    limit_gb = DEFAULT_MAX_MEMORY_GB if max_memory_gb is None else max_memory_gb
    if isinstance(limit_gb, bool) or not isinstance(limit_gb, int | float) or not 0 < limit_gb < 1e6:
        raise UserError(f"--max-memory-gb: {max_memory_gb!r} is not a number of gigabytes above 0")
    budget = Budget(worst_case_bytes(spec, io), int(limit_gb * GB), int(spec.data.eval_batch_size), _steps(spec, io))
    if budget.worst_bytes is not None and budget.worst_bytes > budget.limit_bytes:
        raise OverBudget(
            f"{where}: re-measuring this ticket may take {budget.worst_bytes / GB:.1f} GB of memory (batch "
            f"{budget.batch}, T={budget.time_steps}), more than the {limit_gb:g} GB allowed; pass --max-memory-gb "
            f"{max(1, int(budget.worst_bytes / GB) + 1)} (Python: max_memory_gb=) if ticket.json is right"
        )
    return budget
