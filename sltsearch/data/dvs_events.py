"""DVS128 Gesture raw events -> spikingjelly-style frame folders, in plain numpy (no spikingjelly import).

Two raw layouts are converted, once, into ``<root>/frames_number_<T>_split_by_<S>/{train,test}/<label>/*.npz``
(key ``frames``, float32 [T, 2, 128, 128]), the layout `sltsearch.data.neuromorphic` reads:

- spikingjelly's split events, ``<root>/events_np/{train,test}/<label>/*.npz`` (keys ``t``, ``x``, ``y``,
  ``p``); each file becomes the frames file of the same name;
- the original release extracted by hand: ``<root>/DvsGesture/`` (or ``<root>/download/DvsGesture/``, or
  spikingjelly's ``<root>/extract/DvsGesture/``) holding ``user*_*.aedat`` (AEDAT 3.1),
  ``user*_*_labels.csv`` and ``trials_to_train.txt`` / ``trials_to_test.txt``.

The conventions are spikingjelly 2.0's (``datasets/dvs128_gesture.py`` and ``datasets/utils.py``), which
cannot be imported here (its ``datasets`` package imports torchaudio and torchvision):

- AEDAT 3.1: text header lines starting with ``#`` up to ``#!END-HEADER\\r\\n``, then packets of a 28-byte
  little-endian header (eventType, eventSource: int16; eventSize, eventTSOffset, eventTSOverflow,
  eventCapacity, eventNumber, eventValid: int32) and eventCapacity * eventSize bytes of events. Polarity
  packets (eventType 1) hold uint32 data (x = data >> 17 & 0x7FFF, y = data >> 2 & 0x7FFF,
  polarity = data >> 1 & 1) and uint32 timestamp (µs; ``| eventTSOverflow << 31``). Other packet types are
  skipped. As in spikingjelly the valid bit is not checked. We keep the first eventNumber events of a packet
  (spikingjelly keeps all eventCapacity slots: the two differ only for a packet that is not full).
- Samples: one per row of ``<trial>_labels.csv`` (``class,startTime_usec,endTime_usec``, header line first),
  holding the events with ``start <= t < end``; label = class - 1 (0..10); file ``<trial>_<k>.npz`` where k
  counts that label's windows within the trial. The split is the one the trials lists give.
- Frames: ``split_by="number"``: frame i holds events [i * (N // T), (i + 1) * (N // T)), the last frame
  also the remainder. ``split_by="time"``: dt = (t[-1] - t[0]) // T, frame i holds the events with
  t[0] + i * dt <= t < t[0] + (i + 1) * dt, the last frame everything from its start to the end. Channel =
  polarity (0: OFF, 1: ON), pixel [channel, y, x], values are event counts. Where spikingjelly fails (a
  ``time`` frame without events, e.g. in a window with no events) we write zeros. Frames are stored as
  float32 (spikingjelly writes float64; the counts are the same).

The output is written into a hidden temporary folder next to it and renamed into place when complete, so
an interrupted conversion never leaves a folder that looks finished (a killed run may leave a hidden
``.frames_number_*.partial`` folder behind, which is never read and may be deleted).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sltsearch.errors import DataError

H = W = 128
NUM_CLASSES = 11
SPLITS = ("train", "test")
_END_HEADER = b"#!END-HEADER\r\n"
_PACKET = struct.Struct("<hhiiiiii")
_POLARITY = 1

Events = dict[str, np.ndarray]


def _say(msg: str) -> None:
    print(f"dvs128_gesture: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- readers


def read_aedat3(path: Path) -> Events:
    """Polarity events of an AEDAT 3.x file: ``t`` (int64, µs), ``x``, ``y`` (int64), ``p`` (int64, 0/1)."""
    try:
        buf = Path(path).read_bytes()
    except OSError as err:
        raise DataError(f"data.root: cannot read {path} ({err.strerror or err})") from None
    if not buf.startswith(b"#!AER-DAT3"):
        raise DataError(f"data.root: {path} is not an AEDAT 3.x file (it must start with '#!AER-DAT3')")
    end = buf.find(_END_HEADER)
    if end < 0:
        raise DataError(f"data.root: {path} has no '#!END-HEADER' line ending its text header (AEDAT 3.x)")
    pos = end + len(_END_HEADER)
    data: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
    while pos < len(buf):
        if len(buf) - pos < _PACKET.size:
            raise DataError(f"data.root: {path} is truncated (packet header at byte {pos})")
        etype, _source, esize, _offset, overflow, capacity, number, _valid = _PACKET.unpack_from(buf, pos)
        if esize <= 0 or capacity < 0 or not 0 <= number <= capacity or overflow < 0:
            raise DataError(
                f"data.root: {path} has a malformed packet header at byte {pos} "
                f"(eventSize {esize}, eventCapacity {capacity}, eventNumber {number}, eventTSOverflow {overflow})"
            )
        pos += _PACKET.size
        stop = pos + capacity * esize
        if stop > len(buf):
            raise DataError(f"data.root: {path} is truncated (packet at byte {pos - _PACKET.size} needs {stop} bytes)")
        if etype == _POLARITY and number:
            if esize < 8 or esize % 4:
                raise DataError(f"data.root: {path}: polarity packet before byte {pos} has eventSize {esize}")
            words = np.frombuffer(buf, dtype="<u4", count=number * esize // 4, offset=pos).reshape(number, -1)
            data.append(words[:, 0])
            stamps.append(words[:, 1].astype(np.int64) | (np.int64(overflow) << 31))
        pos = stop
    if not data:
        raise DataError(f"data.root: {path} holds no polarity events (AEDAT 3.x eventType 1)")
    word = np.concatenate(data).astype(np.int64)
    return {
        "t": np.concatenate(stamps),
        "x": (word >> 17) & 0x7FFF,
        "y": (word >> 2) & 0x7FFF,
        "p": (word >> 1) & 1,
    }


def read_labels_csv(path: Path) -> np.ndarray:
    """Rows (label 0..10, start_us, end_us) of a DVS128 Gesture ``*_labels.csv`` (classes 1..11 on disk)."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"data.root: cannot read labels file {path} ({err})") from None
    rows = []
    for n, line in enumerate(lines, start=1):
        fields = [f for f in re.split(r"[,\s]+", line.strip()) if f]
        if not fields or (n == 1 and not fields[0].lstrip("-").isdigit()):
            continue  # blank line or the header line (class,startTime_usec,endTime_usec)
        try:
            cls, start, stop = (int(f) for f in fields)
        except ValueError:
            raise DataError(
                f"data.root: {path} line {n} is not 'class,startTime_usec,endTime_usec' ({line.strip()!r})"
            ) from None
        if not 1 <= cls <= NUM_CLASSES:
            raise DataError(f"data.root: {path} line {n}: class {cls} outside 1..{NUM_CLASSES}")
        rows.append((cls - 1, start, stop))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def read_events_npz(path: Path) -> Events:
    """One sample of spikingjelly's ``events_np`` folder (keys t, x, y, p)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            events = {k: np.asarray(f[k]).astype(np.int64).ravel() for k in ("t", "x", "y", "p")}
    except (OSError, KeyError, ValueError) as err:
        raise DataError(f"data.root: {path} is not an events .npz with keys t, x, y, p ({err})") from None
    if len({v.size for v in events.values()}) != 1:
        raise DataError(f"data.root: {path}: arrays t, x, y, p differ in length")
    return events


def split_windows(events: Events, windows: np.ndarray) -> Iterator[tuple[int, Events]]:
    """(label, events with start <= t < end) for each labels.csv row, in file order."""
    t = events["t"]
    for label, start, stop in windows:
        keep = (t >= start) & (t < stop)
        yield int(label), {k: v[keep] for k, v in events.items()}


# ------------------------------------------------------------------------------------------- integration


def frame_segments(t: np.ndarray, split_by: str, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Index bounds [j_l, j_r) of each frame's events, as spikingjelly's ``cal_fixed_frames_number_segment_index``."""
    n = t.size
    if split_by == "number":
        di = n // frames
        j_l = np.arange(frames, dtype=np.int64) * di
        j_r = j_l + di
        j_r[-1] = n
        return j_l, j_r
    if split_by != "time":
        raise DataError(f"data.options.split_by: '{split_by}' not allowed; allowed: number, time")
    j_l = np.zeros(frames, dtype=np.int64)
    j_r = np.zeros(frames, dtype=np.int64)
    if n == 0:
        return j_l, j_r
    t = t.astype(np.int64)
    dt = (int(t[-1]) - int(t[0])) // frames
    for i in range(frames):
        t_l = int(t[0]) + dt * i
        hit = np.flatnonzero((t >= t_l) & (t < t_l + dt))
        if hit.size:
            j_l[i], j_r[i] = hit[0], hit[-1] + 1
        else:  # spikingjelly raises IndexError here; an empty frame is the sensible answer
            j_l[i] = j_r[i] = np.count_nonzero(t < t_l)
    j_r[-1] = n
    return j_l, j_r


def integrate(events: Events, split_by: str, frames: int, source: Path | str = "events") -> np.ndarray:
    """Event counts [T, 2, 128, 128] (float32): channel = polarity, pixel [y, x]."""
    x, y, p = events["x"], events["y"], events["p"]
    if x.size and (x.min() < 0 or y.min() < 0 or x.max() >= W or y.max() >= H):
        raise DataError(
            f"data.root: {source}: event coordinates x {x.min()}..{x.max()}, y {y.min()}..{y.max()} "
            f"fall outside the {W}x{H} DVS128 sensor"
        )
    position = (p > 0).astype(np.int64) * (H * W) + y.astype(np.int64) * W + x.astype(np.int64)
    j_l, j_r = frame_segments(events["t"], split_by, frames)
    out = np.zeros((frames, 2, H, W), dtype=np.float32)
    for i in range(frames):
        out[i] = np.bincount(position[j_l[i] : j_r[i]], minlength=2 * H * W).reshape(2, H, W)
    return out


# -------------------------------------------------------------------------------------------- conversion


@dataclass(frozen=True)
class RawSource:
    """Where the raw events live: ``kind`` is ``events_np`` or ``aedat``."""

    kind: str
    path: Path


def find_raw_source(root: Path) -> RawSource | None:
    """The raw events under ``root`` (spikingjelly's events_np first, then the extracted DvsGesture/)."""
    events_np = root / "events_np"
    marker = root / "events_np.building"
    if marker.exists():
        raise DataError(
            f"data.root: found {marker}: spikingjelly's conversion into {events_np} was interrupted; "
            "remove both and retry"
        )
    if events_np.is_dir():
        return RawSource("events_np", events_np)
    for folder in (root / "DvsGesture", root / "download" / "DvsGesture", root / "extract" / "DvsGesture"):
        if folder.is_dir():
            return RawSource("aedat", folder)
    for archive in (root / "download" / "DvsGesture.tar.gz", root / "DvsGesture.tar.gz"):
        if archive.is_file():
            raise DataError(
                f"data.root: found {archive} but not its extracted folder; extract it first "
                f"(tar -xzf {archive} -C {archive.parent}, which gives {archive.parent / 'DvsGesture'})"
            )
    return None


def _trials(folder: Path, split: str) -> list[tuple[Path, Path]]:
    """(aedat, labels csv) of each recording listed in ``trials_to_<split>.txt``; every file must exist."""
    listing = folder / f"trials_to_{split}.txt"
    try:
        names = [line.strip() for line in listing.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"data.root: expected {listing} listing the {split} recordings ({err})") from None
    out = []
    for name in filter(None, names):
        aedat = folder / name
        labels = folder / f"{aedat.name.removesuffix('.aedat')}_labels.csv"
        for needed in (aedat, labels):
            if not needed.is_file():
                raise DataError(f"data.root: expected {needed} (listed in {listing})")
        out.append((aedat, labels))
    if not out:
        raise DataError(f"data.root: {listing} lists no recordings")
    return out


def _aedat_samples(recordings: list[tuple[Path, Path]]) -> Iterator[tuple[Path, str, int, Events]]:
    for aedat, labels in recordings:
        stem = aedat.name.removesuffix(".aedat")
        seen = [0] * NUM_CLASSES
        for label, events in split_windows(read_aedat3(aedat), read_labels_csv(labels)):
            yield aedat, f"{stem}_{seen[label]}.npz", label, events
            seen[label] += 1


def _events_np_files(folder: Path, split: str) -> list[tuple[Path, int]]:
    split_root = folder / split
    if not split_root.is_dir():
        raise DataError(f"data.root: expected folder {split_root} (spikingjelly events_np/<split>/<label>/*.npz)")
    out = []
    for d in sorted((d for d in split_root.iterdir() if d.is_dir()), key=lambda d: d.name):
        if not d.name.isdigit() or int(d.name) >= NUM_CLASSES:
            raise DataError(f"data.root: {d} is not a label folder (0..{NUM_CLASSES - 1})")
        out.extend((f, int(d.name)) for f in sorted(d.glob("*.npz")))
    return out


def _samples(source: RawSource) -> dict[str, Iterator[tuple[Path, str, int, Events]]]:
    """Per split, lazily: (origin file, output name, label, events). Every listed file is checked up front."""
    if source.kind == "aedat":
        recordings = {split: _trials(source.path, split) for split in SPLITS}
        return {split: _aedat_samples(recordings[split]) for split in SPLITS}
    files = {split: _events_np_files(source.path, split) for split in SPLITS}
    return {split: ((f, f.name, label, read_events_npz(f)) for f, label in files[split]) for split in SPLITS}


def convert_to_frames(
    source: RawSource, dest: Path, frames: int, split_by: str, say: Callable[[str], None] = _say
) -> Path:
    """Integrate every raw sample into ``dest/{train,test}/<label>/*.npz``; ``dest`` appears only when complete."""
    if frames < 1:
        raise DataError(f"data.options.frames: {frames} must be >= 1")
    samples = _samples(source)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    except OSError as err:
        raise DataError(f"data.root: cannot write the converted frames under {dest.parent} ({err})") from None
    say(f"integrating {source.path} into {frames} frames per sample (split_by={split_by}); writing {dest}")
    started = time.monotonic()
    counts = {}
    try:
        for split in SPLITS:
            for label in range(NUM_CLASSES):
                (tmp / split / str(label)).mkdir(parents=True)
            n = 0
            for origin, name, label, events in samples[split]:
                np.savez_compressed(tmp / split / str(label) / name, frames=integrate(events, split_by, frames, origin))
                n += 1
            if n == 0:
                raise DataError(f"data.root: {source.path} yields no {split} samples")
            counts[split] = n
            say(f"{split}: {n} samples")
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():
                raise
            say(f"{dest} appeared meanwhile (another process converted it); keeping that one")
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"done in {time.monotonic() - started:.1f}s: {counts['train']} train, {counts['test']} test samples in {dest}")
    return dest
