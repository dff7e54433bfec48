"""The bundled paper-setting spaces (issue #14): they validate, and each trains its full-size network for one
optimizer step on generated data of the dataset's shape (the dataset builder is replaced: nothing is read
from data.root, nothing is downloaded)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from sltsearch import api
from sltsearch.data import DataSplits, make_loader
from sltsearch.data import registry as data_registry
from sltsearch.errors import DataError
from sltsearch.spec import load_spec
from sltsearch.spec.spaces import resolve_spec_path

PAPER_SPACES = [
    "paper_vgg16_cifar10",
    "paper_resnet19_cifar10",
    "paper_spikformer_multisp_cifar10",
    "paper_dvs128_gesture",
]
# dataset -> (one sample's shape incl. time for event frames, classes, time steps of event frames)
SHAPES = {"cifar10": ((3, 32, 32), 10, None), "dvs128_gesture": ((16, 2, 64, 64), 11, 16)}


def generated(name: str):
    shape, classes, frames = SHAPES[name]

    def build(root, val_fraction, test_fraction, seed, options) -> DataSplits:
        assert root  # the spaces name a data.root
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand((4, *shape), generator=gen)
        y = torch.arange(4) % classes
        ds = TensorDataset(x, y)
        return DataSplits(name, ds, ds, ds, shape[1:] if frames else shape, classes, frames)

    return build


@pytest.mark.parametrize("space", PAPER_SPACES)
def test_paper_space_validates_and_needs_a_data_root(space: str) -> None:
    spec = load_spec(resolve_spec_path(space))  # the spec itself is valid
    assert spec.data.root and spec.data.name in SHAPES
    assert spec.search.n_trials >= 8 and spec.space
    with pytest.raises(DataError, match="data.root"):  # and `validate` says the data is not here, in one line
        api.validate(space)


@pytest.mark.slow
@pytest.mark.parametrize("space", PAPER_SPACES)
def test_paper_space_trains_one_step_on_generated_data(space: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sltsearch.train import make_optimizer, train_one_epoch
    from sltsearch.trial import TrialContext, stages
    from sltsearch.trial.context import prepare

    spec = load_spec(resolve_spec_path(space))
    monkeypatch.setitem(data_registry.DATASETS, spec.data.name, generated(spec.data.name))
    tspec = spec.with_params({k: p.probe_values()[0] for k, p in spec.space.items()})
    setup = prepare(tspec, TrialContext(device="cpu"))
    model = stages.new_model(setup)
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    optimizer = make_optimizer(model, tspec.train)
    loader = make_loader(torch.utils.data.Subset(setup.data.train, [0, 1]), 2, shuffle=False)
    loss = train_one_epoch(model, loader, optimizer, torch.device("cpu"))
    assert torch.isfinite(torch.tensor(loss))
    changed = [k for k, v in model.state_dict().items() if k in before and not torch.equal(v, before[k])]
    assert changed, "one optimizer step changed no weight"
    assert sum(1 for k in model.state_dict() if k.endswith("weight_mask")) >= 10  # masks on every Conv/Linear
