"""Content-addressed artefact cache: every stage is named by a hash of what determines it.

Writes are atomic (temp file + rename) and guarded by a file lock, so several trials or processes
sharing one cache folder compute a stage once and never see a half-written artefact. Tensors are stored
as safetensors; metadata as JSON. A stage is complete when its ``meta.json`` exists (written last).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file


def content_key(parts: Any) -> str:
    """A 16-hex-digit hash of any JSON-serialisable description of a stage."""
    payload = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    data = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    _atomic_write(path, lambda tmp: save_file(data, str(tmp)))


def save_json(path: Path, data: Any) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str)))


class StageCache:
    """Stages stored as folders ``root/<kind>/<key>/``; ``root=None`` keeps nothing (always recompute)."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self.hits = 0
        self.misses = 0

    def folder(self, kind: str, key: str) -> Path | None:
        return None if self.root is None else self.root / kind / key

    def has(self, kind: str, key: str) -> bool:
        folder = self.folder(kind, key)
        return folder is not None and (folder / "meta.json").is_file()

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
        """The stage's metadata and its tensor files (file stem -> tensors); ``stems`` picks some files."""
        folder = self.folder(kind, key)
        assert folder is not None
        meta = json.loads((folder / "meta.json").read_text())
        paths = (
            [folder / f"{s}.safetensors" for s in stems] if stems else sorted(folder.glob("*.safetensors"))
        )
        tensors = {p.stem: load_file(str(p)) for p in paths}
        self.hits += 1
        return meta, tensors

    def store(
        self, kind: str, key: str, meta: dict[str, Any], tensors: dict[str, dict[str, torch.Tensor]]
    ) -> None:
        self.misses += 1
        folder = self.folder(kind, key)
        if folder is None:
            return
        for stem, group in tensors.items():
            save_tensors(folder / f"{stem}.safetensors", group)
        save_json(folder / "meta.json", meta)
