"""A run folder is data: reading it never imports a module its spec names unless the user trusts it, and never
from the folder itself (issue 32, item 1)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml
from conftest import one_trial_run
from typer.testing import CliRunner

import sltsearch
from sltsearch.cli import app
from sltsearch.models import user
from sltsearch.models.user import UntrustedCode

runner = CliRunner()
EVIL = "open({marker!r}, 'a').write('ran\\n')\ndef make(*args, **kwargs):\n    raise SystemExit(7)\n"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return one_trial_run(tmp_path_factory.mktemp("trust"))


@pytest.fixture
def evil_run(base_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of a run folder holding ``evilmod.py``, its spec naming ``evilmod:make``; the current folder."""
    run = tmp_path / "gift"
    shutil.copytree(base_run, run)
    (run / "evilmod.py").write_text(EVIL.format(marker=str(tmp_path / "ran.txt")))
    frozen = yaml.safe_load((run / "spec.yaml").read_text())
    frozen["model"]["name"] = "evilmod:make"
    (run / "spec.yaml").write_text(yaml.safe_dump(frozen))
    _claim_study_for(run, frozen)  # whoever sends a folder controls its study too: one spec, consistent
    monkeypatch.chdir(run)  # as the issue: `cd` into it; the folder is then on sys.path for `python -m`
    monkeypatch.syspath_prepend(str(run))
    yield run
    sys.modules.pop("evilmod", None)


def _claim_study_for(run: Path, spec_data: dict) -> None:
    """Record the tampered spec's identity in the folder's study, as a consistent folder from elsewhere has it."""
    import optuna

    from sltsearch.search.study_identity import IDENTITY, IDENTITY_SPEC, spec_identity
    from sltsearch.spec import Spec
    from sltsearch.spec.keys import run_identity

    spec = Spec.model_validate(spec_data)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run / "study.journal")))
    study_id = storage.get_study_id_from_name(spec.search.study_name or spec.name)
    storage.set_study_user_attr(study_id, IDENTITY_SPEC, run_identity(spec))
    storage.set_study_user_attr(study_id, IDENTITY, spec_identity(spec))


def _ran(run: Path) -> bool:
    return (run.parent / "ran.txt").exists() or "evilmod" in sys.modules


def _refused(argv: list[str]) -> str:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, (argv, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    assert "module 'evilmod'" in lines[0] and "--trust-code" in lines[0], lines[0]
    return lines[0]


def test_energy_and_export_refuse_a_module_named_by_the_folder(evil_run: Path) -> None:
    _refused(["energy", ".", "--ticket", "t0000r01"])
    _refused(["export", ".", "--ticket", "t0000r01", "--out", str(evil_run.parent / "out")])
    _refused(["export", ".", "--select", "max-accuracy"])
    with pytest.raises(UntrustedCode, match="evilmod"):
        sltsearch.energy(evil_run, ticket="t0000r01")
    with pytest.raises(UntrustedCode, match="evilmod"):
        sltsearch.export(evil_run, ticket="t0000r01", out=evil_run.parent / "out")
    assert not _ran(evil_run) and not (evil_run.parent / "out").exists()


def test_repair_refuses_to_remeasure_with_a_module_named_by_the_folder(evil_run: Path) -> None:
    shutil.rmtree(evil_run / "tickets")  # repair would re-measure the finished trial from the stage cache
    _refused(["repair", "."])
    with pytest.raises(UntrustedCode):
        sltsearch.repair(evil_run)
    assert not _ran(evil_run)


def test_pareto_plot_and_dashboard_storage_import_nothing(evil_run: Path) -> None:
    from sltsearch.results.dashboard import open_study_storage

    result = runner.invoke(app, ["pareto", ".", "--plot", str(evil_run.parent / "front.png")])
    assert result.exit_code == 0, result.output
    open_study_storage(evil_run)
    assert not _ran(evil_run)


def test_trust_code_never_imports_from_the_folder_itself(evil_run: Path, tmp_path: Path) -> None:
    """Trusted, the module is looked up where the user keeps their code, never in the folder being read."""
    line = _one_line(["energy", ".", "--ticket", "t0000r01", "--trust-code"])
    assert "never imports from the folder it reads" in line and not _ran(evil_run)
    project = tmp_path / "project"
    project.mkdir()
    (project / "evilmod.py").write_text(EVIL.format(marker=str(project / "ran.txt")))
    sys.path.append(str(project))
    try:
        with pytest.raises(SystemExit):  # the user's own copy runs: it raises SystemExit(7) when called
            sltsearch.energy(evil_run, ticket="t0000r01", trust_code=True)
    finally:
        sys.path.remove(str(project))
    assert (project / "ran.txt").exists() and not (tmp_path / "ran.txt").exists()


def _one_line(argv: list[str]) -> str:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, (argv, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_name_this_process_resolved_from_the_users_own_spec_needs_no_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `sltsearch.run` imported for the user in this session runs nothing new when its folder is read."""
    (tmp_path / "ownnet.py").write_text("def make(*a, **k):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = tmp_path / "run"
    with user.reading(folder, trust_code=False), pytest.raises(UntrustedCode, match="ownnet"):
        user.resolve("ownnet:make")
    assert "ownnet" not in sys.modules
    fn = user.resolve("ownnet:make")  # as `sltsearch run SPEC` resolves the spec the user passed
    with user.reading(folder, trust_code=False):
        assert user.resolve("ownnet:make") is fn
    sys.modules.pop("ownnet", None)


@pytest.mark.slow
def test_the_readme_example_exports_with_trust_code_only(tmp_path: Path) -> None:
    """README's own-network example across processes: `run` imports mynets from the project folder; a later
    `export` of that run refuses without --trust-code and works with it, from the project folder."""
    import os
    import subprocess

    from test_docs_byo import example_files

    for name, content in example_files().items():
        (tmp_path / name).write_text(content)
    env = {**os.environ, "PYTHONPATH": str(Path(sltsearch.__file__).resolve().parent.parent)}  # this checkout

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sltsearch", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)  # fmt: skip

    subprocess.run([sys.executable, "make_data.py"], cwd=tmp_path, check=True, timeout=120)
    ran = cli("run", "my_search.yaml", "--run-dir", "run", "--trials", "1", "--threads", "1", "-q")
    assert ran.returncode == 0, ran.stderr
    refused = cli("export", "run", "--select", "knee")
    assert refused.returncode == 2 and "module 'mynets'" in refused.stderr and "--trust-code" in refused.stderr
    exported = cli("export", "run", "--select", "knee", "--trust-code")
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "run" / "exports").is_dir()
