"""Content-addressed artefact cache: every stage is named by a hash of what determines it.

Writes are atomic (temp file + rename) and guarded by a file lock, so several trials or processes
sharing one cache folder compute a stage once and never see a half-written artefact. Tensors are stored
as safetensors; metadata as JSON. A stage is complete when its ``meta.json`` exists (written last); it
records the sha256 of every tensor file, and a stage whose files do not match (or cannot be read) is never
used: it is moved aside to ``<root>/.damaged/``, the user is told which file, and the stage is recomputed.

A stage may also hold its measurements (`store_measured`): ``measured-<key>.json`` files, one per measurement
key (`sltsearch.trial.measurement`), each checksummed under ``meta.json``'s ``measured_sha256``. A damaged one is
moved aside alone (the stage's tensors are still good) and measured again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file

from sltsearch.errors import warn
from sltsearch.system.files import atomic_write, save_json, sha256_file

CHECKSUMS = "sha256"  # meta.json key: tensor file name -> sha256 hex digest
MEASURED = "measured_sha256"  # meta.json key: measurement file name -> sha256 hex digest
DAMAGED_DIR = ".damaged"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    data = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(data, str(tmp)))


class DamagedArtefact(Exception):
    """A cached file that is missing, unreadable or does not match its recorded checksum."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


def _check_file(path: Path, expected_sha256: str) -> None:
    """Raise `DamagedArtefact` unless ``path`` exists and has the recorded checksum."""
    if not path.is_file():
        raise DamagedArtefact(path, "missing")
    if sha256_file(path) != expected_sha256:
        raise DamagedArtefact(path, "checksum mismatch (the file changed after it was written)")


class StageCache:
    """Stages stored as folders ``root/<kind>/<key>/``; ``root=None`` keeps nothing (always recompute)."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self.hits = 0
        self.misses = 0
        self.set_aside: list[Path] = []  # damaged stages moved out of the way by this cache
        self.measured_hits = 0  # measurements read back instead of evaluating the model again
        self.measured_stores = 0

    def folder(self, kind: str, key: str) -> Path | None:
        return None if self.root is None else self.root / kind / key

    def has(self, kind: str, key: str) -> bool:
        """True when the stage's ``meta.json`` exists (its files are checked when they are read: `fetch`)."""
        folder = self.folder(kind, key)
        return folder is not None and (folder / "meta.json").is_file()

    def fetch(
        self, kind: str, key: str, stems: list[str] | None = None, *, verify_all: bool = False
    ) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]] | None:
        """`load`, or None when the stage is not stored or is damaged (then it is set aside and the user told).

        ``verify_all`` checks every file of the stage, not only the ones read (e.g. the dense run's epoch
        checkpoints, read later for rewinding)."""
        if not self.has(kind, key):
            return None
        folder = self.folder(kind, key)
        assert folder is not None
        try:
            if verify_all:
                self._verified_meta(folder)
            return self.load(kind, key, stems)
        except DamagedArtefact as err:
            self._set_aside(kind, key, err)
            return None

    def locate(self, key: str) -> tuple[str, Path] | None:
        """The kind and folder of the complete stage named ``key``, whatever its kind (keys are content
        hashes, so a key names one stage); None when no such stage was stored."""
        if self.root is None:
            return None
        for folder in sorted(self.root.glob(f"*/{key}")):
            if (folder / "meta.json").is_file():
                return folder.parent.name, folder
        return None

    @contextmanager
    def lock(self, kind: str, key: str) -> Iterator[None]:
        folder = self.folder(kind, key)
        if folder is None:
            yield
            return
        folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder) + ".lock"):
            yield

    def load(
        self, kind: str, key: str, stems: list[str] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
        """The stage's metadata and its tensor files (file stem -> tensors); ``stems`` picks some files.

        Every file read is checked against the checksum recorded in ``meta.json``; a mismatch raises
        `DamagedArtefact` (callers check `has` first, which sets such a stage aside)."""
        folder = self.folder(kind, key)
        assert folder is not None
        meta = self._verified_meta(folder, stems)
        paths = (
            [folder / f"{s}.safetensors" for s in stems] if stems else sorted(folder.glob("*.safetensors"))
        )
        try:
            tensors = {p.stem: load_file(str(p)) for p in paths}
        except Exception as err:  # noqa: BLE001 - safetensors raises several types for a bad file
            raise DamagedArtefact(folder, f"unreadable tensor file ({str(err).splitlines()[0]})") from None
        self.hits += 1
        return meta, tensors

    def store(
        self, kind: str, key: str, meta: dict[str, Any], tensors: dict[str, dict[str, torch.Tensor]]
    ) -> None:
        self.misses += 1
        folder = self.folder(kind, key)
        if folder is None:
            return
        sums = {}
        for stem, group in tensors.items():
            path = folder / f"{stem}.safetensors"
            save_tensors(path, group)
            sums[path.name] = sha256_file(path)
        save_json(folder / "meta.json", {**meta, CHECKSUMS: sums})

    def _verified_meta(self, folder: Path, stems: list[str] | None = None) -> dict[str, Any]:
        """meta.json, with the named tensor files (all when None) checked against their sha256."""
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError) as err:
            raise DamagedArtefact(folder / "meta.json", f"unreadable ({err})") from None
        if not isinstance(meta, dict):
            raise DamagedArtefact(folder / "meta.json", "not a JSON object")
        sums = meta.get(CHECKSUMS)
        if sums is None:  # written before checksums existed: nothing to verify against
            return meta
        names = [f"{s}.safetensors" for s in stems] if stems else list(sums)
        for name in names:
            if not isinstance(name, str) or Path(name).name != name or name in {"", ".", ".."}:
                raise DamagedArtefact(folder / "meta.json", f"names {ascii(name)[:60]}, not a file of its folder")
            if name not in sums:
                raise DamagedArtefact(folder / name, "missing")
            _check_file(folder / name, sums[name])
        return meta

    def _move_aside(self, source: Path, name: str) -> Path | None:
        """Move ``source`` (a stage folder or one of its files) into ``.damaged/`` under a unique name built
        from ``name``; None when it has gone (another process set it aside first, or it was missing)."""
        assert self.root is not None
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
        target = self.root / DAMAGED_DIR / name.format(stamp=stamp)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
        except FileNotFoundError:
            return None
        self.set_aside.append(target)
        return target

    def _set_aside(self, kind: str, key: str, err: DamagedArtefact) -> None:
        folder = self.folder(kind, key)
        assert folder is not None
        target = self._move_aside(folder, f"{kind}-{key}-{{stamp}}")
        if target is not None:
            warn(f"cache: {err.path} is damaged ({err.why}); moved the stage to {target} and recomputing it")

    # ------------------------------------------------------------------ measurements stored with a stage

    @staticmethod
    def measured_name(measure_key: str) -> str:
        return f"measured-{measure_key}.json"

    def fetch_measured(self, kind: str, key: str, measure_key: str) -> dict[str, Any] | None:
        """The stage's stored measurement under ``measure_key``; None when there is none (a stage stored before
        measurements were kept, or measured under other settings) or it is damaged (then it is set aside and
        the user told; the stage itself stays)."""
        stored = self._stored_meta(kind, key)
        if stored is None:
            return None
        folder, meta = stored
        name = self.measured_name(measure_key)
        sums = meta.get(MEASURED, {})
        if name not in sums:
            return None
        path = folder / name
        try:
            _check_file(path, sums[name])
            values = json.loads(path.read_text())
            if not isinstance(values, dict):
                raise DamagedArtefact(path, "not a JSON object")
        except DamagedArtefact as err:
            self._set_aside_file(kind, key, err)
            return None
        except (OSError, ValueError) as err:
            self._set_aside_file(kind, key, DamagedArtefact(path, f"unreadable ({err})"))
            return None
        self.measured_hits += 1
        return values

    def store_measured(self, kind: str, key: str, measure_key: str, values: dict[str, Any]) -> None:
        """Keep ``values`` beside the stage (call under `lock`); its checksum joins ``meta.json``, written last.

        A stage that is not stored (no cache, or set aside meanwhile) keeps nothing."""
        self.measured_stores += 1
        stored = self._stored_meta(kind, key)
        if stored is None:
            return
        folder, meta = stored
        path = folder / self.measured_name(measure_key)
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(values, indent=1, sort_keys=True)))
        meta[MEASURED] = {**meta.get(MEASURED, {}), path.name: sha256_file(path)}
        save_json(folder / "meta.json", meta)

    def _stored_meta(self, kind: str, key: str) -> tuple[Path, dict[str, Any]] | None:
        """The stored stage's folder and ``meta.json``; None when the stage is not stored or its meta.json
        cannot be read (the stage's own check, `fetch`, sets a damaged meta.json aside)."""
        folder = self.folder(kind, key)
        if folder is None or not (folder / "meta.json").is_file():
            return None
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        return (folder, meta) if isinstance(meta, dict) else None

    def _set_aside_file(self, kind: str, key: str, err: DamagedArtefact) -> None:
        """Move one damaged file of a stage (not the whole stage) to ``.damaged/`` and tell the user."""
        target = self._move_aside(err.path, f"{kind}-{key}-{{stamp}}-{err.path.name}")
        if target is None:  # missing, or another process set it aside first
            warn(f"cache: {err.path} is damaged ({err.why}); measuring the stage again")
            return
        warn(f"cache: {err.path} is damaged ({err.why}); moved it to {target} and measuring the stage again")
