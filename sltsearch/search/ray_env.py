"""Ray's process-wide settings that must be fixed before Ray is imported.

A private local Ray (no ``--address``) serves only this machine, so it binds to 127.0.0.1: its GCS, raylet and
workers are then unreachable from the network. Ray offers no bind-address option for that; passing
``127.0.0.1`` as the node address is rewritten by Ray to the machine's routable interface. What works is the
switch Ray reads when it is imported (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the single-machine mode it
uses on macOS), under which every address Ray picks is 127.0.0.1.

This is never set when joining a cluster (``--address``): there the driver's address must be the one its
node's raylet registered. When Ray was already imported in this process (a user's own session), nothing is
changed and Ray binds as it was configured.

A private Ray also keeps Ray's token authentication, with a token made for it and held in the environment
(inherited by its workers) instead of the ``~/.ray/auth_token`` file Ray would create in the home folder.
Its mode is set too, before Ray reads its configuration, so Ray does not print a line about it.
"""

from __future__ import annotations

import os
import secrets
import sys

SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
AUTH = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def private_ray_env(address: str | None) -> bool:
    """Make a private local Ray bind to 127.0.0.1 and keep a token of its own; True when this call chose the
    binding (Ray not yet imported)."""
    if address or "ray" in sys.modules:
        return False
    if not any(os.environ.get(k) for k in AUTH):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        os.environ["RAY_AUTH_MODE"] = "token"
    if SINGLE_MACHINE in os.environ:
        return False
    os.environ[SINGLE_MACHINE] = "0"
    return True
