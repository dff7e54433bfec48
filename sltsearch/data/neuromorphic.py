"""DVS128 Gesture as event frames [T, 2, H, W], read from spikingjelly-style frame folders.

Layouts under ``data.root``, looked for in this order (nothing is ever downloaded):

1. ``frames_number_<T>_split_by_<S>/{train,test}/<label>/<sample>.npz`` (key ``frames``: [T, 2, 128, 128]),
   what ``spikingjelly.datasets.dvs128_gesture.DVS128Gesture(root, data_type="frame", frames_number=T,
   split_by=S)`` writes, and what the conversion below writes. Read as is.
2. ``events_np/{train,test}/<label>/*.npz`` (keys ``t``, ``x``, ``y``, ``p``): spikingjelly's split events.
3. ``DvsGesture/``, ``download/DvsGesture/`` or ``extract/DvsGesture/``: the original release extracted by
   hand (``user*_*.aedat`` in AEDAT 3.1, ``user*_*_labels.csv``, ``trials_to_train.txt``,
   ``trials_to_test.txt``). A ``DvsGesture.tar.gz`` that is not extracted is reported, not unpacked.

With 2 or 3 only, the events are integrated into layout 1 once, by our own numpy reader and integrator
(`sltsearch.data.dvs_events`, spikingjelly 2.0's conventions; spikingjelly's ``datasets`` package itself is
not imported: it needs torchaudio and torchvision). The folder is written under a temporary name and renamed
when complete; progress goes to stderr. A ``frames_number_*.building`` marker left by an interrupted
spikingjelly conversion is refused with the fix.

Labels are the integer folder names (0..10), not the lexicographic folder order.
The validation split is carved from the official train set (stratified, fixed by ``seed``); the
official test set is the test split (``test_fraction`` is ignored). Samples load lazily, one file per
item. Options: ``frames`` (T, default 16), ``split_by`` (``number``: equal event counts per frame, the
last frame takes the remainder | ``time``: equal durations; default ``number``),
``size`` (spatial side after sum-pooling the 128x128 frames, default 32; must divide the stored
side), ``clip`` (clip event counts to this value, default none; 1 gives binary frames).
``DataSplits.time_steps`` is set to T, so `build_model(..., frames=True)` uses the frames encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from sltsearch.data import dvs_events
from sltsearch.data.base import DataSplits
from sltsearch.data.images import val_split
from sltsearch.errors import DataError

_OPTIONS = {"frames", "split_by", "size", "clip"}


class FrameFolderDataset(Dataset):
    """One ``.npz`` file per sample; returns float frames [T, C, size, size] and the label."""

    def __init__(self, files: list[Path], labels: np.ndarray, size: int | None, clip: float | None) -> None:
        self.files = files
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.size = size
        self.clip = clip

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(_load_frames(self.files[i]))
        if self.size is not None and x.shape[-1] != self.size:
            k = x.shape[-1] // self.size
            x = F.avg_pool2d(x, k) * (k * k)  # sum-pooling: event counts per block
        if self.clip is not None:
            x = x.clamp(max=self.clip)
        return x, self.labels[i]


def _load_frames(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as f:
            return f["frames"].astype(np.float32)
    except (OSError, KeyError, ValueError) as err:
        raise DataError(f"data.root: {path} is not a frames .npz (key 'frames') ({err})") from None


def _scan(split_root: Path) -> tuple[list[Path], np.ndarray]:
    if not split_root.is_dir():
        raise DataError(f"data.root: expected folder {split_root} (spikingjelly frame layout <split>/<label>/*.npz)")
    class_dirs = [d for d in split_root.iterdir() if d.is_dir()]
    if not class_dirs:
        raise DataError(f"data.root: expected label folders (0..10) with .npz frames inside {split_root}")
    numeric = all(d.name.isdigit() for d in class_dirs)
    ordered = sorted(class_dirs, key=lambda d: int(d.name) if numeric else d.name)
    files: list[Path] = []
    labels: list[int] = []
    for idx, d in enumerate(ordered):
        label = int(d.name) if numeric else idx
        for f in sorted(d.glob("*.npz")):
            files.append(f)
            labels.append(label)
    if not files:
        raise DataError(f"data.root: no .npz frame files found under {split_root}")
    return files, np.asarray(labels, dtype=np.int64)


def load_dvs128_gesture(
    root: str | Path, val_fraction: float, test_fraction: float, seed: int, options: dict[str, Any]
) -> DataSplits:
    unknown = set(options) - _OPTIONS
    if unknown:
        raise DataError(
            f"data.options: unknown dvs128_gesture option(s) {sorted(unknown)}; allowed: {sorted(_OPTIONS)}"
        )
    frames = int(options.get("frames", 16))
    split_by = str(options.get("split_by", "number"))
    if split_by not in ("number", "time"):
        raise DataError(f"data.options.split_by: '{split_by}' not allowed; allowed: number, time")
    size = options.get("size", 32)
    size = None if size is None else int(size)
    clip = options.get("clip")
    clip = None if clip is None else float(clip)
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"data.root: folder {base} does not exist")
    folder = base / f"frames_number_{frames}_split_by_{split_by}"
    marker = folder.with_name(folder.name + ".building")
    if marker.exists():
        raise DataError(
            f"data.root: found {marker}: spikingjelly's conversion into {folder} was interrupted; remove both and retry"
        )
    if not folder.is_dir():
        source = dvs_events.find_raw_source(base)
        if source is None:
            raise DataError(
                f"data.root: expected folder {folder} (spikingjelly DVS128Gesture frames), {base / 'events_np'}"
                f" (spikingjelly events) or the extracted DvsGesture/ folder (user*_*.aedat, *_labels.csv,"
                f" trials_to_train.txt, trials_to_test.txt) in {base} or {base / 'download'}"
            )
        dvs_events.convert_to_frames(source, folder, frames, split_by)
    train_files, train_labels = _scan(folder / "train")
    test_files, test_labels = _scan(folder / "test")
    first = _load_frames(train_files[0])
    if first.ndim != 4 or first.shape[0] != frames:
        raise DataError(
            f"data.root: {train_files[0]} holds frames of shape {first.shape}; expected [{frames}, C, H, W]"
        )
    side = first.shape[-1]
    if size is not None and (size > side or side % size):
        raise DataError(f"data.options.size: {size} must divide the stored frame side {side}")
    tr, va = val_split(train_labels, val_fraction, seed)
    out_side = size or side
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    return DataSplits(
        name="dvs128_gesture",
        train=FrameFolderDataset([train_files[i] for i in tr], train_labels[tr], size, clip),
        val=FrameFolderDataset([train_files[i] for i in va], train_labels[va], size, clip),
        test=FrameFolderDataset(test_files, test_labels, size, clip),
        input_shape=(int(first.shape[1]), out_side, out_side),
        num_classes=max(num_classes, 11),
        time_steps=frames,
    )
