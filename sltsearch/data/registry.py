"""Name -> dataset builder. Later families register themselves here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sltsearch.data.base import DataSplits
from sltsearch.data.embedded import load_digits_splits, load_mnist1d_splits
from sltsearch.errors import DataError

Builder = Callable[..., DataSplits]
DATASETS: dict[str, Builder] = {
    "digits": load_digits_splits,
    "mnist1d": load_mnist1d_splits,
}
# Datasets read from disk take the root as their first argument.
ROOTED: set[str] = set()
# Datasets read from one file take data.path as their first argument.
PATHED: set[str] = set()


def register_dataset(name: str, builder: Builder, needs_root: bool = False, needs_path: bool = False) -> None:
    DATASETS[name] = builder
    if needs_root:
        ROOTED.add(name)
    if needs_path:
        PATHED.add(name)


def find_dataset(name: str) -> Builder | None:
    """A registered builder, else an installed plugin's (entry point group ``sltsearch.datasets``, registered
    on first use; ``needs_root = True`` on the builder makes it take data.root first), else None."""
    if name in DATASETS:
        return DATASETS[name]
    from sltsearch.spec import plugins
    found = plugins.load(plugins.DATASET_GROUP, name)
    if found is None:
        return None
    if not callable(found):
        raise DataError(f"data.name: entry point '{name}' is a {type(found).__name__}, not a dataset builder")
    register_dataset(name, found, needs_root=bool(getattr(found, "needs_root", False)))
    return found


def _register_on_disk() -> None:
    from sltsearch.data import images, neuromorphic

    register_dataset("cifar10", images.load_cifar10, needs_root=True)
    register_dataset("cifar100", images.load_cifar100, needs_root=True)
    register_dataset("mnist", images.load_mnist, needs_root=True)
    register_dataset("fashion_mnist", images.load_fashion_mnist, needs_root=True)
    register_dataset("dvs128_gesture", neuromorphic.load_dvs128_gesture, needs_root=True)
    from sltsearch.data import tonic_sets  # tonic itself is imported only when one of these is loaded

    register_dataset("nmnist", tonic_sets.load_nmnist, needs_root=True)
    register_dataset("shd", tonic_sets.load_shd, needs_root=True)


def _register_users() -> None:
    from sltsearch.data import arrays, torch_datasets

    register_dataset("arrays", arrays.load_arrays, needs_path=True)
    register_dataset(torch_datasets.NAME, torch_datasets.load_registered)


_register_on_disk()
_register_users()


def build_data(spec: Any) -> DataSplits:
    """Build the splits named by a `DataSpec`."""
    builder = find_dataset(spec.name)
    if builder is None:
        raise DataError(
            f"data.name: unknown dataset '{spec.name}'; known: {', '.join(sorted(DATASETS))} or an installed "
            f"plugin (`sltsearch models`)"
        )
    args = (spec.val_fraction, spec.test_fraction, spec.split_seed, dict(spec.options))
    if spec.name in PATHED:
        return builder(getattr(spec, "path", None), *args)
    if getattr(spec, "path", None):
        raise DataError(
            f"data.path: dataset '{spec.name}' does not read a file; data.path is for {', '.join(sorted(PATHED))}"
            + (" (it reads data.root)" if spec.name in ROOTED else "")
        )
    if spec.name in ROOTED:
        if not spec.root:
            raise DataError(
                f"data.root: dataset '{spec.name}' is read from a local folder; set data.root to it"
            )
        return builder(spec.root, *args)
    return builder(*args)


def build_data_memo(spec: Any, memo: dict[str, DataSplits]) -> DataSplits:
    """`build_data`, once per distinct `DataSpec` in ``memo``: the pre-run checks and every trial share it."""
    from sltsearch.spec.keys import content_key

    key = content_key(spec.model_dump(mode="json"))
    if key not in memo:
        memo[key] = build_data(spec)
    return memo[key]
