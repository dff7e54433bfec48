"""The rung tables of a run folder, read incrementally: what one MO-ASHA decision needs, not the whole table.

A decision at rung r needs every trial's main ticket at round r: a few columns of a few rows per trial.
Reading the whole ticket table for it (``load_tickets``) costs O(table) per decision, and the table grows with
the search. `RungView` keeps, per process, the rung rows of every table file it has read (only the columns the
rule uses) with the file's identity (inode, size, mtime); a decision lists the table's files, re-reads only
those that changed since, and answers from memory. Part files are replaced atomically (a new inode) whenever
their trial's rows change, so a changed identity is a changed file.

A file whose mtime was less than ``racy_s`` seconds old when it was read is read again at the next decision
(as git treats "racily clean" index entries): a rewrite within the file system's timestamp granularity, or
from a host whose clock lags a little, cannot hide behind an identity that looks unchanged. So the view sees
every worker's tickets, and a resumed search (a new process) starts from the run folder, never from memory.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sltsearch.results.store import LEGACY_FILE, TICKETS_DIR, read_columns
from sltsearch.search.mo_asha import RUNG_KINDS, RUNG_STATUSES

KEY_COLUMNS = ("trial", "round", "kind", "status")
RACY_S = 2.0


@dataclass
class _File:
    identity: tuple[int, int, int]  # inode, size, mtime (ns)
    settled: bool  # old enough when read that a later rewrite is sure to change the identity
    has_status: bool
    rungs: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)  # rung -> trial -> row


def table_entries(run_dir: Path) -> list[tuple[Path, os.stat_result]]:
    """The table's files with their stat, legacy file first, then the parts by trial (as `load_tickets`)."""
    found: list[tuple[Path, os.stat_result]] = []
    with contextlib.suppress(FileNotFoundError):
        found.append((run_dir / LEGACY_FILE, os.stat(run_dir / LEGACY_FILE)))
    parts = []
    try:
        with os.scandir(run_dir / TICKETS_DIR) as entries:
            for entry in entries:
                if entry.name.startswith("trial-") and entry.name.endswith(".parquet"):
                    try:
                        parts.append((entry.name, Path(entry.path), entry.stat()))
                    except FileNotFoundError:  # replaced or removed meanwhile
                        continue
    except FileNotFoundError:
        pass
    parts.sort(key=lambda item: item[0])
    return found + [(path, st) for _, path, st in parts]


class RungView:
    """Rung rows of one run folder's ticket table, kept up to date by re-reading only changed files."""

    def __init__(self, run_dir: str | Path, metrics: Sequence[str], racy_s: float = RACY_S) -> None:
        self.run_dir = Path(run_dir)
        self.metrics = list(dict.fromkeys(metrics))
        self.columns = list(dict.fromkeys([*KEY_COLUMNS, *metrics]))
        self.racy_s = racy_s
        self.files: dict[Path, _File] = {}
        self.reads = 0  # files read so far (for tests and the benchmark)

    def _load(self, path: Path, st: os.stat_result) -> _File | None:
        identity = (st.st_ino, st.st_size, st.st_mtime_ns)
        settled = time.time() - st.st_mtime_ns / 1e9 > self.racy_s  # taken before the read, like git
        try:
            data = read_columns(path, self.columns)
        except FileNotFoundError:
            return None
        self.reads += 1
        n = len(data.get("trial", []))
        has_status = "status" in data
        loaded = _File(identity, settled, has_status)
        if n == 0 or "round" not in data or "kind" not in data:
            return loaded
        for i in range(n):
            if data["kind"][i] not in RUNG_KINDS or data["round"][i] is None or data["trial"][i] is None:
                continue
            row = {c: (data[c][i] if c in data else None) for c in self.columns}
            for metric in self.metrics:  # a missing value reads as NaN, as in a DataFrame of the table
                row[metric] = math.nan if row[metric] is None else row[metric]
            loaded.rungs.setdefault(int(row["round"]), {})[int(row["trial"])] = row
        return loaded

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "files": {}}  # pickled (e.g. with a Tune scheduler): the copy reads afresh

    def refresh(self) -> None:
        """Bring the view up to date with the run folder: read new and changed files, forget removed ones."""
        seen: dict[Path, _File] = {}
        for path, st in table_entries(self.run_dir):
            known = self.files.get(path)
            if known is not None and known.settled and known.identity == (st.st_ino, st.st_size, st.st_mtime_ns):
                seen[path] = known
                continue
            loaded = self._load(path, st)
            if loaded is not None:
                seen[path] = loaded
        self.files = seen

    def rows(self, rung: int, exclude_trial: int | None = None) -> list[dict[str, Any]]:
        """Every trial's main ticket at ``rung`` that is a rung entry (finished or running), one per trial,
        as `mo_asha.rung_rows` finds them in the whole table; reads what changed first."""
        self.refresh()
        any_status = any(f.has_status for f in self.files.values())
        latest: dict[int, tuple[bool, dict[str, Any]]] = {}
        for part in self.files.values():  # in table order: a later file's row replaces an earlier one's
            for trial, row in part.rungs.get(rung, {}).items():
                latest.pop(trial, None)
                latest[trial] = (part.has_status, row)
        out = []
        for trial, (has_status, row) in latest.items():
            if trial == exclude_trial:
                continue
            if any_status and not (has_status and row["status"] in RUNG_STATUSES):
                continue  # a file without a status column, among files with one: its rows have no status
            out.append(row)
        return out
