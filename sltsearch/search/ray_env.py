"""Ray's process-wide settings that must be fixed before Ray is imported.

A private local Ray (no ``--address``) serves only this machine, so it binds to 127.0.0.1: its GCS, raylet and
workers are then unreachable from the network. Ray offers no bind-address option for that; passing
``127.0.0.1`` as the node address is rewritten by Ray to the machine's routable interface. What works is the
switch Ray reads when it is imported (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the single-machine mode it
uses on macOS), under which every address Ray picks is 127.0.0.1.

This is never set when joining a cluster (``--address``): there the driver's address must be the one its
node's raylet registered. When Ray was already imported in this process (a user's own session), nothing is
changed and Ray binds as it was configured.
"""

from __future__ import annotations

import os
import sys

SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def prefer_loopback(address: str | None) -> bool:
    """Make a private local Ray bind to 127.0.0.1; True when this call set it (Ray not yet imported)."""
    if address or "ray" in sys.modules or SINGLE_MACHINE in os.environ:
        return False
    os.environ[SINGLE_MACHINE] = "0"
    return True
