"""The split container every dataset builder returns, and the loaders built from it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


@dataclass(frozen=True)
class DataSplits:
    """Train / validation / test datasets of one dataset, plus what a model needs to know about them.

    ``input_shape`` is the shape of one sample without batch (and without time for static data);
    ``time_steps`` is set for data that already carries a time axis (event frames), else None.
    """

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    input_shape: tuple[int, ...]
    num_classes: int
    time_steps: int | None = None


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays (train, val, test), stratified by label and fixed by ``seed``."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=labels)
    val_share = val_fraction / (1.0 - test_fraction)
    train, val = train_test_split(rest, test_size=val_share, random_state=seed + 1, stratify=labels[rest])
    return np.sort(train), np.sort(val), np.sort(test)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A deterministic loader: shuffling is driven by its own seeded generator, workers stay in-process."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0)
