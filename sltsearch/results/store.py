"""`tickets.parquet`: one row per ticket of every trial, appended atomically under a file lock.

Several trials (threads, processes, or workers on one shared run folder) may append at once; each append
rewrites the file through a temp file + rename, so a reader never sees a half-written table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from filelock import FileLock

from sltsearch.cache import _atomic_write
from sltsearch.ticket import Ticket

TICKETS_FILE = "tickets.parquet"


class TicketStore:
    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / TICKETS_FILE
        self._lock = FileLock(str(self.path) + ".lock")

    def append(self, tickets: list[Ticket]) -> None:
        if not tickets:
            return
        new = pd.DataFrame([t.row() for t in tickets])
        with self._lock:
            frame = (
                pd.concat([pd.read_parquet(self.path), new], ignore_index=True) if self.path.exists() else new
            )
            _atomic_write(self.path, lambda tmp: frame.to_parquet(tmp, index=False))

    def load(self) -> pd.DataFrame:
        return load_tickets(self.path.parent)


def load_tickets(run_dir: str | Path) -> pd.DataFrame:
    """The ticket table of a run folder (empty with no rows yet)."""
    path = Path(run_dir) / TICKETS_FILE
    if not path.exists():
        return pd.DataFrame()
    return pd.read_parquet(path)
