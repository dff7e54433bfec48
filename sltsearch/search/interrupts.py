"""SIGTERM ends a search as Ctrl-C does: the running trials marked interrupted, one line, a rerun resumes.

Python's default for SIGTERM kills the process where it stands (its trial goes stale and runs again on the
next run), and a private Ray installs its own handler, which tears the node down under Tune and aborts with a
stack dump. While a search runs, SIGTERM raises `Terminated` (a `KeyboardInterrupt`) in the main thread
instead, once: a second SIGTERM while the search cleans up is ignored (SIGKILL still ends it at once).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

EXIT_CODE = 128 + signal.SIGTERM  # the shell's code for a process ended by SIGTERM


class Terminated(KeyboardInterrupt):
    """The search was asked to stop with SIGTERM."""


_received = threading.Event()  # SIGTERM came (a library may turn `Terminated` into a plain KeyboardInterrupt)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the cleanup that follows is not cut short
    _received.set()
    raise Terminated


def arm() -> None:
    """Make SIGTERM raise `Terminated` (again: after a library installed its own handler, e.g. `ray.init`)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises `Terminated`; the previous handler is restored after it."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield
        return
    previous: Any = signal.getsignal(signal.SIGTERM)
    _received.clear()
    arm()
    try:
        yield
    except KeyboardInterrupt as err:
        if _received.is_set() and not isinstance(err, Terminated):  # Ray Tune re-raises its own
            raise Terminated from err
        raise
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
