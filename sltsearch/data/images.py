"""Image sets read from torchvision's on-disk formats under a local root: CIFAR-10/100, MNIST, Fashion-MNIST.

Nothing is downloaded. Expected layouts (what ``torchvision.datasets.*(root, download=True)`` leaves):

- ``cifar10``:  ``<root>/cifar-10-batches-py/{data_batch_1..5, test_batch}``
- ``cifar100``: ``<root>/cifar-100-python/{train, test}``
- ``mnist``:    ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``
- ``fashion_mnist``: the same under ``<root>/FashionMNIST/raw/``

MNIST-style sets are read with torchvision's own idx readers. CIFAR batches are Python pickles; they are
read here (not through ``torchvision.datasets.CIFAR10``, whose md5 check rejects anything but the
official files) with an unpickler that only admits the numpy array types the format uses, so a
tampered file cannot run code.

Pixels are scaled to [0, 1] (no mean/std normalisation: the first BatchNorm absorbs it and the rate
encoder needs probabilities). The validation split is carved from the official train set, stratified
and fixed by ``seed``; the official test set is the test split (``test_fraction`` is ignored).
Option ``augment`` (default: on for CIFAR, off for MNIST-style): random 4-pixel-padded crop and
horizontal flip on the train split only. Option ``train_limit``: keep only that many train samples.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sltsearch.data.base import DataSplits
from sltsearch.errors import DataError

_OPTIONS = {"augment", "train_limit"}


class ImageTensorDataset(Dataset):
    """uint8 images [N, C, H, W] kept as uint8 (4x less memory), returned as float in [0, 1]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: bool = False) -> None:
        self.images = images
        self.labels = labels
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[i].float().div_(255.0)
        if self.augment:
            x = random_crop_flip(x)
        return x, self.labels[i]


def random_crop_flip(x: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Standard CIFAR augmentation on one [C, H, W] image: zero-pad by ``pad``, random crop, random h-flip."""
    _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    top, left = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
    out = padded[:, top : top + h, left : left + w]
    if bool(torch.rand(()) < 0.5):
        out = out.flip(-1)
    return out.contiguous()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"data.root: expected CIFAR batch file {path} (torchvision's python format)")
    try:
        with path.open("rb") as f:
            entry = _NumpyOnlyUnpickler(f, encoding="latin1").load()
        data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as err:
        raise DataError(f"data.root: {path} is not a CIFAR python batch ({err})") from None
    if len(data) != len(labels):
        raise DataError(f"data.root: {path} holds {len(data)} images but {len(labels)} labels")
    return data, labels


def _cifar(root: Path, hundred: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    if not folder.is_dir():
        raise DataError(f"data.root: expected folder {folder} (torchvision's extracted CIFAR archive)")
    if hundred:
        xtr, ytr = _read_cifar_batch(folder / "train", "fine_labels")
        xte, yte = _read_cifar_batch(folder / "test", "fine_labels")
    else:
        parts = [_read_cifar_batch(folder / f"data_batch_{i}", "labels") for i in range(1, 6)]
        xtr, ytr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        xte, yte = _read_cifar_batch(folder / "test_batch", "labels")
    return xtr, ytr, xte, yte


def _mnist_like(root: Path, folder_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from torchvision.datasets.mnist import read_image_file, read_label_file

    raw = root / folder_name / "raw"
    arrays = []
    for split in ("train", "t10k"):
        for kind, reader in (("images-idx3", read_image_file), ("labels-idx1", read_label_file)):
            path = raw / f"{split}-{kind}-ubyte"
            if not path.is_file():
                raise DataError(f"data.root: expected idx file {path} (torchvision's {folder_name} raw layout)")
            try:
                arrays.append(reader(str(path)).numpy())
            except Exception as err:  # torchvision raises AssertionError/RuntimeError on bad headers
                raise DataError(f"data.root: {path} is not a valid idx file ({err})") from None
    xtr, ytr, xte, yte = arrays
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise DataError(f"data.root: image and label counts differ in {raw}")
    return xtr[:, None], ytr.astype(np.int64), xte[:, None], yte.astype(np.int64)


def val_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) index arrays carved from an official train set: stratified by label when every class
    can be split (always on the real sets), plain random otherwise; fixed by ``seed``."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    try:
        train, val = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=labels)
    except ValueError:  # a class with a single sample, or fewer val samples than classes (tiny subsets)
        train, val = train_test_split(idx, test_size=val_fraction, random_state=seed)
    return np.sort(train), np.sort(val)


def _splits(
    name: str,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    num_classes: int,
    val_fraction: float,
    seed: int,
    options: dict[str, Any],
    augment_default: bool,
) -> DataSplits:
    unknown = set(options) - _OPTIONS
    if unknown:
        raise DataError(f"data.options: unknown {name} option(s) {sorted(unknown)}; allowed: {sorted(_OPTIONS)}")
    xtr, ytr, xte, yte = arrays
    if ytr.size and (ytr.min() < 0 or max(ytr.max(), yte.max(initial=0)) >= num_classes):
        raise DataError(f"data.root: {name} labels must lie in [0, {num_classes}), got {ytr.min()}..{ytr.max()}")
    tr, va = val_split(ytr, val_fraction, seed)
    limit = options.get("train_limit")
    if limit is not None:
        tr = tr[: int(limit)]
    x, y = torch.from_numpy(np.ascontiguousarray(xtr)), torch.from_numpy(ytr)
    augment = bool(options.get("augment", augment_default))
    return DataSplits(
        name=name,
        train=ImageTensorDataset(x[tr], y[tr], augment=augment),
        val=ImageTensorDataset(x[va], y[va]),
        test=ImageTensorDataset(torch.from_numpy(np.ascontiguousarray(xte)), torch.from_numpy(yte)),
        input_shape=tuple(xtr.shape[1:]),
        num_classes=num_classes,
    )


def _root(root: str | Path) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"data.root: folder {path} does not exist")
    return path


def load_cifar10(root, val_fraction, test_fraction, seed, options) -> DataSplits:  # noqa: ANN001
    return _splits("cifar10", _cifar(_root(root), False), 10, val_fraction, seed, options, True)


def load_cifar100(root, val_fraction, test_fraction, seed, options) -> DataSplits:  # noqa: ANN001
    return _splits("cifar100", _cifar(_root(root), True), 100, val_fraction, seed, options, True)


def load_mnist(root, val_fraction, test_fraction, seed, options) -> DataSplits:  # noqa: ANN001
    return _splits("mnist", _mnist_like(_root(root), "MNIST"), 10, val_fraction, seed, options, False)


def load_fashion_mnist(root, val_fraction, test_fraction, seed, options) -> DataSplits:  # noqa: ANN001
    return _splits("fashion_mnist", _mnist_like(_root(root), "FashionMNIST"), 10, val_fraction, seed, options, False)
