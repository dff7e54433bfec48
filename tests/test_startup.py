"""Start-up: the CLI's light commands load no torch; thread defaults and the OpenMP wait policy."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_spec_dict, write_spec

from sltsearch.spec.spaces import bundled_spaces
from sltsearch.system import threads

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


def test_workers_times_threads_fill_the_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    assert threads.plan() == (2, 1)  # a worker per core, one thread each
    assert threads.plan(trials_left=1) == (1, 1)  # one trial left: still one thread (the same numbers)
    assert threads.plan(workers=1) == (1, 2) and threads.plan(threads=2) == (1, 2)  # the other fills the cores
    assert threads.plan(workers=3, threads=1) == (3, 1)  # what the user chose stands
    monkeypatch.setattr(threads, "usable_cores", lambda: 16)
    assert threads.plan(trials_left=10) == (10, 1)  # never more workers than trials left
    assert threads.plan(threads=4) == (4, 4) and threads.plan(workers=4) == (4, 4)
    monkeypatch.setattr(threads, "usable_cores", lambda: 1)
    assert threads.plan() == (1, 1) and threads.plan(trials_left=0) == (1, 1)
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert threads.plan() == (2, 4)  # the user's thread count, the workers filling the rest

def test_the_progress_display_shows_workers_and_threads_with_every_running_trial(tmp_path: Path) -> None:
    from rich.console import Console

    from sltsearch.cli.display import RunDisplay
    from sltsearch.search.events import SearchStart, TrialEnd, TrialProgress, TrialStart

    console = Console(width=120, force_terminal=False, record=True)
    display = RunDisplay(console)
    display(SearchStart(tmp_path, n_trials=4, done=1, backend="optuna", workers=2, threads=3, wait_policy="X"))
    display(TrialStart(1, {"rounds": 3}, "worker 1 (pid 11)", rounds=3))
    display(TrialStart(2, {}, "worker 2 (pid 12)"))
    display(TrialProgress(1, "imp", round=2, epoch=4))
    display(TrialProgress(2, "dense", epoch=1))
    snapshot = Console(width=120, record=True, file=io.StringIO())
    snapshot.print(display.__rich__())  # what the live display shows now
    shown = console.export_text(clear=False) + snapshot.export_text()
    display(TrialEnd(2, "FAIL", done=1, reason="RuntimeError: boom"))
    display.stop()
    text = console.export_text()
    assert "optuna backend: 2 workers x 3 threads" in shown and "OMP_WAIT_POLICY X" in shown
    assert "trial 1" in shown and "worker 1 (pid 11), 3 threads" in shown and "round 2/3 epoch 4" in shown
    assert "trial 2" in shown and "worker 2 (pid 12), 3 threads" in shown and "dense epoch 1" in shown
    assert "trial 2 failed: RuntimeError: boom" in text


def test_the_progress_display_shows_where_a_branch_starts_and_its_rounds() -> None:
    from rich.console import Console

    from sltsearch.cli.display import RunDisplay
    from sltsearch.search.events import SearchStart, TrialProgress, TrialStart

    display = RunDisplay(Console(width=120, force_terminal=False, record=True))
    display(SearchStart(Path("run"), n_trials=4, done=0, backend="optuna", workers=1, threads=1, wait_policy="X"))
    display(TrialStart(3, {}, "worker 1", rounds=7, path=True))
    shown = []
    for event in (TrialProgress(3, "branch", round=4, rounds=9), TrialProgress(3, "imp", round=5, epoch=2)):
        display(event)
        snapshot = Console(width=120, record=True, file=io.StringIO())
        snapshot.print(display.__rich__())
        shown.append(snapshot.export_text())
    display.stop()
    assert "branch after round 4" in shown[0] and "round 5/≤9 epoch 2" in shown[1]


def test_bundled_spaces_are_found_in_the_checkout() -> None:
    spaces = bundled_spaces()
    assert {"default", "spikformer_multisp"} <= set(spaces)
    assert all(path.is_file() for path in spaces.values())
