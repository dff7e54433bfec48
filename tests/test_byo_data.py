"""Users' own data (issue #14): ``arrays`` .npz files and torch Datasets passed from Python."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from sltsearch.data import build_data
from sltsearch.data import torch_datasets as tds
from sltsearch.errors import DataError
from sltsearch.spec import DataSpec


def arrays(path: Path, n: int = 60, shape: tuple[int, ...] = (12,), classes: int = 3, **extra: np.ndarray) -> str:
    rng = np.random.default_rng(0)
    data = {
        "x_train": rng.random((n, *shape)).astype(np.float32),
        "y_train": np.arange(n) % classes,
        **extra,
    }
    np.savez(path, **data)
    return str(path)


def load(path: str, **kw: object):
    return build_data(DataSpec(name="arrays", path=path, **kw))


def test_missing_splits_are_carved_stratified_and_seeded(tmp_path: Path) -> None:
    splits = load(arrays(tmp_path / "d.npz", n=100, classes=4), val_fraction=0.2, test_fraction=0.2)
    sizes = [len(splits.train), len(splits.val), len(splits.test)]
    assert sizes == [60, 20, 20] and splits.input_shape == (1, 12) and splits.num_classes == 4
    for part in (splits.val, splits.test):
        assert np.bincount(part.tensors[1].numpy(), minlength=4).tolist() == [5, 5, 5, 5]
    again = load(str(tmp_path / "d.npz"), val_fraction=0.2, test_fraction=0.2)
    other = load(str(tmp_path / "d.npz"), val_fraction=0.2, test_fraction=0.2, split_seed=1)
    assert torch.equal(again.val.tensors[0], splits.val.tensors[0])
    assert not torch.equal(other.val.tensors[0], splits.val.tensors[0])
    every = torch.cat([splits.train.tensors[0], splits.val.tensors[0], splits.test.tensors[0]])
    assert len(torch.unique(every, dim=0)) == 100  # disjoint and complete


def test_given_splits_are_kept_and_only_the_missing_one_carved(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = arrays(tmp_path / "d.npz", x_test=rng.random((9, 12)), y_test=np.arange(9) % 3)
    splits = load(path)
    assert len(splits.test) == 9 and len(splits.train) + len(splits.val) == 60


@pytest.mark.parametrize(
    ("shape", "layout", "input_shape", "time_steps"),
    [
        ((12,), "auto", (1, 12), None),
        ((6, 6), "auto", (1, 6, 6), None),
        ((2, 12), "CL", (2, 12), None),
        ((2, 6, 6), "auto", (2, 6, 6), None),
        ((5, 2, 6, 6), "auto", (2, 6, 6), 5),
        ((5, 1, 12), "TCL", (1, 12), 5),
    ],
)
def test_sample_layouts(tmp_path: Path, shape, layout, input_shape, time_steps) -> None:
    splits = load(arrays(tmp_path / "d.npz", shape=shape), options={"layout": layout})
    assert splits.input_shape == input_shape and splits.time_steps == time_steps
    x, _ = splits.train[0]
    assert tuple(x.shape) == ((time_steps,) if time_steps else ()) + input_shape


def test_bad_arrays_are_one_line_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)

    def err(path: str, **kw: object) -> str:
        with pytest.raises(DataError) as info:
            load(path, **kw)
        assert "\n" not in str(info.value)
        return str(info.value)

    assert "not found; write it with numpy.savez" in err(str(tmp_path / "none.npz"))
    with pytest.raises(DataError, match="set data.path"):
        build_data(DataSpec(name="arrays"))
    with pytest.raises(DataError, match="data.path: dataset 'digits' does not read a file"):
        build_data(DataSpec(name="digits", path="x.npz"))
    x = rng.random((10, 4)).astype(np.float32)
    cases = {
        "mismatch": ({"x_train": x, "y_train": np.zeros(9, int)}, "x_train has 10 samples but y_train has 9"),
        "empty": (
            {"x_train": x, "y_train": np.arange(10) % 2, "x_val": x[:0], "y_val": np.zeros(0, int)},
            "the val split is empty",
        ),
        "nan": ({"x_train": np.where(np.arange(40).reshape(10, 4) == 21, np.nan, x), "y_train": np.arange(10) % 2},
                "1 NaN or infinite input values (first in sample 5)"),
        "negative": ({"x_train": x, "y_train": np.arange(10) - 1}, "label -1 is negative"),
        "fraction": ({"x_train": x, "y_train": np.full(10, 0.5)}, "labels must be integer class indices"),
        "onehot": ({"x_train": x, "y_train": np.eye(10)}, "labels must be class indices of shape [N]"),
        "lonely": ({"x_train": x, "y_val": np.zeros(3, int), "y_train": np.arange(10) % 2}, "has y_val but no x_val"),
        "typo": ({"x_train": x, "y_train": np.arange(10) % 2, "x_valid": x}, "unknown arrays ['x_valid']"),
        "noy": ({"x_train": x}, "has no 'y_train'"),
        "shapes": ({"x_train": x, "y_train": np.arange(10) % 2, "x_test": x[:, :3], "y_test": np.arange(10) % 2},
                   "x_test samples have shape [3], x_train's [4]"),
        "few": ({"x_train": x[:3], "y_train": np.arange(3)}, "cannot carve a stratified test split"),
    }
    for name, (content, message) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **content)
        assert message in err(str(tmp_path / f"{name}.npz")), name
    np.savez(tmp_path / "range.npz", x_train=x, y_train=np.arange(10) % 5)
    assert "label 4 is out of range for num_classes 3" in err(str(tmp_path / "range.npz"), options={"num_classes": 3})
    (tmp_path / "junk.npz").write_text("not a zip")
    assert "is not a readable .npz" in err(str(tmp_path / "junk.npz"))


def test_torch_datasets_registered_checked_and_carved() -> None:
    x = torch.randn(40, 8)
    y = torch.arange(40) % 4
    options = tds.register(TensorDataset(x, y), None, TensorDataset(x[:8], y[:8]))
    assert options["num_classes"] == 4 and options["layout"] == "L"
    splits = build_data(DataSpec(name="python", options=options, val_fraction=0.25))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (30, 10, 8)
    assert splits.input_shape == (1, 8) and tuple(splits.train[0][0].shape) == (1, 8)
    assert tds.register(TensorDataset(x, y), None, None)["fingerprint"] != options["fingerprint"]
    bumped = tds.register(TensorDataset(x + 1e-3, y), None, TensorDataset(x[:8], y[:8]))
    assert bumped["fingerprint"] != options["fingerprint"]


def test_bad_torch_datasets_are_one_line_errors() -> None:
    x, y = torch.randn(12, 4), torch.arange(12) % 2
    with pytest.raises(DataError, match="the val dataset is empty"):
        tds.register(TensorDataset(x, y), TensorDataset(x[:0], y[:0]), None)
    bad = x.clone()
    bad[3, 1] = float("inf")
    with pytest.raises(DataError, match="data=train item 3: 1 NaN or infinite"):
        tds.register(TensorDataset(bad, y), None, None)
    with pytest.raises(DataError, match="label 5 is out of range for num_classes 2"):
        tds.register(TensorDataset(x, y), TensorDataset(x[:2], torch.tensor([0, 5])), None, num_classes=2)
    with pytest.raises(DataError, match="item 0 is a Tensor; each item must be a pair"):
        tds.register([torch.zeros(3)], None, None)  # type: ignore[list-item]
    with pytest.raises(DataError, match="none with fingerprint 'nope' here"):
        build_data(DataSpec(name="python", options={"fingerprint": "nope"}))
