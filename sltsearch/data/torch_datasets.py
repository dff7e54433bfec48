"""A user's own torch Datasets: ``sltsearch.run(spec, data=(train, val, test))``.

Each dataset yields ``(x, label)`` pairs. ``val`` or ``test`` may be None: that split is then carved from
train (stratified, fixed by ``data.split_seed``). One pass over every sample checks them (same sample
shape everywhere, finite inputs, integer labels in range, no empty split; `sltsearch.data.arrays` rules and
layouts) and hashes their content. The spec then names ``data: {name: python, options: {fingerprint: ...}}``,
so the frozen spec, the stage-cache keys and a resumed run all tell these datasets from any others.
The datasets live in this process: resume such a run from Python with the same datasets.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from sltsearch.data.arrays import SPLITS, carve_missing, check_inputs, check_labels, layout_of, shapes_for
from sltsearch.data.base import DataSplits
from sltsearch.errors import DataError

NAME = "python"
# fingerprint -> (train, val, test, options) registered by `register`
_REGISTERED: dict[str, tuple[Dataset, Dataset | None, Dataset | None, dict[str, Any]]] = {}


class _ModelView(Dataset):
    """A user's dataset as the models take it: float inputs (a channel axis added to L / HW samples), long labels."""

    def __init__(self, dataset: Dataset, layout: str) -> None:
        self.dataset = dataset
        self.layout = layout

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.dataset[i]
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()
        if self.layout in ("L", "HW"):
            x = x.unsqueeze(0)
        return x, torch.as_tensor(int(y), dtype=torch.long)


def _scan(dataset: Any, split: str, sha: Any) -> tuple[tuple[int, ...], np.ndarray]:
    """(sample shape, labels) of one dataset, every sample checked and hashed."""
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise DataError(
            f"data={split}: expected a torch Dataset (with __len__ and __getitem__), got {type(dataset).__name__}"
        )
    n = len(dataset)
    if n == 0:
        raise DataError(f"data={split}: the {split} dataset is empty")
    shape: tuple[int, ...] | None = None
    labels = np.empty(n, dtype=np.float64)
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise DataError(f"data={split}: item {i} is a {type(item).__name__}; each item must be a pair (x, label)")
        x = item[0].detach().cpu().numpy() if isinstance(item[0], torch.Tensor) else np.asarray(item[0])
        y = item[1].item() if isinstance(item[1], torch.Tensor) and item[1].numel() == 1 else item[1]
        if shape is None:
            shape = tuple(x.shape)
        elif tuple(x.shape) != shape:
            raise DataError(f"data={split}: item {i} has shape {list(x.shape)}, item 0 has {list(shape)}")
        check_inputs(x[None], f"data={split} item {i}")
        try:
            labels[i] = float(y)
        except (TypeError, ValueError):
            raise DataError(f"data={split}: item {i} has label {y!r}; labels must be integer class indices") from None
        sha.update(np.ascontiguousarray(x).tobytes() + str(y).encode())
    assert shape is not None
    return shape, labels


def register(
    train: Dataset, val: Dataset | None, test: Dataset | None, num_classes: int | None = None
) -> dict[str, Any]:
    """Check and hash the datasets; returns the ``data.options`` that name them (``fingerprint``)."""
    sha = hashlib.sha256()
    shapes: dict[str, tuple[int, ...]] = {}
    labels: dict[str, np.ndarray] = {}
    for split, ds in zip(SPLITS, (train, val, test), strict=True):
        if ds is None and split != "train":
            sha.update(f"<{split} carved>".encode())
            continue
        shapes[split], raw = _scan(ds, split, sha)
        labels[split] = check_labels(raw, f"data={split}", num_classes)
        if shapes[split] != shapes["train"]:
            raise DataError(
                f"data={split}: samples have shape {list(shapes[split])}, train's {list(shapes['train'])}; "
                f"every split needs the same sample shape"
            )
    classes = num_classes or int(max(int(v.max()) for v in labels.values())) + 1
    layout = layout_of(shapes["train"], {}, "data=train")
    fingerprint = sha.hexdigest()[:16]
    options = {"fingerprint": fingerprint, "num_classes": classes, "layout": layout}
    _REGISTERED[fingerprint] = (train, val, test, options)
    return options


def load_registered(val_fraction: float, test_fraction: float, seed: int, options: dict[str, Any]) -> DataSplits:
    """The registered datasets named by ``options.fingerprint``, missing splits carved from train."""
    fingerprint = str(options.get("fingerprint", ""))
    if fingerprint not in _REGISTERED:
        raise DataError(
            f"data.name: '{NAME}' names torch Datasets passed to sltsearch.run(spec, data=(train, val, test)) "
            f"in the same Python process; none with fingerprint '{fingerprint}' here. Pass them again, or save "
            f"them as a .npz and use data: {{name: arrays, path: ...}}"
        )
    train, val, test, meta = _REGISTERED[fingerprint]
    layout = meta["layout"]
    splits: dict[str, Dataset] = {"train": train}
    if val is None or test is None:
        y = np.asarray([int(train[i][1]) for i in range(len(train))], dtype=np.int64)  # type: ignore[arg-type]
        carved = carve_missing(y, val is not None, test is not None, val_fraction, test_fraction, seed)
        splits = {s: Subset(train, idx.tolist()) for s, idx in carved.items()}
    if val is not None:
        splits["val"] = val
    if test is not None:
        splits["test"] = test
    for split in SPLITS:
        if len(splits[split]) == 0:  # type: ignore[arg-type]
            raise DataError(f"data: the {split} split carved from the train dataset is empty; supply more samples")
    first = splits["train"][0][0]
    input_shape, time_steps = shapes_for(tuple(np.shape(first)), layout)
    return DataSplits(
        name=NAME,
        train=_ModelView(splits["train"], layout),
        val=_ModelView(splits["val"], layout),
        test=_ModelView(splits["test"], layout),
        input_shape=input_shape,
        num_classes=int(meta["num_classes"]),
        time_steps=time_steps,
    )
