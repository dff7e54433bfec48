"""Start-up: the CLI's light commands load no torch; thread defaults and the OpenMP wait policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_spec_dict, write_spec

from sltsearch import threads
from sltsearch.spaces import bundled_spaces

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter on this checkout; return its last stdout line."""
    base = {k: v for k, v in os.environ.items() if k not in {"OMP_WAIT_POLICY", "OMP_NUM_THREADS"}}
    base["PYTHONPATH"] = str(ROOT) + os.pathsep + base.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**base, **(env or {})}
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


LIGHT_COMMANDS = """
import json, sys
from typer.testing import CliRunner
from sltsearch.cli import app
runner = CliRunner()
codes = [runner.invoke(app, args).exit_code for args in ({args})]
heavy = sorted(m for m in ("torch", "pandas", "optuna", "ray", "spikingjelly") if m in sys.modules)
print(json.dumps({{"codes": codes, "heavy": heavy}}))
"""


def test_help_spaces_and_a_bad_spec_load_no_torch(tmp_path: Path) -> None:
    bad = write_spec(tmp_path / "bad.yaml", tiny_spec_dict(model={"time_steps": True}))
    args = [["--help"], ["run", "--help"], ["spaces"], ["validate", str(bad)], ["validate", str(tmp_path / "no.yaml")]]
    out = json.loads(_python(LIGHT_COMMANDS.format(args=repr(args)[1:-1])))
    assert out["codes"] == [0, 0, 0, 2, 2]
    assert out["heavy"] == [], f"the light commands imported {out['heavy']}"


def test_import_sltsearch_is_lazy() -> None:
    code = "import sys, sltsearch; print('torch' in sys.modules, sltsearch.Spec.__name__, 'torch' in sys.modules)"
    out = _python(code)
    assert out == "False Spec False"


def test_a_full_validate_still_works_after_the_lazy_imports(tiny_spec_file: Path) -> None:
    out = _python(f"import sltsearch; print(sltsearch.validate({str(tiny_spec_file)!r}).name)")
    assert out == "tiny"


def test_wait_policy_is_set_before_torch_loads_unless_the_user_chose() -> None:
    unset = "import os; os.environ.pop('OMP_WAIT_POLICY', None); "  # in case a sitecustomize set it
    show = "import os, sltsearch, torch; print(os.environ['OMP_WAIT_POLICY'])"
    assert _python(unset + show) == "PASSIVE"
    assert _python(show, {"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"


def test_default_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    assert threads.default_threads() == 1
    monkeypatch.setattr(threads, "usable_cores", lambda: 16)
    assert threads.default_threads() == 8
    monkeypatch.setattr(threads, "usable_cores", lambda: 1)
    assert threads.default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.default_threads() == 3


def test_the_progress_display_shows_the_thread_count(tmp_path: Path) -> None:
    from sltsearch.cli import _RunDisplay, console

    display = _RunDisplay()
    with console.capture() as captured:
        display({"event": "start", "n_trials": 2, "done": 0, "run_dir": tmp_path, "threads": 3, "wait_policy": "X"})
        display.stop()
    assert "torch CPU threads: 3 (OMP_WAIT_POLICY X" in captured.get()
    assert display.threads == "3 threads"


def test_bundled_spaces_are_found_in_the_checkout() -> None:
    spaces = bundled_spaces()
    assert {"default", "spikformer_multisp"} <= set(spaces)
    assert all(path.is_file() for path in spaces.values())
