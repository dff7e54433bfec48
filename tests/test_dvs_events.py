"""DVS128 Gesture from raw events: a tiny hand-made AEDAT 3.1 release (2 users, 5 label windows) and
spikingjelly's events_np layout, converted to frame folders and loaded end to end through `build_data`.

Every expected frame count below is computed by hand from the event lists in this file.
"""

from __future__ import annotations

import ast
import importlib.util
import struct
from pathlib import Path
from typing import Optional, Union  # noqa: UP035 -- the namespace spikingjelly's reference code runs in

import numpy as np
import pytest

from sltsearch.data import build_data, dvs_events
from sltsearch.errors import DataError
from sltsearch.spec import DataSpec

OVERFLOW = 1 << 31  # user02's timestamps sit past one eventTSOverflow wrap
Event = tuple[int, int, int, int]  # (t, x, y, p)


def _user01() -> tuple[list[Event], str]:
    ev: list[Event] = [(999, 0, 0, 1)]  # before every window: dropped
    ev += [(1000 + k, 5, 7, 1) for k in range(30)]  # A: class 1 [1000, 2000), ON burst at (x=5, y=7)
    ev += [(1300 + 70 * k, 120, 3, 0) for k in range(10)]  # A: OFF tail 1300..1930 at (x=120, y=3)
    ev += [(2000, 64, 64, 1)] + [(2500 + k, 64, 64, 1) for k in range(20)]  # between windows: dropped
    ev += [(3000 + 40 * k, 127, 127, k % 2) for k in range(25)]  # B: class 3 [3000, 4000)
    ev += [(4000 + 50 * k, 1, 2, 1) for k in range(9)]  # D: class 1 again [4000, 4500)
    ev += [(4600 + k, 9, 9, 0) for k in range(200)]  # after every window: dropped
    return ev, "class,startTime_usec,endTime_usec\n1,1000,2000\n3,3000,4000\n1,4000,4500\n"


def _user02() -> tuple[list[Event], str]:
    ev: list[Event] = [(OVERFLOW + 500 + 30 * k, 10, 20, 1) for k in range(12)]  # C: class 11
    ev += [(OVERFLOW + 1000 + d, 30, 40, 0) for d in (0, 1, 2, 3, 30, 50, 75, 99)]  # E: class 2
    csv = "class,startTime_usec,endTime_usec\n"
    csv += f"11,{OVERFLOW + 500},{OVERFLOW + 900}\n2,{OVERFLOW + 1000},{OVERFLOW + 1100}\n"
    return ev, csv


# (split, label folder, file) -> frame totals for T = 4, per split_by, hand-computed:
EXPECTED = {
    # A: N = 40 -> 10 each; time: dt = (1930 - 1000) // 4 = 232: [1000,1232) burst 30, then 3, 3, rest 4
    ("train", "0", "user01_lab_0.npz"): {"number": [10, 10, 10, 10], "time": [30, 3, 3, 4]},
    # B: N = 25 -> 6, 6, 6, 7; time: dt = 960 // 4 = 240 -> 6, 6, 6, 7
    ("train", "2", "user01_lab_0.npz"): {"number": [6, 6, 6, 7], "time": [6, 6, 6, 7]},
    # D: N = 9 -> 2, 2, 2, 3; time: dt = 400 // 4 = 100 -> 2, 2, 2, 3
    ("train", "0", "user01_lab_1.npz"): {"number": [2, 2, 2, 3], "time": [2, 2, 2, 3]},
    # C: N = 12 -> 3 each; time: dt = 330 // 4 = 82 -> 3 each
    ("test", "10", "user02_led_0.npz"): {"number": [3, 3, 3, 3], "time": [3, 3, 3, 3]},
    # E: N = 8 -> 2 each; time: dt = 99 // 4 = 24: [1000,1024) 4, [1024,1048) 1, [1048,1072) 1, rest 2
    ("test", "1", "user02_led_0.npz"): {"number": [2, 2, 2, 2], "time": [4, 1, 1, 2]},
}
# ON (channel 1) counts per frame of A and B; OFF = total - ON
ON = {
    ("train", "0", "user01_lab_0.npz"): {"number": [10, 10, 10, 0], "time": [30, 0, 0, 0]},
    ("train", "2", "user01_lab_0.npz"): {"number": [3, 3, 3, 3], "time": [3, 3, 3, 3]},
}


def _aedat(events: list[Event], packet: int = 16) -> bytes:
    """AEDAT 3.1: text header, polarity packets of `packet` events (timestamps: low 31 bits + the packet's
    eventTSOverflow), one special-event packet to be skipped."""
    out = [b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#Start-Time: 2017-01-01\r\n#!END-HEADER\r\n"]
    arr = np.asarray(events, dtype=np.int64).reshape(-1, 4)
    wraps = np.flatnonzero(np.diff(arr[:, 0] >> 31)) + 1  # a new packet where eventTSOverflow changes
    for run in np.split(arr, wraps):
        for i in range(0, len(run), packet):
            t, x, y, p = run[i : i + packet].T
            words = np.stack([(x << 17) | (y << 2) | (p << 1) | 1, t & 0x7FFFFFFF], axis=1).astype("<u4")
            n, overflow = len(t), int(t[0] >> 31)
            out.append(struct.pack("<hhiiiiii", 1, 1, 8, 4, overflow, n, n, n) + words.tobytes())
            if len(out) == 2:  # a special-event packet (eventType 0): not polarity, must be skipped
                out.append(struct.pack("<hhiiiiii", 0, 1, 8, 4, 0, 3, 3, 3) + bytes(range(24)))
    return b"".join(out)


def _write_release(root: Path, where: str = "download/DvsGesture") -> Path:
    folder = root / where
    folder.mkdir(parents=True)
    for name, (events, csv), split in (("user01_lab", _user01(), "train"), ("user02_led", _user02(), "test")):
        (folder / f"{name}.aedat").write_bytes(_aedat(events))
        (folder / f"{name}_labels.csv").write_text(csv)
        (folder / f"trials_to_{split}.txt").write_text(f"{name}.aedat\n\n")
    return folder


def _by_file(splits) -> dict[tuple[str, str, str], tuple]:
    out = {}
    for ds in (splits.train, splits.val, splits.test):
        for i, f in enumerate(ds.files):
            out[(f.parent.parent.name, f.parent.name, f.name)] = (f, *ds[i])
    return out


@pytest.mark.parametrize("split_by", ["number", "time"])
def test_aedat_release_end_to_end(tmp_path: Path, split_by: str, capsys: pytest.CaptureFixture) -> None:
    _write_release(tmp_path)
    spec = DataSpec(
        name="dvs128_gesture",
        root=str(tmp_path),
        val_fraction=0.34,
        options={"frames": 4, "size": 8, "split_by": split_by},
    )
    splits = build_data(spec)
    folder = tmp_path / f"frames_number_4_split_by_{split_by}"
    assert folder.is_dir() and not list(tmp_path.glob(".*partial"))
    assert "3 train" in capsys.readouterr().err  # the conversion says what it did
    assert splits.time_steps == 4 and splits.input_shape == (2, 8, 8) and splits.num_classes == 11
    assert (len(splits.train) + len(splits.val), len(splits.test)) == (3, 2)
    samples = _by_file(splits)
    assert set(samples) == set(EXPECTED)
    for key, (path, x, y) in samples.items():
        assert int(y) == int(key[1])  # label = class - 1 (class 11 -> 10, class 3 -> 2)
        assert x.shape == (4, 2, 8, 8)
        assert x.sum(dim=(1, 2, 3)).tolist() == EXPECTED[key][split_by], key
        if key in ON:
            assert x[:, 1].sum(dim=(1, 2)).tolist() == ON[key][split_by], key
        raw = np.load(path)["frames"]
        assert raw.shape == (4, 2, 128, 128) and raw.dtype == np.float32
    # pixels land at [channel = polarity, y, x] of the 128x128 frame
    a = np.load(samples[("train", "0", "user01_lab_0.npz")][0])["frames"]
    assert a[:, 1, 7, 5].tolist() == ON[("train", "0", "user01_lab_0.npz")][split_by]
    assert a[:, 0, 3, 120].sum() == 10 and a.sum() == 40
    e = np.load(samples[("test", "1", "user02_led_0.npz")][0])["frames"]
    assert e[:, 0, 40, 30].tolist() == EXPECTED[("test", "1", "user02_led_0.npz")][split_by]
    # the second load reads the converted folder and converts nothing
    build_data(spec)
    assert capsys.readouterr().err == ""


def test_release_in_root_or_extract_and_events_np(tmp_path: Path) -> None:
    """The same release under <root>/DvsGesture and <root>/extract/DvsGesture, and as spikingjelly's events_np,
    gives the same frames."""
    frames = {}
    for where in ("DvsGesture", "extract/DvsGesture"):
        root = tmp_path / where.replace("/", "_")
        _write_release(root, where)
        build_data(DataSpec(name="dvs128_gesture", root=str(root), options={"frames": 4, "split_by": "time"}))
        frames[where] = root / "frames_number_4_split_by_time"
    # events_np as spikingjelly's create_raw_from_extracted writes it (keys t, x, y, p; one file per window)
    root = tmp_path / "sj"
    for (split, label, name), (t0, t1, source) in {
        ("train", "0", "user01_lab_0.npz"): (1000, 2000, _user01),
        ("train", "2", "user01_lab_0.npz"): (3000, 4000, _user01),
        ("train", "0", "user01_lab_1.npz"): (4000, 4500, _user01),
        ("test", "10", "user02_led_0.npz"): (OVERFLOW + 500, OVERFLOW + 900, _user02),
        ("test", "1", "user02_led_0.npz"): (OVERFLOW + 1000, OVERFLOW + 1100, _user02),
    }.items():
        ev = np.asarray([e for e in source()[0] if t0 <= e[0] < t1], dtype=np.int64)
        (root / "events_np" / split / label).mkdir(parents=True, exist_ok=True)
        np.savez(root / "events_np" / split / label / name, t=ev[:, 0], x=ev[:, 1], y=ev[:, 2], p=ev[:, 3])
    build_data(DataSpec(name="dvs128_gesture", root=str(root), options={"frames": 4, "split_by": "time"}))
    frames["events_np"] = root / "frames_number_4_split_by_time"
    for key in EXPECTED:
        got = [np.load(folder.joinpath(*key))["frames"] for folder in frames.values()]
        assert all(np.array_equal(got[0], g) for g in got[1:]), key
        assert got[0].sum(axis=(1, 2, 3)).tolist() == EXPECTED[key]["time"]


def test_interrupted_conversion_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_release(tmp_path)
    stale = tmp_path / ".frames_number_4_split_by_number.dead.partial" / "train" / "0"  # a killed run's leftovers
    stale.mkdir(parents=True)
    spec = DataSpec(name="dvs128_gesture", root=str(tmp_path), options={"frames": 4, "size": 8})
    real, calls = dvs_events.integrate, []

    def dies_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(dvs_events, "integrate", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        build_data(spec)
    assert not (tmp_path / "frames_number_4_split_by_number").exists()
    assert [p.name for p in tmp_path.glob(".*partial")] == [stale.parent.parent.name]  # ours was removed
    monkeypatch.setattr(dvs_events, "integrate", real)
    splits = build_data(spec)  # the rerun converts from scratch and ignores the stale folder
    assert len(splits.train) + len(splits.val) + len(splits.test) == 5


def test_concurrent_winner_is_kept(tmp_path: Path) -> None:
    folder = _write_release(tmp_path)
    dest = tmp_path / "frames_number_4_split_by_number"
    (dest / "train").mkdir(parents=True)  # another process renamed its complete folder first
    (dest / "train" / "theirs").write_text("")
    dvs_events.convert_to_frames(dvs_events.RawSource("aedat", folder), dest, 4, "number", say=lambda _: None)
    assert [p.name for p in (dest / "train").iterdir()] == ["theirs"]
    assert not list(tmp_path.glob(".*partial"))


def _truncate(folder: Path) -> None:
    f = folder / "user01_lab.aedat"
    f.write_bytes(f.read_bytes()[:-5])


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (_truncate, r"user01_lab\.aedat is truncated"),
        (lambda f: (f / "user02_led.aedat").write_bytes(b"\x00" * 64), r"user02_led\.aedat is not an AEDAT 3"),
        (lambda f: (f / "user02_led.aedat").write_bytes(b"#!AER-DAT3.1\r\n#no end\r\n"), "END-HEADER"),
        (lambda f: (f / "user02_led_labels.csv").unlink(), r"expected .*user02_led_labels\.csv"),
        (lambda f: (f / "user01_lab_labels.csv").write_text("class,s,e\n1,10,oops\n"), r"labels\.csv line 2"),
        (lambda f: (f / "user01_lab_labels.csv").write_text("class,s,e\n12,10,20\n"), "class 12 outside 1..11"),
        (lambda f: (f / "trials_to_test.txt").unlink(), r"expected .*trials_to_test\.txt"),
        (lambda f: (f / "trials_to_train.txt").write_text("user09_lab.aedat\n"), r"expected .*user09_lab\.aedat"),
    ],
)
def test_malformed_release_names_the_file(tmp_path: Path, corrupt, match: str) -> None:
    corrupt(_write_release(tmp_path))
    with pytest.raises(DataError, match=match) as err:
        build_data(DataSpec(name="dvs128_gesture", root=str(tmp_path), options={"frames": 4}))
    assert "\n" not in str(err.value)
    assert [p.name for p in tmp_path.iterdir()] == ["download"]  # nothing half-written


def test_events_np_errors_and_unextracted_archive(tmp_path: Path) -> None:
    spec = DataSpec(name="dvs128_gesture", root=str(tmp_path), options={"frames": 4})
    (tmp_path / "download").mkdir()
    (tmp_path / "download" / "DvsGesture.tar.gz").write_bytes(b"")
    with pytest.raises(DataError, match="tar -xzf"):
        build_data(spec)
    train, test = tmp_path / "events_np" / "train" / "3", tmp_path / "events_np" / "test" / "3"
    train.mkdir(parents=True)
    np.savez(train / "s.npz", t=np.arange(5), x=np.arange(5), y=np.arange(5))
    with pytest.raises(DataError, match=r"events_np/test"):  # the whole test split is missing
        build_data(spec)
    test.mkdir(parents=True)
    np.savez(test / "s.npz", t=np.arange(5), x=np.zeros(5), y=np.zeros(5), p=np.ones(5))
    with pytest.raises(DataError, match=r"events_np/train/3/s\.npz is not an events \.npz with keys t, x, y, p"):
        build_data(spec)
    np.savez(train / "s.npz", t=np.arange(5), x=np.full(5, 200), y=np.zeros(5), p=np.ones(5))
    with pytest.raises(DataError, match=r"train/3/s\.npz: event coordinates .* outside the 128x128"):
        build_data(spec)
    assert not (tmp_path / "frames_number_4_split_by_number").exists()
    for name in ("s.npz", "r.npz"):  # two train samples: the validation split needs one
        np.savez(train / name, t=np.arange(5), x=np.zeros(5), y=np.zeros(5), p=np.ones(5))
    assert len(build_data(spec).test) == 1
    (tmp_path / "frames_number_4_split_by_time.building").touch()  # spikingjelly's own unfinished marker
    with pytest.raises(DataError, match="interrupted"):
        build_data(DataSpec(name="dvs128_gesture", root=str(tmp_path), options={"frames": 4, "split_by": "time"}))


def test_aedat_reader_overflow_and_packets(tmp_path: Path) -> None:
    events = [(5, 1, 2, 0), (OVERFLOW + 7, 127, 0, 1), (3 * OVERFLOW + 1, 0, 127, 1)]
    path = tmp_path / "a.aedat"
    path.write_bytes(_aedat(events, packet=1))
    got = dvs_events.read_aedat3(path)
    assert got["t"].tolist() == [5, OVERFLOW + 7, 3 * OVERFLOW + 1]
    assert (got["x"].tolist(), got["y"].tolist(), got["p"].tolist()) == ([1, 127, 0], [2, 0, 127], [0, 1, 1])


def test_time_split_with_an_empty_frame_gives_zeros() -> None:
    """spikingjelly raises IndexError when a `time` frame has no events; we write an empty frame."""
    t = np.array([0, 1, 2, 100])  # dt = 25: frames [0,25) 3, [25,50) 0, [50,75) 0, rest 1
    ev = {"t": t, "x": np.zeros(4, np.int64), "y": np.zeros(4, np.int64), "p": np.ones(4, np.int64)}
    assert dvs_events.integrate(ev, "time", 4).sum(axis=(1, 2, 3)).tolist() == [3, 0, 0, 1]
    empty = {k: np.zeros(0, np.int64) for k in "txyp"}
    for split_by in ("time", "number"):
        assert dvs_events.integrate(empty, split_by, 3).shape == (3, 2, 128, 128)


def _spikingjelly_reference() -> dict:
    """spikingjelly 2.0's own numpy functions, taken from its source file: its `datasets` package cannot be
    imported here (torchaudio), but these four functions need only numpy and struct."""
    spec = importlib.util.find_spec("spikingjelly")
    if spec is None or spec.origin is None:
        pytest.skip("spikingjelly is not installed")
    path = Path(spec.origin).parent / "datasets" / "utils.py"
    wanted = {
        "load_aedat_v3",
        "integrate_events_segment_to_frame",
        "cal_fixed_frames_number_segment_index",
        "integrate_events_by_fixed_frames_number",
    }
    body = [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    if {n.name for n in body} != wanted:
        pytest.skip(f"{path} no longer defines {sorted(wanted)}")
    namespace = {"np": np, "struct": struct, "Optional": Optional, "Union": Union, "Path": Path}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


def test_matches_spikingjelly_reference(tmp_path: Path) -> None:
    sj = _spikingjelly_reference()
    path = tmp_path / "u.aedat"
    path.write_bytes(_aedat(_user01()[0] + _user02()[0]))
    ours, theirs = dvs_events.read_aedat3(path), sj["load_aedat_v3"](path)
    for k in "txyp":
        assert ours[k].tolist() == theirs[k].tolist(), k
    rng = np.random.default_rng(0)
    n = 3000
    ev = {
        "t": np.sort(rng.integers(0, 10**6, n)),
        "x": rng.integers(0, 128, n),
        "y": rng.integers(0, 128, n),
        "p": rng.integers(0, 2, n),
    }
    for split_by in ("number", "time"):
        for frames in (1, 4, 7):
            ref = sj["integrate_events_by_fixed_frames_number"](ev, split_by, frames, 128, 128)
            assert np.array_equal(dvs_events.integrate(ev, split_by, frames), ref), (split_by, frames)
