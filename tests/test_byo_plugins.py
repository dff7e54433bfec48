"""Entry points (issue #14): a package declaring ``sltsearch.models`` / ``sltsearch.datasets`` entry points is
listed by `sltsearch models` and usable by name in a spec."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import tiny_spec_dict
from typer.testing import CliRunner

from sltsearch.errors import SpecError
from sltsearch.spec import parse_spec, preflight

PLUGIN = '''
import numpy as np
import torch
from spikingjelly.activation_based import layer, neuron

from sltsearch.data.embedded import _to_splits


def make_net(input_shape, num_classes, options):
    return torch.nn.Sequential(layer.Flatten(), layer.Linear(24, 16), neuron.LIFNode(), layer.Linear(16, num_classes))


def load_data(val_fraction, test_fraction, seed, options):
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = rng.random((60, 2, 12)).astype(np.float32)
    return _to_splits("plugdata", x, y, 3, val_fraction, test_fraction, seed)


BROKEN = 42
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution 'sltplug' (a package and its dist-info) on sys.path."""
    pkg = tmp_path / "sltplug"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(PLUGIN)
    info = tmp_path / "sltplug-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sltplug\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(
        "[sltsearch.models]\nplugnet = sltplug:make_net\nbadnet = sltplug:BROKEN\nmissing = sltplug:nothing\n\n"
        "[sltsearch.datasets]\nplugdata = sltplug:load_data\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("sltplug", None)
    from sltsearch.data.registry import DATASETS
    from sltsearch.models import registry

    DATASETS.pop("plugdata", None)
    registry._PLUGGED_BUILDERS.pop("plugnet", None)


def test_plugins_are_listed_and_usable_by_name(plugin: Path) -> None:
    from sltsearch.api import catalog
    from sltsearch.cli import app
    from sltsearch.trial.stages import dense_key

    listing = catalog()
    assert {"name": "plugnet", "presets": "", "source": "plugin: sltplug 1.2 (sltplug:make_net)"} in listing["models"]
    assert any(r["name"] == "plugdata" and "sltplug 1.2" in r["source"] for r in listing["datasets"])
    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "plugnet" in result.output and "plugdata" in result.output

    spec = parse_spec(tiny_spec_dict(model={"name": "plugnet", "time_steps": 2}, data={"name": "plugdata"}))
    memo: dict = {}
    preflight.check(spec, data_memo=memo)
    assert next(iter(memo.values())).input_shape == (2, 12)
    from sltsearch.spec.provenance import stage_inputs

    inputs = stage_inputs(spec)
    assert inputs["model_code"].startswith("sha256:") and inputs["data_content"].startswith("sha256:")
    assert dense_key(spec) != dense_key(spec.model_copy(update={"seed": 1}))


def test_broken_plugins_are_one_line_errors(plugin: Path) -> None:
    with pytest.raises(SpecError, match="entry point 'badnet' is a int"):
        preflight.check(parse_spec(tiny_spec_dict(model={"name": "badnet"})), data_memo={})
    with pytest.raises(SpecError, match=r"entry point 'missing' = 'sltplug:nothing' .* failed to load: AttributeError"):
        preflight.check(parse_spec(tiny_spec_dict(model={"name": "missing"})), data_memo={})
