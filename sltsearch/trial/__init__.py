"""The trial layer: what one trial computes and caches, free of any driver (Optuna, Ray).

- `rounds`: `run_trial`, a trial's IMP rounds (or one-shot / early-bird / early-time tickets and controls);
- `stages`: the cached stages it is made of (dense run, rewind point, a round's retraining, a measurement);
- `measurement`: a stage's measured numbers, kept with the stage; `cache`: the content-addressed stage cache;
- `context`: what a trial runs with (the driver's cache, reporter and device; the prepared data).

``from sltsearch.trial import TrialContext, run_trial`` works; both are imported on first use, so a driver that
only needs `sltsearch.trial.context` (e.g. for `TrialAborted`) does not load the training code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {"run_trial": "sltsearch.trial.rounds", "TrialContext": "sltsearch.trial.context"}
__all__ = ["TrialContext", "run_trial"]

if TYPE_CHECKING:
    from sltsearch.trial.context import TrialContext
    from sltsearch.trial.rounds import run_trial


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sltsearch.trial' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
