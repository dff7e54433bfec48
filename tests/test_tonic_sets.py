"""N-MNIST and SHD through tonic (issue #14), from tiny files written here in tonic's own layout; nothing is
downloaded (tonic's download is replaced by an error)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("tonic")
h5py = pytest.importorskip("h5py")

from sltsearch.data import build_data  # noqa: E402
from sltsearch.errors import DataError  # noqa: E402
from sltsearch.spec import DataSpec  # noqa: E402


def nmnist_bin(path: Path, events: list[tuple[int, int, int, int]]) -> None:
    """N-MNIST's 40-bit events: x (8), y (8), polarity (1) and a 23-bit microsecond timestamp."""
    raw = bytearray()
    for x, y, t, p in events:
        raw += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(raw))


def write_nmnist(root: Path, per_class: int = 3) -> None:
    rng = np.random.default_rng(0)
    for split in ("Train", "Test"):
        for digit in range(10):
            for k in range(per_class if split == "Train" else 1):
                n = 40
                events = zip(rng.integers(0, 34, n), rng.integers(0, 34, n), np.sort(rng.integers(0, 300_000, n)),
                             rng.integers(0, 2, n), strict=True)
                nmnist_bin(root / "NMNIST" / split / str(digit) / f"{k:05d}.bin",
                           [tuple(int(v) for v in e) for e in events])


def write_shd(root: Path, n_train: int = 40, n_test: int = 20) -> None:
    rng = np.random.default_rng(1)
    (root / "SHD").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        with h5py.File(root / "SHD" / f"shd_{split}.h5", "w") as f:
            times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float32))
            units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
            for i in range(n):
                k = int(rng.integers(5, 30))
                times[i] = np.sort(rng.random(k).astype(np.float32))
                units[i] = rng.integers(0, 700, k).astype(np.uint16)
            f["labels"] = (np.arange(n) % 20).astype(np.uint16)
            f["extra/keys"] = np.array([b"zero"] * 20)
            f["extra/speaker"] = np.zeros(n, dtype=np.uint16)


def test_nmnist_frames_from_tonic_layout(tmp_path: Path) -> None:
    write_nmnist(tmp_path)
    splits = build_data(DataSpec(name="nmnist", root=str(tmp_path), val_fraction=0.2, options={"frames": 5}))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (24, 6, 10)
    assert splits.input_shape == (2, 34, 34) and splits.time_steps == 5 and splits.num_classes == 10
    x, y = splits.test[3]
    assert tuple(x.shape) == (5, 2, 34, 34) and int(y) == 3
    assert 0 < float(x.sum()) <= 40  # tonic's ToFrame counts the events into the 5 bins


def test_shd_frames_downsampled_by_tonic(tmp_path: Path) -> None:
    write_shd(tmp_path)
    splits = build_data(DataSpec(name="shd", root=str(tmp_path), options={"frames": 8, "channels": 70}))
    assert splits.input_shape == (1, 70) and splits.time_steps == 8 and splits.num_classes == 20
    assert len(splits.test) == 20 and len(splits.train) + len(splits.val) == 40
    x, y = splits.test[5]
    assert tuple(x.shape) == (8, 1, 70) and int(y) == 5 and float(x.sum()) > 0
    full = build_data(DataSpec(name="shd", root=str(tmp_path), options={"frames": 4}))
    assert tuple(full.train[0][0].shape) == (4, 1, 700)


def test_missing_files_say_which_to_put_where_and_nothing_is_downloaded(tmp_path: Path, monkeypatch) -> None:
    import tonic.download_utils

    def no_network(*args, **kwargs):
        raise AssertionError("tonic tried to download")

    monkeypatch.setattr(tonic.download_utils, "download_url", no_network)
    with pytest.raises(DataError, match=r"NMNIST/Train/<digit>/\*\.bin; unzip N-MNIST's train.zip and test.zip"):
        build_data(DataSpec(name="nmnist", root=str(tmp_path)))
    with pytest.raises(DataError, match=r"SHD/shd_train.h5; unzip shd_train.h5.zip and shd_test.h5.zip"):
        build_data(DataSpec(name="shd", root=str(tmp_path)))
    with pytest.raises(DataError, match="set data.root"):
        build_data(DataSpec(name="shd"))
    write_shd(tmp_path)
    with pytest.raises(DataError, match=r"unknown shd option\(s\) \['size'\]"):
        build_data(DataSpec(name="shd", root=str(tmp_path), options={"size": 3}))


@pytest.mark.slow
def test_a_search_runs_on_tonic_frames(tmp_path: Path) -> None:
    from conftest import tiny_spec_dict

    import sltsearch
    from sltsearch.spec import parse_spec

    write_shd(tmp_path / "data", n_train=60, n_test=20)
    spec = parse_spec(
        tiny_spec_dict(
            data={"name": "shd", "root": str(tmp_path / "data"), "options": {"frames": 4, "channels": 35}},
            search={"n_trials": 1},
        )
    )
    result = sltsearch.run(spec, run_dir=tmp_path / "run")
    assert len(result.tickets) == 2 and torch.isfinite(torch.tensor(result.tickets["energy_uj"].to_numpy())).all()
