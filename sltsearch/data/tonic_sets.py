"""Neuromorphic datasets through tonic (the `tonic` extra), read from a local ``data.root``, never downloaded.

``nmnist`` (N-MNIST, Orchard et al. 2015) and ``shd`` (Spiking Heidelberg Digits, Cramer et al. 2020) are
tonic's own dataset classes and readers in tonic's own layout, turned into event frames by tonic's own
transforms (``Downsample``, ``ToFrame`` with ``n_time_bins`` = ``frames``):

- ``nmnist``: ``<root>/NMNIST/Train/<digit>/*.bin`` and ``<root>/NMNIST/Test/<digit>/*.bin`` (train.zip and
  test.zip unpacked into ``<root>/NMNIST/``); frames [T, 2, 34, 34]. Options ``frames`` (default 10),
  ``first_saccade_only`` (default false), ``clip``.
- ``shd``: ``<root>/SHD/shd_train.h5`` and ``<root>/SHD/shd_test.h5`` (the .h5.zip files unzipped);
  frames [T, 1, channels] (1-D samples). Options ``frames`` (default 20), ``channels`` (700 input units
  downsampled by tonic, default 700), ``clip``.

tonic's classes download whatever they do not find; here they are subclassed so that ``download`` is an
error and existence is checked by sltsearch first, with a message saying which files to put where.
The validation split is carved from the official train set (stratified, fixed by ``seed``); the official
test set is the test split. ``DataSplits.time_steps`` = ``frames``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sltsearch.data.base import DataSplits
from sltsearch.data.images import val_split
from sltsearch.errors import DataError

NMNIST_SENSOR = (34, 34, 2)
SHD_UNITS = 700
_NMNIST_OPTIONS = {"frames", "first_saccade_only", "clip"}
_SHD_OPTIONS = {"frames", "channels", "clip"}


def _tonic() -> Any:
    try:
        import tonic
    except ImportError:
        raise DataError(
            "data.name: N-MNIST and SHD are read with tonic; install the extra: pip install 'sltsearch[tonic]'"
        ) from None
    return tonic


def _never_download(self: Any) -> None:
    raise DataError(f"data.root: {self.location_on_system} is incomplete; sltsearch never downloads datasets")


class TonicFrames(Dataset):
    """A tonic dataset's events as float frames [T, C, ...] (tonic's ``ToFrame``), with integer labels."""

    def __init__(self, events: Any, indices: np.ndarray, labels: np.ndarray, to_frames: Any, shape: tuple[int, ...],
                 clip: float | None) -> None:
        self.events = events
        self.indices = indices
        self.labels = torch.as_tensor(labels[indices], dtype=torch.long)
        self.to_frames = to_frames
        self.shape = shape
        self.clip = clip

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        events, _ = self.events[int(self.indices[i])]
        if len(events):
            frames = torch.as_tensor(np.asarray(self.to_frames(events), dtype=np.float32)).reshape(self.shape)
        else:  # tonic's ToFrame gives an odd shape for a sample without events
            frames = torch.zeros(self.shape)
        if self.clip is not None:
            frames = frames.clamp(max=self.clip)
        return frames, self.labels[i]


def _check_options(options: dict[str, Any], allowed: set[str], name: str) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise DataError(f"data.options: unknown {name} option(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _frames_option(options: dict[str, Any], default: int) -> int:
    frames = int(options.get("frames", default))
    if frames < 1:
        raise DataError(f"data.options.frames: must be at least 1, got {frames}")
    return frames


def _splits(
    name: str,
    train: Any,
    test: Any,
    train_labels: np.ndarray,
    test_labels: np.ndarray,
    to_frames: Any,
    shape: tuple[int, ...],
    clip: float | None,
    val_fraction: float,
    seed: int,
    num_classes: int,
) -> DataSplits:
    tr, va = val_split(train_labels, val_fraction, seed)
    return DataSplits(
        name=name,
        train=TonicFrames(train, tr, train_labels, to_frames, shape, clip),
        val=TonicFrames(train, va, train_labels, to_frames, shape, clip),
        test=TonicFrames(test, np.arange(len(test_labels)), test_labels, to_frames, shape, clip),
        input_shape=shape[1:],
        num_classes=num_classes,
        time_steps=shape[0],
    )


def load_nmnist(
    root: str | Path, val_fraction: float, test_fraction: float, seed: int, options: dict[str, Any]
) -> DataSplits:
    """N-MNIST from tonic's layout under ``root`` (see the module docstring)."""
    _check_options(options, _NMNIST_OPTIONS, "nmnist")
    frames = _frames_option(options, 10)
    base = Path(root).expanduser() / "NMNIST"
    for folder in ("Train", "Test"):
        if not any((base / folder).glob("*/*.bin")):
            raise DataError(
                f"data.root: N-MNIST expected {base / folder}/<digit>/*.bin; unzip N-MNIST's train.zip and "
                f"test.zip (Orchard et al., the files tonic.datasets.NMNIST uses) into {base}/ so that Train/ and "
                f"Test/ sit there"
            )
    tonic = _tonic()

    class NMNIST(tonic.datasets.NMNIST):  # the class name is tonic's folder name: keep it
        download = _never_download

        def _check_exists(self) -> bool:
            return True  # checked above with a message naming the files

    first = bool(options.get("first_saccade_only", False))
    train = NMNIST(str(Path(root).expanduser()), train=True, first_saccade_only=first)
    test = NMNIST(str(Path(root).expanduser()), train=False, first_saccade_only=first)
    to_frames = tonic.transforms.ToFrame(sensor_size=NMNIST_SENSOR, n_time_bins=frames)
    shape = (frames, NMNIST_SENSOR[2], NMNIST_SENSOR[1], NMNIST_SENSOR[0])
    clip = None if options.get("clip") is None else float(options["clip"])
    return _splits("nmnist", train, test, np.asarray(train.targets), np.asarray(test.targets), to_frames, shape,
                   clip, val_fraction, seed, 10)


def load_shd(
    root: str | Path, val_fraction: float, test_fraction: float, seed: int, options: dict[str, Any]
) -> DataSplits:
    """Spiking Heidelberg Digits from tonic's layout under ``root`` (see the module docstring)."""
    import h5py

    _check_options(options, _SHD_OPTIONS, "shd")
    frames = _frames_option(options, 20)
    channels = int(options.get("channels", SHD_UNITS))
    if not 1 <= channels <= SHD_UNITS:
        raise DataError(f"data.options.channels: must be in 1..{SHD_UNITS}, got {channels}")
    base = Path(root).expanduser() / "SHD"
    for file in ("shd_train.h5", "shd_test.h5"):
        if not (base / file).is_file():
            raise DataError(
                f"data.root: SHD expected {base / file}; unzip shd_train.h5.zip and shd_test.h5.zip (the Spiking "
                f"Heidelberg Digits release, the files tonic.datasets.SHD uses) into {base}/"
            )
    labels = {}
    for split in ("train", "test"):
        try:
            with h5py.File(base / f"shd_{split}.h5", "r") as f:
                labels[split] = np.asarray(f["labels"][()], dtype=np.int64)
        except (OSError, KeyError) as err:
            raise DataError(f"data.root: {base / f'shd_{split}.h5'} is not an SHD file ({err})") from None
    tonic = _tonic()

    class SHD(tonic.datasets.SHD):  # the class name is tonic's folder name: keep it
        download = _never_download

        def _check_exists(self) -> bool:
            return True

    train = SHD(str(Path(root).expanduser()), train=True)
    test = SHD(str(Path(root).expanduser()), train=False)
    steps = []
    if channels != SHD_UNITS:
        steps.append(tonic.transforms.Downsample(spatial_factor=channels / SHD_UNITS))
    steps.append(tonic.transforms.ToFrame(sensor_size=(channels, 1, 1), n_time_bins=frames))
    to_frames = tonic.transforms.Compose(steps)
    clip = None if options.get("clip") is None else float(options["clip"])
    classes = max(20, int(max(labels["train"].max(), labels["test"].max())) + 1)
    return _splits("shd", train, test, labels["train"], labels["test"], to_frames, (frames, 1, channels), clip,
                   val_fraction, seed, classes)
