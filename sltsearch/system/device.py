"""Device choice and seeding, in one place so every stage is reproducible."""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Iterator

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; an explicit CUDA request without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from sltsearch.spec.schema import DEVICE_PATTERN

    if not re.match(DEVICE_PATTERN, name):
        from sltsearch.errors import SpecError

        raise SpecError(f"device: '{name}' is not a device; allowed: auto, cpu, cuda, cuda:N, mps")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from sltsearch.errors import SpecError

        raise SpecError(f"train.device: '{name}' asked for, but no CUDA device is available; use 'auto' or 'cpu'")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@contextlib.contextmanager
def full_precision(device: torch.device | str) -> Iterator[None]:
    """IEEE FP32 for convolutions and matrix products on CUDA (no TF32), restored afterwards.

    Why: a ticket's numbers (accuracy, firing, operation counts) are measured in full FP32 so that a ticket
    measured on a GPU re-measures to the same numbers on the CPU (and the other way round): TF32 rounds the
    inputs of every product to 10 mantissa bits, which moves membrane potentials by ~1e-3 and flips spikes.
    Training keeps mixed precision (`sltsearch.train.autocast`); only measurement runs here.
    """
    if torch.device(device).type != "cuda":
        yield
        return
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    if not hasattr(conv, "fp32_precision"):  # torch < 2.9: the older switches
        saved_flags = (torch.backends.cudnn.allow_tf32, matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = saved_flags
        return
    saved = (conv.fp32_precision, matmul.fp32_precision)
    conv.fp32_precision = matmul.fp32_precision = "ieee"
    try:
        yield
    finally:
        conv.fp32_precision, matmul.fp32_precision = saved
