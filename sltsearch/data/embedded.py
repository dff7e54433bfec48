"""Datasets that ship with installed packages: scikit-learn's 8x8 digits and locally generated MNIST-1D."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from sltsearch.data.base import DataSplits, stratified_split
from sltsearch.errors import DataError


def _to_splits(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> DataSplits:
    tr, va, te = stratified_split(y, val_fraction, test_fraction, seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    return DataSplits(
        name=name,
        train=TensorDataset(xt[tr], yt[tr]),
        val=TensorDataset(xt[va], yt[va]),
        test=TensorDataset(xt[te], yt[te]),
        input_shape=tuple(x.shape[1:]),
        num_classes=num_classes,
    )


def load_digits_splits(
    val_fraction: float, test_fraction: float, seed: int, options: dict[str, Any]
) -> DataSplits:
    """scikit-learn's 1,797 8x8 digit images, scaled to [0, 1], shape (1, 8, 8)."""
    from sklearn.datasets import load_digits

    if options:
        raise DataError(f"data.options: digits takes no options, got {sorted(options)}")
    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    return _to_splits("digits", x, bunch.target.astype(np.int64), 10, val_fraction, test_fraction, seed)


_MNIST1D_OPTIONS = {"num_samples", "noise_scale", "seed"}


def load_mnist1d_splits(
    val_fraction: float, test_fraction: float, seed: int, options: dict[str, Any]
) -> DataSplits:
    """MNIST-1D generated locally from the package's built-in templates (never its download path).

    Options: ``num_samples`` (default 5000), ``noise_scale``, ``seed`` (generation seed, default 42).
    Shape (1, 40): one channel, 40 positions.
    """
    unknown = set(options) - _MNIST1D_OPTIONS
    if unknown:
        raise DataError(
            f"data.options: unknown mnist1d option(s) {sorted(unknown)}; allowed: {sorted(_MNIST1D_OPTIONS)}"
        )
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = int(options.get("num_samples", 5000))
    args.seed = int(options.get("seed", 42))
    if "noise_scale" in options:
        args.corr_noise_scale = float(options["noise_scale"])
        args.iid_noise_scale = float(options["noise_scale"]) / 10.0
    data = make_dataset(args)
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)[:, None, :]
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    return _to_splits("mnist1d", x, y, 10, val_fraction, test_fraction, seed)
