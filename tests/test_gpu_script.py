"""`benchmarks/gpu.py --dry-run`: the GPU script's code paths on the CPU, so it cannot rot between GPU sessions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_script_dry_run_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "gpu.md"
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--dry-run", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    summary = report.strip().splitlines()[-1]
    tests = summary.split("cuda tests ", 1)[1].split(";", 1)[0]
    passed, total = (int(n) for n in tests.split("/"))
    assert total >= 8 and passed == total, report
    for model in ("vgg16", "resnet19", "spikformer"):
        assert f"{model} n/ax" not in summary, report  # every model's SNN and ANN step was timed
    assert "trials per gpu" in summary and "not measured" not in summary, report
    assert "| 2 | 2 |" in report  # two trials at once, both finished and timed
