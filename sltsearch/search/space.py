"""Spec space -> Optuna distributions (every backend asks the study for trials over these)."""

from __future__ import annotations

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from sltsearch.spec import ParamSpec


def to_distribution(param: ParamSpec) -> BaseDistribution:
    if param.type == "categorical":
        return CategoricalDistribution(list(param.choices or []))
    if param.type == "int":
        return IntDistribution(int(param.low), int(param.high), log=param.log, step=int(param.step or 1))
    return FloatDistribution(float(param.low), float(param.high), log=param.log, step=param.step)


def to_distributions(space: dict[str, ParamSpec]) -> dict[str, BaseDistribution]:
    return {name: to_distribution(p) for name, p in space.items()}
