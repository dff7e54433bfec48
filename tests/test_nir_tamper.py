"""A tampered ``ticket.nir`` (its checksum updated to match) is refused in one line before it is read, and
`evaluate` states and bounds its worst-case memory (issue 32, item 4)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import one_trial_run, tiny_spec_dict, write_spec
from typer.testing import CliRunner

import sltsearch
from sltsearch.cli import app
from sltsearch.errors import UserError
from sltsearch.system.files import sha256_file

pytest.importorskip("nir")
pytest.importorskip("snntorch")
runner = CliRunner()


@pytest.fixture(scope="module")
def nir_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nirtamper")
    run = one_trial_run(root, model={"name": "spiking_cnn", "preset": "deployable", "time_steps": 2})
    return sltsearch.export(run, ticket="t0000r01", format="nir", out=root / "export").path


def resign(folder: Path) -> None:
    """Record every listed file's current size and sha256 in ticket.json, as a careful forger would."""
    manifest = json.loads((folder / "ticket.json").read_text())
    for name, entry in manifest["files"].items():
        entry.update(sha256=sha256_file(folder / name), bytes=(folder / name).stat().st_size)
    (folder / "ticket.json").write_text(json.dumps(manifest))


def tampered(export: Path, tmp_path: Path, change: Callable[[h5py.File, Path], None]) -> Path:
    folder = tmp_path / "gift"
    shutil.copytree(export, folder)
    with h5py.File(folder / "ticket.nir", "r+") as f:
        change(f, tmp_path)
    resign(folder)
    return folder


def _replace(f: h5py.File, name: str, **create: object) -> None:
    del f[name]
    f.create_dataset(name, **create)


def _outside_weights(f: h5py.File, tmp: Path) -> None:
    """body_9's weights kept in a file outside the folder (HDF5 external storage)."""
    shape = f["node/nodes/body_9/weight"].shape
    raw = tmp / "elsewhere.bin"
    np.full(shape, 7.0, dtype=np.float32).tofile(raw)
    _replace(f, "node/nodes/body_9/weight", shape=shape, dtype=np.float32, external=[(str(raw), 0, raw.stat().st_size)])


def _virtual_weights(f: h5py.File, tmp: Path) -> None:
    shape = f["node/nodes/body_9/weight"].shape
    with h5py.File(tmp / "source.h5", "w") as src:
        src.create_dataset("w", data=np.zeros(shape, dtype=np.float32))
    layout = h5py.VirtualLayout(shape=shape, dtype=np.float32)
    layout[:] = h5py.VirtualSource(str(tmp / "source.h5"), "w", shape=shape)
    del f["node/nodes/body_9/weight"]
    f.create_virtual_dataset("node/nodes/body_9/weight", layout)


def _external_link(f: h5py.File, tmp: Path) -> None:
    with h5py.File(tmp / "other.h5", "w") as other:
        other.create_dataset("w", data=np.zeros(f["node/nodes/body_9/weight"].shape, dtype=np.float32))
    del f["node/nodes/body_9/weight"]
    f["node/nodes/body_9/weight"] = h5py.ExternalLink(str(tmp / "other.h5"), "/w")


def _soft_link(f: h5py.File, tmp: Path) -> None:
    del f["node/nodes/body_9/bias"]
    f["node/nodes/body_9/bias"] = h5py.SoftLink("/node/nodes/body_0/bias")


def _cycle(f: h5py.File, tmp: Path) -> None:
    edges = f["node/edges"][()]
    edges[-1] = [b"body_9", b"body_0"]  # body_0 -> ... -> body_9 -> body_0
    _replace(f, "node/edges", data=edges, dtype=h5py.string_dtype())


TAMPERS = {
    "unknown node type": (
        lambda f, _: _replace(f, "node/nodes/body_3/type", data="Teleport", dtype=h5py.string_dtype()),
        "not a NIR node type",
    ),
    "another known node type": (
        lambda f, _: _replace(f, "node/nodes/body_3/type", data="SumPool2d", dtype=h5py.string_dtype()),
        "body_3.type is 'SumPool2d'",
    ),
    "edge cycle": (_cycle, "cycle"),
    "stride 0": (lambda f, _: _replace(f, "node/nodes/body_0/stride", data=np.array([0, 0])), "stride is [0, 0]"),
    "huge input shape": (
        lambda f, _: _replace(f, "node/nodes/input/shape", data=np.array([1, 100000, 100000])),
        "input.shape is [1, 100000, 100000]",
    ),
    "gzip bomb": (  # 3.6 GB declared, a few KB on disk
        lambda f, _: _replace(f, "node/nodes/body_9/weight", shape=(30000, 30000), dtype=np.float32,
                              chunks=(1000, 1000), compression="gzip", fillvalue=0.0),  # fmt: skip
        "of shape (30000, 30000)",
    ),
    "external storage": (_outside_weights, "external files"),
    "virtual dataset": (_virtual_weights, "virtual dataset"),
    "external link": (_external_link, "ExternalLink"),
    "soft link": (_soft_link, "SoftLink"),
    "extra group": (lambda f, _: f.create_group("node/nodes/body_10"), "holds 11 entries, the ticket's graph 10"),
    "renamed node": (lambda f, _: f.move("node/nodes/body_6", "node/nodes/body_66"), "no place for"),
    "missing node": (lambda f, _: f.__delitem__("node/nodes/body_6"), "lacks node/nodes/body_6"),
    "attribute": (lambda f, _: f["node/nodes/body_0"].attrs.__setitem__("x", np.zeros(10)), "attributes"),
    "NaN neuron leak": (  # a fuzz find: snnTorch's import asserts on it (v_leak must be 0)
        lambda f, _: _replace(f, "node/nodes/body_6/v_leak", data=np.full(f["node/nodes/body_6/v_leak"].shape, np.nan,
                                                                          dtype=f["node/nodes/body_6/v_leak"].dtype)),
        "body_6.v_leak holds nan where the ticket's model has 0.0",
    ),
    "other neuron threshold": (
        lambda f, _: _replace(f, "node/nodes/body_6/v_threshold", data=f["node/nodes/body_6/v_threshold"][()] * 2),
        "body_6.v_threshold holds 2.0 where the ticket's model has 1.0",
    ),
    "float where ints": (
        lambda f, _: _replace(f, "node/nodes/body_0/padding", data=np.array([1.0, 1.0])), "padding is <f8"
    ),
}


@pytest.mark.parametrize("case", list(TAMPERS))
def test_a_tampered_graph_is_refused_in_one_line_before_it_is_read(nir_export: Path, tmp_path: Path, case: str) -> None:
    change, needle = TAMPERS[case]
    folder = tampered(nir_export, tmp_path, change)
    result = runner.invoke(app, ["evaluate", str(folder), "--target", "snntorch"])
    assert result.exit_code == 2, (case, result.output, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "Traceback" not in result.output, result.stderr
    assert "ticket.nir" in errors[0] and needle in errors[0], errors[0]
    with pytest.raises(UserError, match="not the graph of this ticket"):
        sltsearch.evaluate(folder, target="snntorch")


def test_the_untampered_graph_passes_the_check(nir_export: Path) -> None:
    import nir

    from sltsearch.ticket_io.nir_export import ticket_graph
    from sltsearch.ticket_io.nir_guard import check_nir_file

    model, info = sltsearch.load_ticket(nir_export)
    check_nir_file(nir_export / "ticket.nir", ticket_graph(model, info.manifest["model_io"], "snntorch")[0])
    assert nir.read(str(nir_export / "ticket.nir")).nodes["body_3"].__class__.__name__ == "AvgPool2d"


def _with_steps(export: Path, tmp_path: Path, steps: int) -> Path:
    folder = tmp_path / "gift"
    shutil.copytree(export, folder)
    manifest = json.loads((folder / "ticket.json").read_text())
    manifest["spec"]["model"]["time_steps"] = steps
    manifest["model_io"]["time_steps"] = steps
    (folder / "ticket.json").write_text(json.dumps(manifest))
    return folder


def test_evaluate_states_its_worst_case_memory_and_refuses_more_than_allowed(nir_export: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(nir_export)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("worst-case memory 0.0"), result.output
    folder = _with_steps(nir_export, tmp_path, 1024)  # inside the allowed range of time steps
    for argv in (["evaluate", str(folder)], ["evaluate", str(folder), "--target", "snntorch"]):
        result = runner.invoke(app, argv)
        assert result.exit_code == 2, result.output
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and "T=1024" in errors[0] and "--max-memory-gb" in errors[0], result.stderr
    budgets = []
    with pytest.raises(UserError, match="more than the 0.001 GB allowed"):
        sltsearch.evaluate(nir_export, max_memory_gb=0.001, on_budget=budgets.append)
    assert budgets == []  # refused before anything ran
    result = runner.invoke(app, ["evaluate", str(nir_export), "--max-memory-gb", "0"])
    assert result.exit_code == 2 and "--max-memory-gb" in result.stderr


def test_the_worst_case_grows_with_batch_and_time_steps() -> None:
    from sltsearch.spec import load_spec
    from sltsearch.ticket_io.budget import worst_case_bytes

    spec = load_spec(write_spec_tmp(tiny_spec_dict()))
    io = {"input_shape": [1, 8, 8], "num_classes": 10, "frames": False, "time_steps": 2}
    small = worst_case_bytes(spec, io)
    steps = spec.model_copy(update={"model": spec.model.model_copy(update={"time_steps": 8})})
    assert small is not None and worst_case_bytes(steps, io) > 3 * small
    batch = spec.model_copy(update={"data": spec.data.model_copy(update={"eval_batch_size": 4096})})
    assert worst_case_bytes(batch, io) > 6 * small


def write_spec_tmp(data: dict) -> Path:
    import tempfile

    return write_spec(Path(tempfile.mkdtemp()) / "spec.yaml", data)
