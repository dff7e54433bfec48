"""What one trial runs with: the driver's context (cache, reporter, device) and the prepared data.

Kept apart from the stages and from `run_trial` so that every driver (Optuna today, Ray Tune next) builds
a `TrialContext` without importing the training code's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from sltsearch.data import DataSplits, make_loader
from sltsearch.data.registry import build_data_memo
from sltsearch.results.record import Ticket
from sltsearch.spec import Spec
from sltsearch.system.device import resolve_device
from sltsearch.trial.cache import StageCache


class TrialAborted(Exception):
    """Raised by a reporter to stop a trial early (e.g. a driver pruning it); earlier tickets stand."""

    tickets: int | None = None  # how many tickets the trial had reported when it stopped (set by TrialRunner)


@dataclass
class TrialContext:
    """What a driver hands a trial: its number, the stage cache, where to report, and the device."""

    trial_number: int = 0
    cache: StageCache = field(default_factory=lambda: StageCache(None))
    report: Callable[[Ticket], None] | None = None
    on_progress: Callable[[dict[str, Any]], None] | None = None
    device: str | None = None
    data_memo: dict[str, DataSplits] = field(default_factory=dict)
    # states trained or loaded during this trial (dense checkpoints by epoch, iteration rewind points), so a
    # trial without a disk cache can still rewind; they live as long as the context, never the process
    dense_checkpoints: dict[str, dict[int, dict[str, torch.Tensor]]] = field(default_factory=dict)
    rewind_states: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    # for paths (`sltsearch.trial.paths`): the objective values of the run's tickets so far, and the epochs x T
    # the search may still train (None: no compute budget); a driver without them lets paths stop on their own
    front: Callable[[], list[dict[str, Any]]] | None = None
    budget_left: Callable[[], float | None] | None = None
    # where the path starts (`paths.branch_point`): the rates of the ticket it branches from, decided from
    # ``front`` and handed to ``on_branch`` (which records it); a replay hands in the recorded one instead
    branch: list[float] | None = None
    on_branch: Callable[[list[float]], None] | None = None

    def progress(self, **event: Any) -> None:
        if self.on_progress:
            self.on_progress({"trial": self.trial_number, **event})


@dataclass
class TrialSetup:
    """A parameterised spec with its data, device and evaluation loaders, prepared once per trial."""

    spec: Spec
    data: DataSplits
    device: torch.device
    val_loader: Any
    test_loader: Any


def prepare(spec: Spec, ctx: TrialContext) -> TrialSetup:
    """Data, loaders and device for a concrete (already parameterised) spec."""
    data = build_data_memo(spec.data, ctx.data_memo)
    device = resolve_device(ctx.device or spec.train.device)
    ebs = spec.data.eval_batch_size
    return TrialSetup(
        spec, data, device, make_loader(data.val, ebs, shuffle=False), make_loader(data.test, ebs, shuffle=False)
    )
