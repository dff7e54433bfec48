"""Spec space -> Optuna distributions (used by the Optuna backend and, later, by Ray Tune's OptunaSearch)."""

from __future__ import annotations

from typing import Any

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


def suggest_params(trial: Any, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Ask an Optuna trial for one value of every searched parameter."""
    params: dict[str, Any] = {}
    for name, p in space.items():
        if p.type == "categorical":
            params[name] = trial.suggest_categorical(name, list(p.choices or []))
        elif p.type == "int":
            params[name] = trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            params[name] = trial.suggest_float(name, float(p.low), float(p.high), step=p.step, log=p.log)
    return params
