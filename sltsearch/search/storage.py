"""Where a study lives: a journal file in the run folder (embedded, resumable; Optuna's file lock lets processes on
one machine share it) or an RDB URL (PostgreSQL) that processes on many machines share."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from sltsearch.errors import UserError
from sltsearch.search import journal
from sltsearch.spec import Spec
from sltsearch.system.secrets import check_url, mask_url

JOURNAL_FILE = "study.journal"


def driver_url(url: str) -> str:
    """``postgresql://`` means psycopg2 to SQLAlchemy; use psycopg 3 (the ``postgres`` extra) when only it is
    installed, so the URL users copy from their database works as it is."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in {"postgresql", "postgres"}:
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            return f"postgresql+psycopg://{rest}"
    return url


def make_storage(spec: Spec, run_dir: Path, storage_url: str | None) -> BaseStorage:
    url = storage_url or spec.search.storage
    if url is None:
        path = run_dir / JOURNAL_FILE
        lock = JournalFileSymlinkLock(str(path))
        journal.trim_torn_tail(path, lock)
        journal.check_journal(path)
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    check_url(url)  # a password with a raw '@' or space: refused before a driver prints a fragment of it

    def open_rdb() -> BaseStorage:
        return optuna.storages.RDBStorage(driver_url(url), engine_kwargs={"pool_pre_ping": True})

    try:
        for attempt in range(4):
            try:
                return open_rdb()
            except (IntegrityError, ProgrammingError):  # another worker made the schema at the same moment
                time.sleep(1.0 + attempt)
        return open_rdb()  # a fifth try, whose error is the user's to see
    except Exception as err:  # noqa: BLE001 - any driver/connection error is a user-fixable URL problem
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"search.storage: cannot open '{mask_url(url)}': {mask_url(message)}") from None
