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


def register_dataset(name: str, builder: Builder, needs_root: bool = False) -> None:
    DATASETS[name] = builder
    if needs_root:
        ROOTED.add(name)


def _register_on_disk() -> None:
    from sltsearch.data import images, neuromorphic

    register_dataset("cifar10", images.load_cifar10, needs_root=True)
    register_dataset("cifar100", images.load_cifar100, needs_root=True)
    register_dataset("mnist", images.load_mnist, needs_root=True)
    register_dataset("fashion_mnist", images.load_fashion_mnist, needs_root=True)
    register_dataset("dvs128_gesture", neuromorphic.load_dvs128_gesture, needs_root=True)


_register_on_disk()


def build_data(spec: Any) -> DataSplits:
    """Build the splits named by a `DataSpec`."""
    if spec.name not in DATASETS:
        raise DataError(f"data.name: unknown dataset '{spec.name}'; known: {', '.join(sorted(DATASETS))}")
    builder = DATASETS[spec.name]
    args = (spec.val_fraction, spec.test_fraction, spec.split_seed, dict(spec.options))
    if spec.name in ROOTED:
        if not spec.root:
            raise DataError(
                f"data.root: dataset '{spec.name}' is read from a local folder; set data.root to it"
            )
        return builder(spec.root, *args)
    return builder(*args)


def build_data_memo(spec: Any, memo: dict[str, DataSplits]) -> DataSplits:
    """`build_data`, once per distinct `DataSpec` in ``memo``: the pre-run checks and every trial share it."""
    from sltsearch.cache import content_key

    key = content_key(spec.model_dump(mode="json"))
    if key not in memo:
        memo[key] = build_data(spec)
    return memo[key]
