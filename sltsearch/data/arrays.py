"""A user's own labelled arrays: ``data: {name: arrays, path: data.npz}``.

The .npz file holds ``x_train``, ``y_train`` and optionally ``x_val``/``y_val`` and ``x_test``/``y_test``
(``numpy.savez(path, x_train=..., y_train=...)``). Splits that are missing are carved from the train arrays,
stratified by label and fixed by ``data.split_seed`` (``val_fraction`` / ``test_fraction`` of it).
Labels are class indices [N]; ``options.num_classes`` fixes the class count (default: largest label + 1).

One sample's layout (``options.layout``; ``auto`` by its number of dimensions):
``L`` (1-D signal/features, given one channel), ``HW`` (an image, given one channel), ``CL``, ``CHW`` (as is),
``TCL`` / ``TCHW`` (event frames: time first; ``DataSplits.time_steps`` = T, so the frames encoder feeds
them to the network step by step). auto: 1-D = L, 2-D = HW, 3-D = CHW, 4-D = TCHW.

Every problem is one `DataError` line found when the data is loaded, before the first trial: a missing or
unreadable file, unknown keys, an x without its y, mismatched lengths, empty splits, NaN or infinite
inputs, non-integer or out-of-range labels, samples of different shapes across splits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from sltsearch.data.base import DataSplits
from sltsearch.errors import DataError

SPLITS = ("train", "val", "test")
LAYOUTS = {"L": 1, "HW": 2, "CL": 2, "CHW": 3, "TCL": 3, "TCHW": 4}
_AUTO = {1: "L", 2: "HW", 3: "CHW", 4: "TCHW"}
_OPTIONS = {"num_classes", "layout"}


def layout_of(sample_shape: tuple[int, ...], options: dict[str, Any], where: str) -> str:
    """The sample layout named by ``options.layout`` (checked against the shape) or guessed from it."""
    layout = str(options.get("layout", "auto"))
    if layout == "auto":
        if len(sample_shape) not in _AUTO:
            raise DataError(
                f"{where}: samples of shape {list(sample_shape)} have {len(sample_shape)} dimensions; "
                f"supported: 1 (L), 2 (HW), 3 (CHW), 4 (TCHW event frames)"
            )
        return _AUTO[len(sample_shape)]
    if layout not in LAYOUTS:
        raise DataError(f"data.options.layout: '{layout}' not allowed; allowed: auto, {', '.join(LAYOUTS)}")
    if LAYOUTS[layout] != len(sample_shape):
        raise DataError(
            f"data.options.layout: {layout} needs {LAYOUTS[layout]}-D samples, {where} has {list(sample_shape)}"
        )
    return layout


def model_view(x: torch.Tensor, layout: str) -> torch.Tensor:
    """Samples [N, ...] as the models take them: a channel axis added to L and HW samples."""
    return x.unsqueeze(1) if layout in ("L", "HW") else x


def shapes_for(sample_shape: tuple[int, ...], layout: str) -> tuple[tuple[int, ...], int | None]:
    """(input_shape without time, time_steps or None) of samples with this shape and layout."""
    if layout in ("L", "HW"):
        return (1, *sample_shape), None
    if layout.startswith("T"):
        return tuple(sample_shape[1:]), int(sample_shape[0])
    return tuple(sample_shape), None


def check_labels(y: np.ndarray, name: str, num_classes: int | None) -> np.ndarray:
    """Integer class indices [N] in range, or a `DataError` naming the split and the first bad label."""
    if y.ndim != 1:
        raise DataError(f"{name}: labels must be class indices of shape [N], got shape {list(y.shape)}")
    integral = np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)
    whole_floats = np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y))
    if not (integral or whole_floats):
        raise DataError(f"{name}: labels must be integer class indices, got dtype {y.dtype} with non-integers")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise DataError(f"{name}: label {int(y.min())} is negative; labels are class indices 0..C-1")
    if num_classes is not None and len(y) and y.max() >= num_classes:
        raise DataError(
            f"{name}: label {int(y.max())} is out of range for num_classes {num_classes} (labels 0..{num_classes - 1})"
        )
    return y


def check_inputs(x: np.ndarray, name: str) -> None:
    if not (np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.bool_)):
        raise DataError(f"{name}: inputs must be numeric, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x.reshape(len(x), -1))
        if bad.any():
            first = int(np.argmax(bad.any(axis=1)))
            raise DataError(
                f"{name}: {int(bad.sum())} NaN or infinite input values (first in sample {first}); clean or impute them"
            )


def carve(y: np.ndarray, fraction: float, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(kept, carved) index arrays: ``fraction`` of the samples, stratified by label, fixed by ``seed``."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    try:
        kept, carved = train_test_split(idx, test_size=fraction, random_state=seed, stratify=y)
    except ValueError as err:
        raise DataError(
            f"data: cannot carve a stratified {what} split ({fraction:g} of {len(y)} train samples): "
            f"{' '.join(str(err).split())}; supply x_{what}/y_{what} or more samples per class"
        ) from None
    return np.sort(kept), np.sort(carved)


def carve_missing(
    y_train: np.ndarray, has_val: bool, has_test: bool, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Index arrays into the train samples for train and every split the user did not supply."""
    out: dict[str, np.ndarray] = {}
    keep = np.arange(len(y_train))
    if not has_test:
        kept, out["test"] = carve(y_train, test_fraction, seed, "test")
        keep = kept
    if not has_val:
        share = val_fraction / (1.0 - test_fraction) if not has_test else val_fraction
        kept, carved = carve(y_train[keep], share, seed + 1, "val")
        out["val"] = keep[carved]
        keep = keep[kept]
    out["train"] = keep
    return out


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    allowed = {f"{k}_{s}" for k in ("x", "y") for s in SPLITS}
    try:
        with np.load(path, allow_pickle=False) as f:
            unknown = sorted(set(f.files) - allowed)
            if unknown:
                raise DataError(f"data.path: {path} holds unknown arrays {unknown}; allowed: {sorted(allowed)}")
            return {k: f[k] for k in f.files}
    except DataError:
        raise
    except Exception as err:
        raise DataError(
            f"data.path: {path} is not a readable .npz of numeric arrays ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:200]})"
        ) from None


def load_arrays(
    path: str | None, val_fraction: float, test_fraction: float, seed: int, options: dict[str, Any]
) -> DataSplits:
    """The splits of a user's .npz file (see the module docstring)."""
    unknown = set(options) - _OPTIONS
    if unknown:
        raise DataError(f"data.options: unknown arrays option(s) {sorted(unknown)}; allowed: {sorted(_OPTIONS)}")
    if not path:
        raise DataError("data.path: dataset 'arrays' reads a .npz file; set data.path to it")
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(
            f"data.path: {file} not found; write it with numpy.savez('{file}', x_train=..., y_train=...) "
            f"(optional x_val, y_val, x_test, y_test)"
        )
    arrays = _read_npz(file)
    for need in ("x_train", "y_train"):
        if need not in arrays:
            raise DataError(f"data.path: {file} has no '{need}'; it needs x_train and y_train")
    present = [s for s in SPLITS if f"x_{s}" in arrays or f"y_{s}" in arrays]
    for split in present:
        for a, b in (("x", "y"), ("y", "x")):
            if f"{a}_{split}" in arrays and f"{b}_{split}" not in arrays:
                raise DataError(f"data.path: {file} has {a}_{split} but no {b}_{split}")
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim == 0 or len(x) != len(y):
            raise DataError(
                f"data.path: x_{split} has {len(x) if x.ndim else 0} samples but y_{split} has {len(y)}; "
                f"they must match"
            )
        if len(x) == 0:
            raise DataError(f"data.path: the {split} split is empty (x_{split} has 0 samples)")
        check_inputs(x, f"x_{split}")
    num_classes = options.get("num_classes")
    num_classes = None if num_classes is None else int(num_classes)
    labels = {s: check_labels(arrays[f"y_{s}"], f"y_{s}", num_classes) for s in present}
    sample_shape = tuple(arrays["x_train"].shape[1:])
    for split in present:
        if tuple(arrays[f"x_{split}"].shape[1:]) != sample_shape:
            raise DataError(
                f"data.path: x_{split} samples have shape {list(arrays[f'x_{split}'].shape[1:])}, x_train's "
                f"{list(sample_shape)}; every split needs the same sample shape"
            )
    layout = layout_of(sample_shape, options, "x_train")
    classes = num_classes or int(max(int(v.max()) for v in labels.values())) + 1
    xs = {s: model_view(torch.as_tensor(arrays[f"x_{s}"]).float(), layout) for s in present}
    ys = {s: torch.as_tensor(labels[s]) for s in present}
    carved = carve_missing(labels["train"], "val" in present, "test" in present, val_fraction, test_fraction, seed)
    x_tr, y_tr = xs["train"], ys["train"]
    for split, idx in carved.items():
        index = torch.as_tensor(idx)
        xs[split], ys[split] = x_tr[index], y_tr[index]
    for split in SPLITS:
        if len(ys[split]) == 0:
            raise DataError(f"data: the {split} split carved from x_train is empty; supply more samples")
    input_shape, time_steps = shapes_for(sample_shape, layout)
    return DataSplits(
        name="arrays",
        train=TensorDataset(xs["train"], ys["train"]),
        val=TensorDataset(xs["val"], ys["val"]),
        test=TensorDataset(xs["test"], ys["test"]),
        input_shape=input_shape,
        num_classes=classes,
        time_steps=time_steps,
    )
