"""On-disk datasets: tiny files written in each real format (CIFAR pickles, MNIST idx, spikingjelly frames)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from sltsearch.data import build_data
from sltsearch.data.images import random_crop_flip
from sltsearch.errors import DataError
from sltsearch.models import build_model
from sltsearch.spec import DataSpec, ModelSpec

RNG = np.random.default_rng(0)


def _write_cifar10(root: Path, n_train: int = 20, n_test: int = 10) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        data = RNG.integers(0, 256, (n_train, 3072), dtype=np.uint8)
        batch = {"batch_label": f"batch {i}", "labels": [j % 10 for j in range(n_train)], "data": data}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    test = {"labels": [j % 10 for j in range(n_test)], "data": RNG.integers(0, 256, (n_test, 3072), dtype=np.uint8)}
    (folder / "test_batch").write_bytes(pickle.dumps(test))


def _write_cifar100(root: Path) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, n in (("train", 400), ("test", 50)):
        entry = {"fine_labels": [j % 100 for j in range(n)], "coarse_labels": [0] * n}
        entry["data"] = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
        (folder / split).write_bytes(pickle.dumps(entry))


def _write_idx(root: Path, folder: str, n_train: int = 40, n_test: int = 10) -> None:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        (raw / f"{split}-images-idx3-ubyte").write_bytes(struct.pack(">iiii", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">ii", 2049, n) + labels.tobytes())


def _write_gesture_frames(root: Path, frames: int = 4, side: int = 16) -> None:
    base = root / f"frames_number_{frames}_split_by_number"
    for split, per_class in (("train", 3), ("test", 1)):
        for label in range(11):
            d = base / split / str(label)
            d.mkdir(parents=True)
            for k in range(per_class):
                x = RNG.integers(0, 3, (frames, 2, side, side)).astype(np.float32)
                np.savez_compressed(d / f"s{k}.npz", frames=x)


def test_cifar10_splits_shapes_and_augmentation(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    splits = build_data(DataSpec(name="cifar10", root=str(tmp_path), val_fraction=0.2))
    assert splits.input_shape == (3, 32, 32) and splits.num_classes == 10
    assert (len(splits.train), len(splits.val), len(splits.test)) == (80, 20, 10)
    x, y = splits.val[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
    assert splits.train.augment and not splits.val.augment and not splits.test.augment
    again = build_data(DataSpec(name="cifar10", root=str(tmp_path), val_fraction=0.2))
    assert torch.equal(splits.val.images, again.val.images)  # split fixed by seed
    other = build_data(DataSpec(name="cifar10", root=str(tmp_path), val_fraction=0.2, split_seed=1))
    assert not torch.equal(splits.val.images, other.val.images)


def test_cifar100_reads_fine_labels(tmp_path: Path) -> None:
    _write_cifar100(tmp_path)
    splits = build_data(DataSpec(name="cifar100", root=str(tmp_path), options={"augment": False}))
    assert splits.num_classes == 100 and len(splits.test) == 50
    assert not splits.train.augment
    assert int(splits.test[99 % 50][1]) == 49


def test_random_crop_flip_keeps_shape_and_content() -> None:
    x = torch.rand(3, 32, 32)
    torch.manual_seed(0)
    outs = [random_crop_flip(x) for _ in range(8)]
    assert all(o.shape == x.shape for o in outs)
    assert any(not torch.equal(o, x) for o in outs)


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_like_idx_files(tmp_path: Path, name: str, folder: str) -> None:
    _write_idx(tmp_path, folder)
    splits = build_data(DataSpec(name=name, root=str(tmp_path), val_fraction=0.25, options={"train_limit": 20}))
    assert splits.input_shape == (1, 28, 28)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (20, 10, 10)
    x, y = splits.test[3]
    assert x.shape == (1, 28, 28) and int(y) == 3
    model = build_model(ModelSpec(name="spiking_vgg", preset="tiny", time_steps=2), splits.input_shape, 10)
    assert model(torch.stack([splits.train[i][0] for i in range(2)])).shape == (2, 10)


def test_gesture_frames_folder(tmp_path: Path) -> None:
    _write_gesture_frames(tmp_path)
    spec = DataSpec(name="dvs128_gesture", root=str(tmp_path), val_fraction=0.33, options={"frames": 4, "size": 8})
    splits = build_data(spec)
    assert splits.time_steps == 4 and splits.input_shape == (2, 8, 8) and splits.num_classes == 11
    assert (len(splits.train), len(splits.val), len(splits.test)) == (22, 11, 11)
    for i in range(len(splits.test)):
        x, y = splits.test[i]
        assert x.shape == (4, 2, 8, 8)
    ys = sorted(int(splits.test[i][1]) for i in range(11))
    assert ys == list(range(11))  # labels are folder numbers, "10" is not placed after "1"
    model = build_model(ModelSpec(name="spiking_resnet", preset="tiny"), splits.input_shape, 11, frames=True)
    batch = torch.stack([splits.train[i][0] for i in range(2)])
    assert model(batch).shape == (2, 11)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("mnist", "MNIST/raw/train-images-idx3-ubyte"),
        ("fashion_mnist", "FashionMNIST/raw/train-images-idx3-ubyte"),
        ("dvs128_gesture", "frames_number_16_split_by_number"),
    ],
)
def test_missing_root_names_the_expected_path(tmp_path: Path, name: str, expected: str) -> None:
    if name.endswith("mnist"):
        (tmp_path / expected.split("/")[0] / "raw").mkdir(parents=True)
    with pytest.raises(DataError, match=expected) as err:
        build_data(DataSpec(name=name, root=str(tmp_path)))
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="does not exist"):
        build_data(DataSpec(name=name, root=str(tmp_path / "absent")))
    with pytest.raises(DataError, match="data.root"):
        build_data(DataSpec(name=name))


def test_malformed_files_raise_data_error(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_3"):
        build_data(DataSpec(name="cifar10", root=str(tmp_path)))
    _write_idx(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="t10k-labels"):
        build_data(DataSpec(name="mnist", root=str(tmp_path)))


def test_cifar_unpickler_refuses_code(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (print, ("pwned",))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": Evil(), "labels": []}))
    with pytest.raises(DataError, match="refusing"):
        build_data(DataSpec(name="cifar10", root=str(tmp_path)))


def test_unknown_option_is_rejected(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    with pytest.raises(DataError, match="allowed"):
        build_data(DataSpec(name="cifar10", root=str(tmp_path), options={"crop": 2}))
