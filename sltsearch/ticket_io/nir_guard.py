"""`check_nir_file`: a ``ticket.nir`` from elsewhere is compared with the ticket's own graph before it is read.

A checksum only says the file is the one ``ticket.json`` lists; whoever wrote ``ticket.json`` could have
written both. So before ``nir.read`` (which loads every dataset, follows HDF5 links and external storage, and
hands the graph to a consumer that trusts it), the file's HDF5 structure is walked with h5py reading metadata
only: no soft, external or user-defined links, no external storage, no virtual datasets, no filters beyond
HDF5's own and LZF (a filter plugin is code), no attributes, and exactly the groups and datasets of the graph
`sltsearch.ticket_io.nir_export.ticket_graph` writes for the ticket's model, each of its shape and dtype. Only
then are the small values read: node types (known NIR types), edges (acyclic, as the ticket's), and every
integer and string field (strides, padding, shapes, time steps) equal to the ticket's, and every neuron
constant (tau, threshold, leak: a consumer asserts on them) within float rounding of it. Weights and biases are
not compared (evaluate measures what they do); their sizes are the model's, so nothing larger is allocated.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sltsearch.ticket_io.bundle import TicketFileError

# NIR node types (nir 1.0.4's ``type`` field); sltsearch writes a few, a consumer may know the rest
NODE_TYPES = frozenset({
    "Input", "Output", "Affine", "Linear", "Conv1d", "Conv2d", "AvgPool2d", "SumPool2d", "Flatten", "LIF", "IF",
    "LI", "CubaLIF", "CubaLI", "I", "Integrator", "Delay", "Scale", "Threshold", "NIRGraph",
})  # fmt: skip
# HDF5's built-in filters (deflate, shuffle, fletcher32, szip, nbit, scaleoffset) and h5py's LZF
_FILTERS = frozenset({1, 2, 3, 4, 5, 6, 32000})
_LEARNED = frozenset({"weight", "bias"})  # trained values: evaluate measures what they do; any other float is a
# neuron's constant the spec fixes (tau, thresholds, leak, resistance), and a consumer may assert on it
_META = "node/metadata/"  # free text sltsearch writes there may change between versions: only its form is checked


def _fail(path: Path, what: str) -> TicketFileError:
    return TicketFileError(f"{path}: {what}; it is not the graph of this ticket, refusing it (re-export the ticket)")


def _dtype_key(dtype: np.dtype) -> str:
    return "str" if h5py.check_string_dtype(dtype) is not None else dtype.str


def _layout(group: h5py.Group, prefix: str = "") -> dict[str, tuple[Any, ...]]:
    """name -> ("group", children) or ("dataset", shape, dtype) of a graph sltsearch wrote (trusted)."""
    out: dict[str, tuple[Any, ...]] = {}
    for name, obj in group.items():
        full = f"{prefix}{name}"
        if isinstance(obj, h5py.Group):
            out[full] = ("group", len(obj))
            out.update(_layout(obj, f"{full}/"))
        else:
            out[full] = ("dataset", tuple(obj.shape), _dtype_key(obj.dtype))
    return out


def _check_dataset(path: Path, name: str, ds: h5py.Dataset) -> None:
    if ds.is_virtual:
        raise _fail(path, f"dataset {name} is a virtual dataset (its data lives in other files)")
    if ds.external:
        raise _fail(path, f"dataset {name} keeps its data in external files ({ascii(ds.external[0][0])[:80]})")
    plist = ds.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in _FILTERS:
            raise _fail(path, f"dataset {name} needs HDF5 filter {code}, a plugin sltsearch does not load")


def _walk(path: Path, group: h5py.Group, prefix: str, expected: dict[str, tuple[Any, ...]], seen: set[str]) -> None:
    """Check ``group``'s links and objects against ``expected`` (metadata only; no data is read)."""
    if len(group.attrs):
        raise _fail(path, f"{prefix or '/'} carries HDF5 attributes, which a NIR graph has none of")
    for name in group:
        full = f"{prefix}{name}"
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.SoftLink | h5py.ExternalLink) or not isinstance(link, h5py.HardLink):
            raise _fail(path, f"{ascii(full)[:80]} is a {type(link).__name__}, not a group or dataset of the file")
        if full not in expected:
            raise _fail(path, f"it holds {ascii(full)[:80]}, which the ticket's graph has no place for")
        if full in seen:
            raise _fail(path, f"{full} is reached twice (a hard link)")
        seen.add(full)
        want = expected[full]
        obj = group.get(name)
        if isinstance(obj, h5py.Group) and want[0] == "group":
            if len(obj) > want[1]:
                raise _fail(path, f"group {full} holds {len(obj)} entries, the ticket's graph {want[1]}")
            _walk(path, obj, f"{full}/", expected, seen)
        elif isinstance(obj, h5py.Dataset) and want[0] == "dataset":
            if len(obj.attrs):
                raise _fail(path, f"dataset {full} carries HDF5 attributes, which a NIR graph has none of")
            _check_dataset(path, full, obj)
            shape, dtype = tuple(obj.shape), _dtype_key(obj.dtype)
            if (shape, dtype) != want[1:]:
                raise _fail(
                    path, f"dataset {full} is {dtype} of shape {shape}, the ticket's model has {want[2]} {want[1]}"
                )
        else:
            raise _fail(path, f"{full} is a {type(obj).__name__}, the ticket's graph has a {want[0]} there")


def _value(ds: h5py.Dataset) -> Any:
    value = ds[()]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [[v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in row] for row in value.tolist()]
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else value


def _cycle(edges: list[list[str]]) -> list[str] | None:
    """One cycle of the directed edges, or None."""
    succ: dict[str, list[str]] = {}
    for edge in edges:
        if len(edge) == 2:
            succ.setdefault(str(edge[0]), []).append(str(edge[1]))
    state: dict[str, int] = {}
    for start in succ:
        stack = [(start, iter(succ.get(start, [])))]
        trail = [start]
        state[start] = 1
        while stack:
            node, nexts = stack[-1]
            nxt = next(nexts, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                trail.pop()
            elif state.get(nxt) == 1:
                return [*trail[trail.index(nxt):], nxt]
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ.get(nxt, []))))
                trail.append(nxt)
    return None


def _check_values(path: Path, file: h5py.File, reference: h5py.File, expected: dict[str, tuple[Any, ...]]) -> None:
    """Node types, edges and every integer or string field equal to the ticket's graph (all small now)."""
    types = {n: _value(file[n]) for n, e in expected.items() if n.endswith("/type") and e[0] == "dataset"}
    for name, value in types.items():
        if value not in NODE_TYPES:
            raise _fail(path, f"{name.removesuffix('/type')} has node type {ascii(value)[:60]}, not a NIR node type")
    edges = "node/edges"
    if edges in expected:
        cycle = _cycle(_value(file[edges]))
        if cycle:
            raise _fail(path, f"its edges form a cycle ({' -> '.join(ascii(c)[1:-1][:30] for c in cycle[:6])})")
    for name, want in expected.items():
        if want[0] != "dataset" or name.startswith(_META) or name.rsplit("/", 1)[-1] in _LEARNED:
            continue
        what = name.removeprefix("node/nodes/").replace("/", ".")
        if want[2] != "str" and want[2][1] == "f":  # a neuron's constants (tau, threshold, leak): the spec's
            got, ref = np.asarray(file[name][()], dtype=np.float64), np.asarray(reference[name][()], np.float64)
            close = np.isclose(got, ref, rtol=1e-6, atol=0.0)  # NaN is never close (shapes: checked by _walk)
            if not close.all():
                at = int(np.argmin(close.reshape(-1)))
                bad, want_value = float(got.flat[at]), float(ref.flat[at])
                raise _fail(path, f"{what} holds {bad!r} where the ticket's model has {want_value!r}")
            continue
        got, ref = _value(file[name]), _value(reference[name])
        if got != ref:
            raise _fail(path, f"{what} is {ascii(got)[:60]}, the ticket's model has {ascii(ref)[:60]}")


def check_nir_file(path: str | Path, graph: Any) -> None:
    """Refuse ``path`` unless it is ``graph`` (the ticket's own NIR graph) up to its float values; h5py reads
    metadata first and the small integer and string fields after (see the module docstring)."""
    import nir

    path = Path(path)
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    with h5py.File(buffer, "r") as reference:
        expected = _layout(reference)
        try:
            file = h5py.File(path, "r")
        except OSError as err:
            raise _fail(path, f"not a readable HDF5 file ({' '.join(str(err).split())[:120]})") from None
        with file:
            try:
                seen: set[str] = set()
                _walk(path, file, "", expected, seen)
                missing = sorted(set(expected) - seen)
                if missing:
                    raise _fail(path, f"it lacks {missing[0]} of the ticket's graph")
                _check_values(path, file, reference, expected)
            except (OSError, KeyError, ValueError, RuntimeError, TypeError) as err:  # h5py on a damaged structure
                raise _fail(path, f"HDF5 structure unreadable ({type(err).__name__}: {str(err)[:120]})") from None
