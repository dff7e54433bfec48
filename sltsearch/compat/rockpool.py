"""Rockpool's NIR import without the samna shim running pip.

Rockpool 3.1.0 imports ``samna`` when it is imported (to see which chip backends are there). The ``samna``
that PyPI installs (as a dependency of Sinabs) is a shim whose import runs ``pip install`` of the real samna
from another index: ten seconds of failed network calls where that index is unreachable, and an install
where it is. sltsearch maps no network to a chip, so Rockpool is imported with ``samna`` hidden (Rockpool
then reports its samna backends missing, which is true); an already imported samna is left as it is.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def rockpool_from_nir() -> Callable[[Any], Any]:
    """``rockpool.nn.modules.from_nir``, imported without importing samna."""
    hide = "samna" not in sys.modules
    if hide:
        sys.modules["samna"] = None  # type: ignore[assignment]  # `import samna` raises ImportError
    try:
        from rockpool.nn.modules import from_nir
    finally:
        if hide:
            del sys.modules["samna"]
    return from_nir
