"""The rung tables of a run folder, read incrementally: what one MO-ASHA decision needs, not the whole table.

A decision at rung r needs every trial's main ticket at round r: a few columns of a few rows per trial.
Reading the whole ticket table for it (``load_tickets``) costs O(table) per decision, and the table grows with
the search. `RungView` keeps, per process, the rung rows of every table file it has read (only the columns the
rule uses) with the file's identity (inode, size, mtime); a decision lists the table's files, re-reads only
those that changed since, and answers from memory. Part files are replaced atomically (temp file + rename)
whenever their trial's rows change, so a rewrite shows as a new identity: a new mtime, where the inode alone
could be a reused one.

A file whose mtime was less than ``racy_s`` seconds old when it was read is read again at the next decision
(as git treats "racily clean" index entries): a rewrite within the file system's timestamp granularity, or
from a host whose clock lags a little, cannot hide behind an identity that looks unchanged. So the view sees
every worker's tickets, and a resumed search (a new process) starts from the run folder, never from memory.
On NFS a stat may be served from the client's attribute cache (``actimeo``, seconds), so a decision there can
see another host's newest ticket that much later, as a directory listing of the whole-table read could.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
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
    keys: list[tuple[int, int]] = field(default_factory=list)  # (rung, trial) of its rung rows


def table_entries(run_dir: Path) -> list[tuple[str, os.stat_result]]:
    """The table's files with their stat: the legacy file and the parts (as `load_tickets` finds them)."""
    found: list[tuple[str, os.stat_result]] = []
    legacy = os.path.join(run_dir, LEGACY_FILE)
    with contextlib.suppress(FileNotFoundError):
        found.append((legacy, os.stat(legacy)))
    with contextlib.suppress(FileNotFoundError), os.scandir(os.path.join(run_dir, TICKETS_DIR)) as entries:
        for entry in entries:
            if entry.name.startswith("trial-") and entry.name.endswith(".parquet"):
                with contextlib.suppress(FileNotFoundError):  # replaced or removed meanwhile
                    found.append((entry.path, entry.stat()))
    return found


class RungView:
    """Rung rows of one run folder's ticket table, kept up to date by re-reading only changed files."""

    def __init__(self, run_dir: str | Path, metrics: Sequence[str], racy_s: float = RACY_S) -> None:
        self.run_dir = Path(run_dir)
        self.metrics = list(dict.fromkeys(metrics))
        self.columns = list(dict.fromkeys([*KEY_COLUMNS, *metrics]))
        self.racy_s = racy_s
        self.legacy = os.path.join(self.run_dir, LEGACY_FILE)
        self.files: dict[str, _File] = {}
        # rung -> trial -> file -> (file has a status column, row): usually one file per trial
        self.index: dict[int, dict[int, dict[str, tuple[bool, dict[str, Any]]]]] = {}
        self.with_status = 0  # files with a status column
        self.reads = 0  # files read so far (for tests and the benchmark)
        self._lock = threading.Lock()  # one decision at a time updates the view

    def __getstate__(self) -> dict[str, Any]:
        # pickled (e.g. with a Tune scheduler): the copy starts empty and reads the run folder afresh
        return {**self.__dict__, "files": {}, "index": {}, "with_status": 0, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def _order(self, path: str) -> tuple[int, str]:
        """Table order: the legacy file first, then the parts by name (a later file's row wins)."""
        return (0, "") if path == self.legacy else (1, path)

    def _forget(self, path: str) -> None:
        known = self.files.pop(path)
        self.with_status -= known.has_status
        for rung, trial in known.keys:
            by_file = self.index[rung][trial]
            by_file.pop(path, None)
            if not by_file:
                del self.index[rung][trial]

    def _read(self, path: str, st: os.stat_result) -> None:
        identity = (st.st_ino, st.st_size, st.st_mtime_ns)
        settled = time.time() - st.st_mtime_ns / 1e9 > self.racy_s  # judged on the stat taken before the read
        try:
            data = read_columns(Path(path), self.columns)
        except FileNotFoundError:
            return
        self.reads += 1
        loaded = _File(identity, settled, "status" in data)
        self.with_status += loaded.has_status
        self.files[path] = loaded
        if "round" not in data or "kind" not in data or "trial" not in data:
            return
        for i in range(len(data["trial"])):
            if data["kind"][i] not in RUNG_KINDS or data["round"][i] is None or data["trial"][i] is None:
                continue
            row = {c: (data[c][i] if c in data else None) for c in self.columns}
            for metric in self.metrics:  # a missing value reads as NaN, as in a DataFrame of the table
                row[metric] = math.nan if row[metric] is None else row[metric]
            key = (int(row["round"]), int(row["trial"]))
            loaded.keys.append(key)
            self.index.setdefault(key[0], {}).setdefault(key[1], {})[path] = (loaded.has_status, row)

    def refresh(self) -> None:
        """Bring the view up to date with the run folder: read new and changed files, forget removed ones."""
        present = set()
        for path, st in table_entries(self.run_dir):
            present.add(path)
            known = self.files.get(path)
            if known is not None:
                if known.settled and known.identity == (st.st_ino, st.st_size, st.st_mtime_ns):
                    continue
                self._forget(path)
            self._read(path, st)
        for path in [p for p in self.files if p not in present]:
            self._forget(path)

    def rows(self, rung: int, exclude_trial: int | None = None) -> list[dict[str, Any]]:
        """Every trial's main ticket at ``rung`` that is a rung entry (finished or running), one per trial,
        as `mo_asha.rung_rows` finds them in the whole table; reads what changed first."""
        with self._lock:
            return self._rows(rung, exclude_trial)

    def _rows(self, rung: int, exclude_trial: int | None) -> list[dict[str, Any]]:
        self.refresh()
        any_status = self.with_status > 0
        out = []
        for trial, by_file in self.index.get(rung, {}).items():
            if trial == exclude_trial:
                continue
            if len(by_file) == 1:
                has_status, row = next(iter(by_file.values()))
            else:  # the same ticket in an older legacy file and in a part: the part's row wins
                has_status, row = by_file[max(by_file, key=self._order)]
            if any_status and not (has_status and row["status"] in RUNG_STATUSES):
                continue  # a file without a status column, among files with one: its rows have no status
            out.append(row)
        return out
