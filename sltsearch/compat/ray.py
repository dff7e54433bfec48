"""Ray internals sltsearch relies on (pinned by tests/test_compat.py).

A private local Ray must keep its session files (unix sockets, logs) out of the shared ``/tmp/ray``: only
``ray.init``'s private ``_temp_dir`` argument says where they go.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def init_local(num_cpus: int, num_gpus: int, temp_dir: Path, **options: Any) -> None:
    """Start a new local Ray for this process only (never attach to another job's), its files in ``temp_dir``."""
    import ray

    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, _temp_dir=str(temp_dir), **options)
