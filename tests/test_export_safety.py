"""Export folders are data: they never run code or name files outside themselves, and `--force` replaces
nothing but an earlier export (issue 24, items 1-3 and the bad-input list)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import one_trial_run
from typer.testing import CliRunner

import sltsearch
from sltsearch.cli import app
from sltsearch.errors import UserError
from sltsearch.system.files import sha256_file
from sltsearch.ticket_io import TicketFileError
from sltsearch.ticket_io.load import UntrustedCode
from sltsearch.ticket_io.place import WORK_TAG, remove_abandoned

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return one_trial_run(tmp_path_factory.mktemp("safety"))


@pytest.fixture
def exported(run: Path, tmp_path: Path) -> Path:
    return sltsearch.export(run, ticket="t0000r01", out=tmp_path / "gift").path


def _edit(folder: Path, change: callable) -> None:
    manifest = json.loads((folder / "ticket.json").read_text())
    change(manifest)
    (folder / "ticket.json").write_text(json.dumps(manifest))


def _one_line_exit_2(argv: list[str], *needles: str) -> str:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, (argv, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------- 1. code named by ticket.json


def test_a_ticket_naming_a_module_is_refused_without_trust_code(
    exported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = exported / "ran.txt"
    code = f"open({str(marker)!r}, 'w').write('ran')\ndef make(*args, **kwargs):\n    raise SystemExit(7)\n"
    (exported / "evilmod.py").write_text(code)
    _edit(exported, lambda m: m["spec"]["model"].update(name="evilmod:make"))
    monkeypatch.chdir(exported)  # the module sits in the current folder too
    with pytest.raises(UntrustedCode, match="module 'evilmod'.*trust_code=True"):
        sltsearch.load_ticket(exported)
    with pytest.raises(UntrustedCode):
        sltsearch.evaluate(exported)
    _one_line_exit_2(["evaluate", "."], "evilmod", "--trust-code")
    _one_line_exit_2(["evaluate", str(exported)], "evilmod", "--trust-code")
    assert not marker.exists() and "evilmod" not in sys.modules
    # trusted, the module is still never imported from the folder being read (issue 32, item 1) ...
    with pytest.raises(UserError, match="never imports from the folder it reads"):
        sltsearch.load_ticket(exported, trust_code=True)
    assert not marker.exists() and "evilmod" not in sys.modules
    # ... but from where the user keeps their code: then (and only then) the module is imported
    project = exported.parent / "project"
    project.mkdir()
    shutil.copy(exported / "evilmod.py", project / "evilmod.py")
    monkeypatch.syspath_prepend(str(project))
    with pytest.raises(SystemExit):
        sltsearch.load_ticket(exported, trust_code=True)
    assert marker.read_text() == "ran"
    sys.modules.pop("evilmod", None)


def test_built_in_families_need_no_flag(exported: Path) -> None:
    model, info = sltsearch.load_ticket(exported)
    assert info.spec.model.name == "spiking_cnn" and not model.training


# ---------------------------------------------------------------- 2. files outside the folder


@pytest.mark.parametrize("name", ["../weights.safetensors", "/etc/hostname", "sub/x.safetensors", "..", "ticket.json"])
def test_files_may_name_only_plain_files_of_the_folder(exported: Path, name: str) -> None:
    outside = exported.parent / "weights.safetensors"
    shutil.copy(exported / "weights.safetensors", outside)

    def point_elsewhere(manifest: dict) -> None:
        manifest["files"][name] = manifest["files"].pop("masks.safetensors")

    _edit(exported, point_elsewhere)
    with pytest.raises(TicketFileError, match="only plain file names"):
        sltsearch.load_ticket(exported)
    result = runner.invoke(app, ["evaluate", str(exported)])
    assert result.exit_code == 2 and "checksums verified" not in result.output


def test_a_linked_file_is_refused(exported: Path) -> None:
    outside = exported.parent / "elsewhere.safetensors"
    shutil.move(exported / "masks.safetensors", outside)
    (exported / "masks.safetensors").symlink_to(outside)
    with pytest.raises(TicketFileError, match="a link, not a file"):
        sltsearch.load_ticket(exported)


# ---------------------------------------------------------------- model_io, recorded values, other fields


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("input_shape", [1, "a", 8], "input_shape must be a list"),
        ("input_shape", [1, 100000, 100000], "values per sample"),
        ("input_shape", [1, 4, 4], "does not describe these weights"),
        ("input_shape", [], "input_shape must be a list"),
        ("num_classes", "ten", "num_classes must be a whole number"),
        ("num_classes", 11, "does not describe these weights"),
        ("num_classes", True, "num_classes must be a whole number"),
        ("frames", "no", "frames must be true or false"),
        ("time_steps", 0, "time_steps must be a whole number"),
    ],
)
def test_model_io_is_checked_before_a_model_is_built(exported: Path, field: str, value: object, needle: str) -> None:
    _edit(exported, lambda m: m["model_io"].update({field: value}))
    with pytest.raises(TicketFileError, match=needle):
        sltsearch.load_ticket(exported)
    _one_line_exit_2(["evaluate", str(exported)], needle.split()[0])


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda m: m["ticket"].update(val_accuracy="high"), "ticket.val_accuracy must be a number"),
        (lambda m: m.update(source=[]), "'source' must be a mapping"),
        (lambda m: m["source"].pop("ticket_id"), "names no ticket_id"),
        (lambda m: m.update(export_check=[1]), "'export_check' must be a mapping"),
        (lambda m: m["files"]["weights.safetensors"].update(bytes=-1), "bytes is not a file size"),
        (lambda m: m["files"]["weights.safetensors"].update(sha256="x"), "not a sha256"),
        (lambda m: m["spec"].update(seed="zero"), "spec: seed"),
    ],
)
def test_other_manifest_fields_are_one_line_errors(exported: Path, change: callable, needle: str) -> None:
    _edit(exported, change)
    _one_line_exit_2(["evaluate", str(exported)], needle)


def test_a_huge_or_deep_manifest_is_refused(exported: Path) -> None:
    (exported / "ticket.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(TicketFileError, match="nested too deeply|not an sltsearch"):
        sltsearch.load_ticket(exported)


# ---------------------------------------------------------------- 3. --force and --out


def test_force_never_replaces_a_run_folder_or_other_files(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run_copy"
    shutil.copytree(run, copy)
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    _one_line_exit_2(["export", str(copy), "--ticket", "t0000r01", "--out", str(copy), "--force"], "earlier export")
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == before
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    _one_line_exit_2(["export", str(run), "--ticket", "t0000r01", "--out", str(notes), "--force"], "no ticket.json")
    afile = tmp_path / "afile.txt"
    afile.write_text("keep me")
    _one_line_exit_2(["export", str(run), "--ticket", "t0000r01", "--out", str(afile), "--force"], "is a file")
    _one_line_exit_2(["export", str(run), "--ticket", "t0000r01", "--out", str(afile / "sub")], "is a file")
    assert (notes / "todo.txt").read_text() == "keep me" and afile.read_text() == "keep me"


def test_force_refuses_an_export_holding_other_files(exported: Path, run: Path) -> None:
    (exported / "my_notes.txt").write_text("keep me")
    _one_line_exit_2(["export", str(run), "--ticket", "t0000r00", "--out", str(exported), "--force"], "my_notes.txt")
    assert json.loads((exported / "ticket.json").read_text())["source"]["ticket_id"] == "t0000r01"


def test_force_replaces_an_earlier_export_and_out_dot_works(
    exported: Path, run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(exported)
    result = runner.invoke(app, ["export", str(run), "--ticket", "t0000r00", "--out", ".", "--force"])
    assert result.exit_code == 0, result.output
    assert json.loads((exported / "ticket.json").read_text())["source"]["ticket_id"] == "t0000r00"
    assert sltsearch.evaluate(exported).matches
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]  # nothing hidden left behind
    fresh = exported.parent / "fresh"
    fresh.mkdir()
    monkeypatch.chdir(fresh)
    assert runner.invoke(app, ["export", str(run), "--ticket", "t0000r01", "--out", "."]).exit_code == 0
    assert (fresh / "ticket.json").is_file()


def test_a_killed_export_leaves_nothing_after_the_next_one(exported: Path, run: Path, tmp_path: Path) -> None:
    # an export killed while writing (SIGKILL: no cleanup of its own)
    code = (
        "import os, time, sltsearch.ticket_io.bundle as b\n"
        "orig = b.save_file\n"
        "def slow(*a, **k):\n    orig(*a, **k); print('writing', flush=True); time.sleep(600)\n"
        "b.save_file = slow\n"
        f"import sltsearch; sltsearch.export({str(run)!r}, ticket='t0000r00', out={str(exported)!r}, force=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the process this test started
        proc.wait(timeout=30)
    leftovers = [p for p in exported.parent.iterdir() if WORK_TAG in p.name]
    assert leftovers and json.loads((exported / "ticket.json").read_text())["source"]["ticket_id"] == "t0000r01"
    sltsearch.export(run, ticket="t0000r00", out=exported, force=True)
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]
    assert json.loads((exported / "ticket.json").read_text())["source"]["ticket_id"] == "t0000r00"


def test_an_export_moved_aside_by_a_killed_replace_comes_back(exported: Path) -> None:
    work = exported.parent / f".{exported.name}{WORK_TAG}abcd1234"
    work.mkdir()
    os.replace(exported, work / "old")  # killed between its two renames: the earlier export is in the work folder
    time.sleep(0.01)
    assert remove_abandoned(exported.parent) == [work]
    assert (exported / "ticket.json").is_file() and not work.exists()
    assert sha256_file(exported / "weights.safetensors") == json.loads((exported / "ticket.json").read_text())[
        "files"]["weights.safetensors"]["sha256"]


def test_export_selection_bounds_are_one_line_errors(run: Path, tmp_path: Path) -> None:
    for value in ("2", "nan", "-0.5"):
        _one_line_exit_2(["export", str(run), "--select", "knee", "--min-accuracy", value], "--min-accuracy")
    _one_line_exit_2(["export", str(run), "--select", "knee", "--max-energy", "nan"], "--max-energy")
    with pytest.raises(UserError, match="--min-accuracy"):
        sltsearch.export(run, select="knee", min_accuracy=1.5, out=tmp_path / "x")


# ---------------------------------------------------------------- issue 32, item 5: paths from table content


def _tamper_table(run: Path, tmp_path: Path, **row: object) -> Path:
    """A copy of ``run`` whose ticket t0000r01 has ``row``'s values (written as sltsearch writes a part)."""
    import pandas as pd

    from sltsearch.results.store import _write

    copy = tmp_path / "level1" / "copy"
    shutil.copytree(run, copy)
    part = copy / "tickets" / "trial-000000.parquet"
    frame = pd.read_parquet(part)
    for key, value in row.items():
        frame[key] = frame[key].astype(object)
        frame.loc[frame["ticket_id"] == "t0000r01", key] = value
    _write(part, frame)
    return copy


BAD_IDS = ["../../escaped", "t0000r01/../../../escaped", "t0000r01\x1b[2J\x1b]0;pwned\x07", ""]


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_a_ticket_id_of_another_form_is_refused_on_reading(run: Path, tmp_path: Path, bad_id: str) -> None:
    copy = _tamper_table(run, tmp_path, ticket_id=bad_id, val_accuracy=1.0)
    line = _one_line_exit_2(["export", str(copy), "--select", "max-accuracy"], "trial-000000.parquet", "t0000r01")
    assert "\x1b" not in line
    _one_line_exit_2(["pareto", str(copy)], "is not of the form")
    with pytest.raises(UserError, match="sltsearch repair"):
        sltsearch.load(copy)
    assert not [p for p in tmp_path.rglob("*escaped*")], "a path was built from the ticket id"


def test_every_id_sltsearch_writes_is_of_the_form_it_reads() -> None:
    from types import SimpleNamespace

    from sltsearch.results.record import Ticket
    from sltsearch.results.store import is_ticket_id

    kinds = ["dense", "imp", "one_shot", "early_bird", "early_time", "et_search", "random_prune", "random_reinit"]
    for kind in kinds:
        for trial, round_ in ((0, 0), (3, 12), (123456, 99)):
            made = Ticket.ticket_id.fget(SimpleNamespace(trial=trial, round=round_, kind=kind))
            assert is_ticket_id(made), made


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "", "/tmp/x", "x\ny"])
def test_a_folder_named_by_content_stays_inside_its_parent(tmp_path: Path, name: str) -> None:
    from sltsearch.ticket_io.place import child

    with pytest.raises(UserError, match="not a plain folder name"):
        child(tmp_path, name, "ticket id")
    assert child(tmp_path, "t0000r01", "ticket id") == tmp_path / "t0000r01"


def test_a_stage_key_is_never_a_path(run: Path, tmp_path: Path) -> None:
    copy = _tamper_table(run, tmp_path, stage_key="../../../../etc")
    _one_line_exit_2(["energy", str(copy), "--ticket", "t0000r01"], "stage key", "not a cache key")


def test_a_cache_meta_naming_a_file_elsewhere_is_damaged(run: Path, tmp_path: Path) -> None:
    from sltsearch.trial.cache import DamagedArtefact, StageCache

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    cache = StageCache(copy / "cache")
    kind, folder = cache.locate(str(sltsearch.load(copy).iloc[-1]["stage_key"]))
    meta = json.loads((folder / "meta.json").read_text())
    meta["sha256"] = {"../../../spec.yaml": "0" * 64, **meta["sha256"]}
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DamagedArtefact, match="not a file of its folder"):
        cache._verified_meta(folder)
