"""Users' own networks: ``model.name: "pkg.module:make_net"`` in a spec, or ``sltsearch.run(spec, model=fn)``.

The callable is called as ``fn(input_shape, num_classes, options)`` (plus ``make_neuron=`` when it takes a
parameter of that name: a constructor of the spec's ``model.neuron``) and returns a spikingjelly multi-step
network, or any torch module with spikingjelly neurons, that maps [T, B, *input_shape] to
[T, B, num_classes]. sltsearch wraps it in a `SpikingClassifier` exactly like its own families. Its ANN twin
(``model.neuron.type: relu``) is derived the same way: ``make_neuron`` then builds ReLUs, and spikingjelly
neurons the builder makes itself are swapped for ReLUs (`sltsearch.models.twin`). Import paths
are looked up on sys.path and, after it, the current folder (so `sltsearch run` finds a project's modules).

A spec the user hands to `sltsearch run` (a file or a `Spec`) is theirs: its import path is code they chose.
A spec read from a folder (a run folder, an export) is data: inside `reading(folder, trust_code)` an import
path is refused with one line naming the module (`UntrustedCode`) unless the caller trusts it, or this process
already resolved that very name from a spec of the user's own (it wrote the folder in this session, or
registered the callable). Even when trusted, the folder itself is never searched for the module: entries of
sys.path inside it ('' and the current folder included, when that is the folder) are left out of the import.

`check_network` runs before the first trial and turns every way such a network can break the rules into
one `SpecError` line. `code_fingerprint` names the code a cached stage was trained with: a hash of the
source files the callable was loaded from (its whole top-level package, so edits to helper modules count)
or the ``model.version`` the user sets. The hash is taken when sltsearch first sees a function object, so
it always describes the code that actually runs (a module edited but not re-imported keeps its old hash).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sltsearch.errors import SpecError, UserError, one_line

IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
# callables handed to `sltsearch.run(model=...)` in this process, by the name written into the spec
PYTHON_MODELS: dict[str, Callable[..., nn.Module]] = {}
# id(function) -> (function, fingerprint taken when it was first seen); the function is kept so ids stay unique
_FINGERPRINTS: dict[int, tuple[Callable[..., Any], str]] = {}
_MAX_SOURCE_FILES = 2000


class UntrustedCode(UserError):
    """A spec read from a folder names a user's module: resolving it would import and run that code."""


@dataclass(frozen=True)
class _Reading:
    folder: Path  # resolved; never searched for modules
    trusted: bool


# the folders being read now (innermost last); process-wide, not per thread: a reader's worker threads obey it
_READING: list[_Reading] = []
# import paths resolved from specs of the user's own in this process: a folder naming them runs nothing new
_SESSION_NAMES: set[str] = set()


@contextmanager
def reading(folder: str | Path, trust_code: bool) -> Iterator[None]:
    """While a command reads ``folder`` (a run folder or an export), an import path its spec names is refused
    unless ``trust_code``; the folder is never searched for modules. Nested readings: the innermost decides."""
    _READING.append(_Reading(Path(folder).resolve(), bool(trust_code)))
    try:
        yield
    finally:
        _READING.pop()


def check_allowed(name: str, where: str) -> None:
    """`UntrustedCode` when ``name`` is an import path that resolving now would import from an untrusted
    folder's spec (``where`` names the file that holds it); nothing for families, plugins and trusted names."""
    if not is_import_path(name) or name in PYTHON_MODELS or name in _SESSION_NAMES:
        return
    if _READING and not _READING[-1].trusted:
        module = name.partition(":")[0]
        raise UntrustedCode(
            f"{where} names Python module '{module}' (model.name {name}); building its model imports and runs "
            "that code: pass --trust-code (Python: trust_code=True) only if you trust that module"
        )


def is_import_path(name: str) -> bool:
    """True for ``module.path:attribute`` names (a user's network), False for registered family names."""
    return bool(IMPORT_PATH.match(name))


def register_callable(fn: Callable[..., nn.Module]) -> str:
    """Make ``fn`` reachable by name in this process; the name (``module:qualname``) goes into the spec."""
    if not callable(fn):
        raise SpecError(f"model=: expected a callable (input_shape, num_classes, options) -> nn.Module, got {fn!r}")
    inner = _unwrap(fn)
    module = getattr(inner, "__module__", None) or "__main__"
    qualname = re.sub(r"[^\w.]", "_", getattr(inner, "__qualname__", None) or type(inner).__name__)
    name = f"{module}:{qualname}" + ("_partial" if inner is not fn else "")
    PYTHON_MODELS[name] = fn
    return name


def resolve(name: str) -> Callable[..., nn.Module]:
    """The callable an import path names, with a one-line error for every way the lookup can fail."""
    if name in PYTHON_MODELS:
        return PYTHON_MODELS[name]
    folder = _READING[-1].folder if _READING else None
    check_allowed(name, f"the spec read from {folder}" if folder else "model.name")
    module_name, _, attr = name.partition(":")
    try:
        module = _import(module_name, folder)
    except ModuleNotFoundError as err:
        if err.name and module_name.split(".")[0] == err.name.split(".")[0] and module_name.startswith(err.name):
            if folder is not None:
                raise SpecError(
                    f"model.name: cannot import module '{module_name}' ({err}); sltsearch never imports from the "
                    f"folder it reads ({folder}): install the module or add its own folder to PYTHONPATH"
                ) from None
            raise SpecError(
                f"model.name: cannot import module '{module_name}' ({err}); install it or run from the folder "
                f"that holds it (or add that folder to PYTHONPATH)"
            ) from None
        raise SpecError(f"model.name: importing {module_name} failed: ModuleNotFoundError: {err}") from None
    except Exception as err:  # the user's module raised while importing
        raise SpecError(f"model.name: importing {module_name} failed: {one_line(err, limit=300)}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(f"model.name: module {module_name} has no attribute '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SpecError(f"model.name: {name} is a {type(obj).__name__}, not a callable that builds a network")
    if folder is None:
        _SESSION_NAMES.add(name)
    return obj


def _inside(entry: str, folder: Path) -> bool:
    try:
        path = Path(entry or os.getcwd()).resolve()
    except OSError:
        return False
    return path == folder or folder in path.parents


def _import(module_name: str, folder: Path | None) -> Any:
    """``importlib.import_module`` with the current folder after sys.path (a project's modules); with ``folder``
    (a folder being read), no sys.path entry inside it is searched, the current folder neither when it is."""
    if folder is None:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.append(os.getcwd())  # `sltsearch run` in a project folder finds that folder's modules
        return importlib.import_module(module_name)
    saved = list(sys.path)
    kept = [p for p in sys.path if not _inside(p, folder)]
    if not _inside(os.getcwd(), folder) and os.getcwd() not in kept and "" not in kept:
        kept.append(os.getcwd())
    sys.path[:] = kept
    try:
        return importlib.import_module(module_name)
    finally:
        sys.path[:] = saved + [p for p in sys.path if p not in saved and p not in kept]


def build_body(fn: Callable[..., Any], spec: Any, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Call a user's builder ``fn`` for a `ModelSpec` (its options, and its neuron when asked for)."""
    from sltsearch.models.neurons import neuron_factory

    kwargs: dict[str, Any] = {}
    if _takes(fn, "make_neuron"):
        kwargs["make_neuron"] = neuron_factory(spec.neuron)
    try:
        body = fn(tuple(input_shape), num_classes, dict(spec.options), **kwargs)
    except UserError:
        raise
    except Exception as err:
        raise SpecError(
            f"model {spec.name}: building the network for input {tuple(input_shape)}, {num_classes} classes "
            f"and options {dict(spec.options)} failed: {one_line(err, limit=300)}"
        ) from None
    if not isinstance(body, nn.Module):
        raise SpecError(f"model {spec.name}: returned a {type(body).__name__}; it must return a torch.nn.Module")
    return body


def _takes(fn: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


@torch.no_grad()
def check_network(model: nn.Module, sample: torch.Tensor, num_classes: int, name: str) -> None:
    """Rules a user's network must follow, checked on a 2-sample batch before the first trial.

    It has spikingjelly neurons (its ANN twin: the ReLUs that replaced them), at least one Conv/Linear layer
    sltsearch can prune, a forward that takes [T, B, ...] in multi-step mode (T = 1 for the twin) and an output
    of shape [T, B, num_classes].
    """
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.neuron import BaseNode

    from sltsearch.models.twin import has_activations
    from sltsearch.tickets.masks import prunable_layers

    body = getattr(model, "body", model)
    if getattr(model, "network", "snn") == "ann":
        if not has_activations(body):
            raise SpecError(
                f"model {name}: model.neuron.type relu asks for the network's ANN twin, but the network has no "
                f"spiking neurons to replace with ReLU; take make_neuron= in your builder or use spikingjelly "
                f"neuron modules as submodules"
            )
    elif not any(isinstance(m, BaseNode) for m in body.modules()):
        raise SpecError(
            f"model {name}: the network has no spiking neurons; use spikingjelly.activation_based.neuron nodes "
            f"(LIFNode, IFNode, ...) or take make_neuron= in your builder"
        )
    if not prunable_layers(body):
        raise SpecError(
            f"model {name}: the network has no Conv1d/Conv2d/Conv3d/Linear layer to prune; lottery tickets "
            f"are masks on those layers' weights"
        )
    was_training = model.training
    model.eval()
    seq = model.encoder(sample, model.time_steps)
    shape = list(seq.shape)
    try:
        out = body(seq)
    except UserError:
        raise
    except Exception as err:
        failed = one_line(err, limit=300)
        raise SpecError(
            f"model {name}: forward on a [T, B, ...] = {shape} input (multi-step mode) failed: {failed};"
            f" the network must take [T, B, *input_shape] (spikingjelly layer.* modules or SeqToANNContainer)"
        ) from None
    finally:
        functional.reset_net(model)
        model.train(was_training)
    expected = [shape[0], shape[1], num_classes]
    if not isinstance(out, torch.Tensor):
        raise SpecError(
            f"model {name}: forward returned a {type(out).__name__}; it must return one tensor [T, B, classes]"
        )
    if list(out.shape) != expected:
        raise SpecError(
            f"model {name}: forward on input {shape} returned shape {list(out.shape)}; expected "
            f"[T, B, num_classes] = {expected} (one output per time step, sltsearch averages over T)"
        )


def code_fingerprint(fn: Callable[..., Any], version: str | None, name: str) -> str:
    """``version:<v>`` when the user sets one, else ``sha256:<hash>`` of the code ``fn`` was loaded from."""
    if version:
        return f"version:{version}"
    seen = _FINGERPRINTS.get(id(fn))
    if seen is not None and seen[0] is fn:
        return seen[1]
    digest = _source_digest(_unwrap(fn))
    if digest is not None and _unwrap(fn) is not fn:  # a functools.partial: its bound arguments count too
        digest = hashlib.sha256((digest + repr(_bound_arguments(fn))).encode()).hexdigest()[:16]
    if digest is None:
        raise SpecError(
            f"model {name}: cannot read the source code of {name} to key its cached stages; set model.version "
            f"(any string you change whenever the network's code changes)"
        )
    fingerprint = f"sha256:{digest}"
    _FINGERPRINTS[id(fn)] = (fn, fingerprint)
    return fingerprint


def _unwrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The function under (nested) functools.partial objects."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def _bound_arguments(fn: Callable[..., Any]) -> list[Any]:
    bound: list[Any] = []
    while isinstance(fn, functools.partial):
        bound.append((fn.args, sorted(fn.keywords.items())))
        fn = fn.func
    return bound


def _source_digest(fn: Callable[..., Any]) -> str | None:
    files = source_files(fn)
    sha = hashlib.sha256()
    if files:
        root = _common_root(files)
        for path in files:
            sha.update(str(path.resolve().relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
        return sha.hexdigest()[:16]
    try:
        sha.update(inspect.getsource(fn).encode())
    except (OSError, TypeError):
        return None
    return sha.hexdigest()[:16]


def source_files(fn: Callable[..., Any]) -> list[Path]:
    """The .py files ``fn`` comes from: its top-level package's files, or its own module's file."""
    module = inspect.getmodule(fn)
    file = getattr(module, "__file__", None)
    if module is None or not file or not file.endswith(".py"):
        return []
    top = sys.modules.get(module.__name__.split(".")[0])
    dirs = list(getattr(top, "__path__", []) or [])
    if dirs and module.__name__ != "__main__":
        files = sorted(p for d in dirs for p in Path(d).rglob("*.py") if "__pycache__" not in p.parts)
        if 0 < len(files) <= _MAX_SOURCE_FILES:
            return files
    return [Path(file)]


def _common_root(files: list[Path]) -> Path:
    parents = [f.resolve().parent for f in files]
    root = parents[0]
    while not all(p == root or root in p.parents for p in parents):
        root = root.parent
    return root
