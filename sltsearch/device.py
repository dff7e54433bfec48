"""Device choice and seeding, in one place so every stage is reproducible."""

from __future__ import annotations

import random
import re

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; an explicit CUDA request without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from sltsearch.spec import DEVICE_PATTERN

    if not re.match(DEVICE_PATTERN, name):
        from sltsearch.errors import SpecError

        raise SpecError(f"device: '{name}' is not a device; allowed: auto, cpu, cuda, cuda:N, mps")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from sltsearch.errors import SpecError

        raise SpecError(
            f"train.device: '{name}' asked for, but no CUDA device is available; use 'auto' or 'cpu'"
        )
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
