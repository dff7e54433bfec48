"""Run a NIR graph in the consumer it was written for, through that consumer's public import API only.

This is what a user of snnTorch, Sinabs or Rockpool would write after ``nir.read``; `run_graph` returns the
mean readout over the T steps, the number sltsearch's own model predicts from.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

import torch

from sltsearch.errors import UserError

Runner = Callable[[torch.Tensor], torch.Tensor]  # [B, *graph input] -> mean readout [B, classes]


def _quiet() -> contextlib.AbstractContextManager[Any]:
    """snnTorch prints progress lines while importing; a check's output stays ours."""
    return contextlib.redirect_stdout(io.StringIO())


def _snntorch(graph: Any, steps: int) -> Runner:
    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    with _quiet():
        net = import_from_nir(graph)

    def run(x: torch.Tensor) -> torch.Tensor:
        utils.reset(net)
        total = torch.zeros(())
        with torch.no_grad(), _quiet():
            for _ in range(steps):
                out, _state = net(x)
                total = total + out
        return total / steps

    return run


def _sinabs(graph: Any, steps: int) -> Runner:
    import sinabs

    net = sinabs.from_nir(graph, num_timesteps=steps)

    def run(x: torch.Tensor) -> torch.Tensor:
        sinabs.reset_states(net)
        batch = x.shape[0]
        seq = x.unsqueeze(1).expand(batch, steps, *x.shape[1:]).reshape(batch * steps, *x.shape[1:])
        with torch.no_grad():
            out = net(seq)
        out = out[0] if isinstance(out, tuple) else out
        return out.reshape(batch, steps, -1).mean(1)

    return run


def _rockpool(graph: Any, steps: int) -> Runner:
    from sltsearch.compat.rockpool import rockpool_from_nir

    net = rockpool_from_nir()(graph)

    def run(x: torch.Tensor) -> torch.Tensor:
        seq = x.unsqueeze(1).expand(x.shape[0], steps, *x.shape[1:]).contiguous()
        with torch.no_grad():
            out = net(seq)
        out = out[0] if isinstance(out, tuple) else out
        return out.mean(1)

    return run


_IMPORTERS: dict[str, Callable[[Any, int], Runner]] = {"snntorch": _snntorch, "sinabs": _sinabs, "rockpool": _rockpool}
_PACKAGES = {"snntorch": "snntorch==1.0.0", "sinabs": "sinabs==3.1.3", "rockpool": "rockpool==3.1.0"}


def import_graph(graph: Any, target: str, steps: int) -> Runner:
    """The graph imported by ``target``'s public API, as a function of a batch (consumer errors pass through)."""
    if target not in _IMPORTERS:
        raise UserError(f"--target: '{target}' is not one of {', '.join(_IMPORTERS)}")
    try:
        return _IMPORTERS[target](graph, steps)
    except ImportError as err:
        raise UserError(
            f"--target {target} needs {_PACKAGES[target]} ({err.name} is missing): pip install 'sltsearch[nir]'"
        ) from None
