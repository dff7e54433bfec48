"""Users' own networks (issue #14): import paths, Python callables, the rules checked before the first trial,
and the code hash in stage keys and the run folder."""

from __future__ import annotations

import importlib
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_spec_dict

from sltsearch.errors import RunDirError, SpecError
from sltsearch.spec import parse_spec, preflight

GOOD_NET = '''
import torch
from spikingjelly.activation_based import layer, neuron

VARIANT = {variant!r}


def make_net(input_shape, num_classes, options):
    hidden = int(options.get("hidden", 16))
    features = 1
    for d in input_shape:
        features *= d
    return torch.nn.Sequential(
        layer.Flatten(),
        layer.Linear(features, hidden),
        neuron.LIFNode(tau=2.0, detach_reset=True),
        layer.Linear(hidden, num_classes),
    )
'''

BROKEN_NETS = '''
import torch
from spikingjelly.activation_based import layer, neuron


def no_neurons(input_shape, num_classes, options):
    return torch.nn.Sequential(layer.Flatten(), layer.Linear(64, num_classes))


def no_layers(input_shape, num_classes, options):
    return torch.nn.Sequential(layer.Flatten(), neuron.LIFNode())


def single_step_conv(input_shape, num_classes, options):
    # a plain Conv2d cannot take [T, B, C, H, W]
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), neuron.LIFNode(), layer.Flatten(), layer.Linear(144, 10))


def wrong_output(input_shape, num_classes, options):
    return torch.nn.Sequential(layer.Flatten(), layer.Linear(64, 7), neuron.LIFNode())


def not_a_module(input_shape, num_classes, options):
    return "a network"


def raises(input_shape, num_classes, options):
    raise KeyError("depth")


NOT_CALLABLE = 3
'''


def write_module(folder: Path, text: str) -> str:
    """A uniquely named module in ``folder`` (on sys.path); returns its name."""
    name = f"usernet_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(text)
    importlib.invalidate_caches()
    return name


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def arrays_file(path: Path, n: int = 120, length: int = 16, classes: int = 3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(0.0, 1.0, (n, length)).astype(np.float32) + y[:, None].astype(np.float32)
    np.savez(path, x_train=x, y_train=y)
    return path


def user_spec(model_name: str, **overrides: object):
    return parse_spec(tiny_spec_dict(model={"name": model_name, "options": {}, "time_steps": 2}, **overrides))


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        ("no_neurons", "no spiking neurons"),
        ("no_layers", "no Conv1d/Conv2d/Conv3d/Linear layer to prune"),
        ("single_step_conv", "forward on a [T, B, ...] = [2, 2, 1, 8, 8] input (multi-step mode) failed"),
        ("wrong_output", "returned shape [2, 2, 7]; expected [T, B, num_classes] = [2, 2, 10]"),
        ("not_a_module", "returned a str; it must return a torch.nn.Module"),
        ("raises", "building the network for input (1, 8, 8), 10 classes and options {} failed: KeyError"),
        ("NOT_CALLABLE", "is a int, not a callable"),
        ("missing", "has no attribute 'missing'"),
    ],
)
def test_broken_networks_are_one_line_errors_before_any_trial(user_dir: Path, attr: str, message: str) -> None:
    module = write_module(user_dir, BROKEN_NETS)
    with pytest.raises(SpecError) as err:
        preflight.check(user_spec(f"{module}:{attr}"), data_memo={})
    text = str(err.value)
    assert message in text and "\n" not in text


def test_a_preset_on_a_user_network_is_refused(user_dir: Path) -> None:
    module = write_module(user_dir, GOOD_NET.format(variant=1))
    spec = parse_spec(tiny_spec_dict(model={"name": f"{module}:make_net", "preset": "small"}))
    with pytest.raises(SpecError, match="model.preset: presets belong to sltsearch's families"):
        preflight.check(spec, data_memo={})


def test_unimportable_module_names_the_module(user_dir: Path) -> None:
    with pytest.raises(SpecError, match="cannot import module 'nowhere_pkg.nets'"):
        preflight.check(user_spec("nowhere_pkg.nets:make_net"), data_memo={})
    module = write_module(user_dir, "import not_installed_dependency_xyz\n")
    with pytest.raises(SpecError, match=f"importing {module} failed: ModuleNotFoundError"):
        preflight.check(user_spec(f"{module}:make_net"), data_memo={})
    with pytest.raises(SpecError, match="unknown model 'nonsense'.*import path"):
        preflight.check(user_spec("nonsense"), data_memo={})


def test_api_run_refuses_a_broken_network_before_writing_the_run_folder(user_dir: Path) -> None:
    import sltsearch

    module = write_module(user_dir, BROKEN_NETS)
    with pytest.raises(SpecError, match="no spiking neurons"):
        sltsearch.run(user_spec(f"{module}:no_neurons"), run_dir=user_dir / "run")
    assert not (user_dir / "run").exists()


def test_cli_broken_network_exits_2_with_one_line(user_dir: Path) -> None:
    from conftest import write_spec
    from typer.testing import CliRunner

    from sltsearch.cli import app

    module = write_module(user_dir, BROKEN_NETS)
    spec = write_spec(user_dir / "s.yaml", tiny_spec_dict(model={"name": f"{module}:wrong_output", "time_steps": 2}))
    result = CliRunner().invoke(app, ["run", str(spec), "--run-dir", str(user_dir / "run"), "-q"])
    assert result.exit_code == 2
    assert "expected [T, B, num_classes]" in result.output and "Traceback" not in result.output


def test_user_network_is_wrapped_like_the_families(user_dir: Path) -> None:
    from sltsearch.models import build_model
    from sltsearch.tickets import attach_masks, prunable_layers

    module = write_module(user_dir, GOOD_NET.format(variant=1))
    spec = user_spec(f"{module}:make_net")
    model = build_model(spec.model, (1, 8, 8), 10)
    assert type(model).__name__ == "SpikingClassifier" and model.time_steps == 2
    assert model.body[2].step_mode == "m"  # multi-step mode set on the user's neurons
    attach_masks(model)
    assert set(prunable_layers(model)) == {"body.1", "body.3"}
    assert all(hasattr(m, "weight_mask") for m in prunable_layers(model).values())


def test_make_neuron_is_passed_when_the_builder_asks_for_it(user_dir: Path) -> None:
    from sltsearch.models import build_model

    module = write_module(
        user_dir,
        "from spikingjelly.activation_based import layer\nimport torch\n"
        "def make_net(input_shape, num_classes, options, make_neuron):\n"
        "    return torch.nn.Sequential(layer.Flatten(), layer.Linear(64, num_classes), make_neuron())\n",
    )
    spec = parse_spec(tiny_spec_dict(model={"name": f"{module}:make_net", "neuron": {"type": "if"}}))
    model = build_model(spec.model, (1, 8, 8), 10)
    assert type(model.body[2]).__name__ == "FusedIFNode"


def test_code_hash_keys_the_stages_and_version_overrides_it(user_dir: Path) -> None:
    from sltsearch.trial.stages import dense_key

    module = write_module(user_dir, GOOD_NET.format(variant=1))
    spec = user_spec(f"{module}:make_net")
    first = dense_key(spec)
    assert first == dense_key(spec)
    (user_dir / f"{module}.py").write_text(GOOD_NET.format(variant="edited, longer"))
    assert dense_key(spec) == first  # the loaded code is still the old one: its hash too
    sys.modules.pop(module)
    importlib.invalidate_caches()
    edited = dense_key(spec)
    assert edited != first
    versioned = user_spec(f"{module}:make_net").model_copy(
        update={"model": spec.model.model_copy(update={"version": "v1"})}
    )
    key_v1 = dense_key(versioned)
    (user_dir / f"{module}.py").write_text(GOOD_NET.format(variant="edited again, longer still"))
    sys.modules.pop(module)
    assert dense_key(versioned) == key_v1 not in {first, edited}


def test_multisp_needs_a_convpep_on_a_user_network(user_dir: Path) -> None:
    module = write_module(user_dir, GOOD_NET.format(variant=1))
    spec = user_spec(f"{module}:make_net", multisp={"patch_keep": 0.5})
    with pytest.raises(SpecError, match="multisp needs a ConvPEP"):
        preflight.check(spec, data_memo={})
    with pytest.raises(SpecError, match="multisp needs model.name: spikformer"):
        parse_spec(tiny_spec_dict(multisp={"patch_keep": 0.5}))


def test_user_network_with_the_spikformer_patch_embed_gets_multisp(user_dir: Path) -> None:
    from sltsearch.data import build_data
    from sltsearch.models import build_model
    from sltsearch.tickets import multisp

    module = write_module(
        user_dir,
        "from sltsearch.models.spikformer import build_spikformer\n"
        "from sltsearch.models.neurons import neuron_factory\n"
        "from sltsearch.spec import NeuronSpec\n"
        "def make_net(input_shape, num_classes, options):\n"
        "    sizes = dict(embed_dim=16, depth=1, heads=2, mlp_ratio=2, patch_size=2, pep_channels=[8, 16])\n"
        "    return build_spikformer(input_shape, num_classes, neuron_factory(NeuronSpec()), sizes)\n",
    )
    spec = user_spec(f"{module}:make_net", multisp={"patch_keep": 0.5, "pep_binary_weights": True})
    preflight.check(spec, data_memo={})
    data = build_data(spec.data)
    model = build_model(spec.model, data.input_shape, data.num_classes)
    assert multisp.patch_embed(model) is not None and multisp.ticket_fields(model)["tokens_total"] == 16


@pytest.mark.slow
def test_python_callable_searched_end_to_end_and_code_edits_invalidate_stages(user_dir: Path) -> None:
    """A user network in a temporary module, searched on an ``arrays`` dataset: tickets with energy, a front,
    the code hash in run.json; editing the module retrains instead of loading its cached stages, and the run
    folder refuses to mix the two versions."""
    import sltsearch
    from sltsearch.runfolder.folder import run_info
    from sltsearch.trial import TrialContext, run_trial
    from sltsearch.trial.cache import StageCache

    arrays_file(user_dir / "data.npz")
    module = write_module(user_dir, GOOD_NET.format(variant=1))
    spec = parse_spec(
        tiny_spec_dict(
            data={"name": "arrays", "path": "data.npz", "batch_size": 16},
            model={"name": f"{module}:make_net", "options": {"hidden": 24}, "time_steps": 2},
            tickets={"rounds": 2, "prune_rate": 0.5},
        )
    )
    result = sltsearch.run(spec, run_dir=user_dir / "run")
    frame = result.tickets
    assert len(frame) == 2 * 3 and set(frame["round"]) == {0, 1, 2}
    assert (frame["energy_uj"] > 0).all() and (frame.loc[frame["round"] == 2, "sparsity"] > 0.5).all()
    assert not result.front.empty and (user_dir / "run" / "pareto.csv").is_file()
    inputs = run_info(user_dir / "run")["inputs"]
    assert inputs["model"] == f"{module}:make_net" and inputs["model_code"].startswith("sha256:")
    assert inputs["data"] == "arrays" and inputs["data_content"].startswith("sha256:")

    cache = StageCache(user_dir / "cache")
    before = run_trial(spec, {"prune_rate": 0.5}, TrialContext(cache=cache))
    again = run_trial(spec, {"prune_rate": 0.5}, TrialContext(cache=cache))
    assert all(t.cached for t in again) and [t.stage_key for t in again] == [t.stage_key for t in before]
    (user_dir / f"{module}.py").write_text(GOOD_NET.format(variant="edited: a longer variant string"))
    sys.modules.pop(module)
    importlib.invalidate_caches()
    after = run_trial(spec, {"prune_rate": 0.5}, TrialContext(cache=cache))
    assert not any(t.cached for t in after)
    assert not {t.stage_key for t in after} & {t.stage_key for t in before}
    with pytest.raises(RunDirError, match="holds tickets of other code or data .*model_code"):
        sltsearch.run(spec, run_dir=user_dir / "run")


@pytest.mark.slow
def test_run_with_a_python_callable_and_torch_datasets(user_dir: Path) -> None:
    import torch
    from torch.utils.data import TensorDataset

    import sltsearch

    module = write_module(user_dir, GOOD_NET.format(variant=1))
    make_net = importlib.import_module(module).make_net
    x = torch.randn(90, 2, 6) + torch.arange(90).remainder(3)[:, None, None].float()
    y = torch.arange(90).remainder(3)
    spec = parse_spec(tiny_spec_dict(model={"time_steps": 2}, search={"n_trials": 1}))
    result = sltsearch.run(spec, run_dir=user_dir / "run", model=make_net, data=(TensorDataset(x, y), None, None))
    assert result.spec.model.name == f"{module}:make_net" and result.spec.data.name == "python"
    assert len(result.tickets) == 2 and result.spec.data.options["num_classes"] == 3


def test_a_partial_is_named_after_its_function_and_keyed_on_its_arguments(user_dir: Path) -> None:
    import functools

    from sltsearch.models.user import code_fingerprint, register_callable

    module = write_module(user_dir, GOOD_NET.format(variant=1))
    make_net = importlib.import_module(module).make_net
    small, large = functools.partial(make_net), functools.partial(make_net, options={"hidden": 99})
    assert register_callable(small) == f"{module}:make_net_partial"
    plain = code_fingerprint(make_net, None, "x")
    assert len({plain, code_fingerprint(small, None, "x"), code_fingerprint(large, None, "x")}) == 3


def test_validate_imports_the_users_builder(user_dir: Path) -> None:
    from conftest import write_spec
    from typer.testing import CliRunner

    from sltsearch.cli import app

    module = write_module(user_dir, GOOD_NET.format(variant=1))
    good = write_spec(user_dir / "good.yaml", tiny_spec_dict(model={"name": f"{module}:make_net"}))
    bad = write_spec(user_dir / "bad.yaml", tiny_spec_dict(model={"name": f"{module}:make_nett"}))
    assert CliRunner().invoke(app, ["validate", str(good)]).exit_code == 0
    result = CliRunner().invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2 and f"module {module} has no attribute 'make_nett'" in result.output
