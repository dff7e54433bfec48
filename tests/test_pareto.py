"""The Pareto front contains no dominated row and omits no non-dominated one; hypervolume is right."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sltsearch.results import hypervolume, pareto_front

OBJ = {"val_accuracy": "maximize", "energy_uj": "minimize"}


def _dominates(a: pd.Series, b: pd.Series) -> bool:
    better_eq = a["val_accuracy"] >= b["val_accuracy"] and a["energy_uj"] <= b["energy_uj"]
    strictly = a["val_accuracy"] > b["val_accuracy"] or a["energy_uj"] < b["energy_uj"]
    return better_eq and strictly


@pytest.mark.parametrize("seed", range(5))
def test_front_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    frame = pd.DataFrame({
        "ticket_id": [f"t{i}" for i in range(n)],
        # coarse values so ties and duplicates happen
        "val_accuracy": rng.integers(0, 10, n) / 10,
        "energy_uj": rng.integers(0, 10, n) / 10,
        "status": "ok",
    })
    front = pareto_front(frame, OBJ)
    ids = set(front["ticket_id"])
    for _, row in frame.iterrows():
        dominated = any(_dominates(other, row) for _, other in frame.iterrows())
        assert (row["ticket_id"] in ids) == (not dominated), row.to_dict()


def test_front_ignores_failed_rows_and_sorts_best_first() -> None:
    frame = pd.DataFrame({
        "ticket_id": ["a", "b", "c", "d"],
        "val_accuracy": [0.9, 0.8, 0.99, 0.95],
        "energy_uj": [0.5, 0.1, 0.01, 0.3],
        "status": ["ok", "ok", "failed", "ok"],
    })
    front = pareto_front(frame, OBJ)
    assert list(front["ticket_id"]) == ["d", "b"]


def test_hypervolume_of_two_points() -> None:
    frame = pd.DataFrame({"val_accuracy": [0.9, 0.5], "energy_uj": [0.5, 0.1]})
    # reference (acc 0, energy 1): rectangles 0.9x0.5 and 0.5x0.9 overlapping 0.5x0.5
    expected = 0.9 * 0.5 + 0.5 * 0.9 - 0.5 * 0.5
    assert hypervolume(frame, OBJ, {"val_accuracy": 0.0, "energy_uj": 1.0}) == pytest.approx(expected)
    assert hypervolume(frame, OBJ, {"val_accuracy": 0.95, "energy_uj": 1.0}) == 0.0


def _brute_front(losses: np.ndarray) -> set[int]:
    """Indices of rows no other finite row dominates (minimisation; rows with NaN never count)."""
    finite = [i for i in range(len(losses)) if np.isfinite(losses[i]).all()]
    out = set()
    for i in finite:
        dominated = any(
            (losses[j] <= losses[i]).all() and (losses[j] < losses[i]).any() for j in finite if j != i
        )
        if not dominated:
            out.add(i)
    return out


def _brute_hypervolume(losses: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume by inclusion on the grid of all coordinates (fine for a few dozen points)."""
    pts = losses[np.isfinite(losses).all(axis=1) & (losses < ref).all(axis=1)]
    if len(pts) == 0:
        return 0.0
    axes = [np.unique(np.concatenate([pts[:, d], [ref[d]]])) for d in range(pts.shape[1])]
    volume = 0.0
    for cell in np.ndindex(*[len(a) - 1 for a in axes]):
        low = np.array([axes[d][cell[d]] for d in range(len(axes))])
        high = np.array([axes[d][cell[d] + 1] for d in range(len(axes))])
        if (pts <= low).all(axis=1).any():  # the cell lies inside some point's dominated box
            volume += float(np.prod(high - low))
    return volume


@pytest.mark.parametrize("n_obj", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_front_and_hypervolume_match_brute_force_with_ties_and_nan(n_obj: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    names = ["val_accuracy", "energy_uj", "storage_bits"][:n_obj]
    objectives = dict(zip(names, ["max", "min", "min"][:n_obj], strict=False))
    values = rng.integers(0, 6, (n, n_obj)).astype(float) / 5  # coarse: ties and duplicate points
    values[rng.choice(n, 5, replace=False), rng.integers(0, n_obj)] = np.nan  # failed tickets
    frame = pd.DataFrame(values, columns=names)
    frame["ticket_id"] = [f"t{i}" for i in range(n)]
    frame["status"] = "ok"
    losses = np.stack([-frame[c] if d == "max" else frame[c] for c, d in objectives.items()], axis=1)
    expected = {f"t{i}" for i in _brute_front(losses)}
    assert set(pareto_front(frame, objectives)["ticket_id"]) == expected
    reference = {"val_accuracy": 0.0, "energy_uj": 1.1, "storage_bits": 1.05}
    ref = np.array([-reference[c] if d == "max" else reference[c] for c, d in objectives.items()])
    assert hypervolume(frame, objectives, reference) == pytest.approx(_brute_hypervolume(losses, ref), abs=1e-12)


def test_failed_rows_never_reach_the_front_or_add_volume() -> None:
    frame = pd.DataFrame({
        "ticket_id": ["ok", "failed", "running"],
        "val_accuracy": [0.5, 0.99, 0.98],
        "energy_uj": [0.5, 0.01, 0.02],
        "status": ["ok", "failed", "incomplete"],
    })
    assert list(pareto_front(frame, OBJ)["ticket_id"]) == ["ok"]
    assert hypervolume(frame, OBJ, {"val_accuracy": 0.0, "energy_uj": 1.0}) == pytest.approx(0.25)


def _shared_dense_table() -> pd.DataFrame:
    """Two trials sharing one dense network (same stage_key), each with its own IMP ticket."""
    return pd.DataFrame({
        "ticket_id": ["t0000r00", "t0000r01", "t0001r00", "t0001r01"],
        "trial": [0, 0, 1, 1],
        "round": [0, 1, 0, 1],
        "kind": ["dense", "imp", "dense", "imp"],
        "stage_key": ["d", "a", "d", "b"],
        "cached": [False, False, True, False],
        "status": "ok",
        "time_steps": 4,
        "val_accuracy": [0.97, 0.96, 0.97, 0.90],
        "energy_uj": [1.0, 0.5, 1.0, 0.3],
        "param_prune_rate": [0.3, 0.3, 0.6, 0.6],
        "param_time_steps": [4, 4, 4, 4],
    })


def test_a_shared_dense_network_is_one_ticket_without_pruning_params() -> None:
    from sltsearch.results import unique_tickets

    unique = unique_tickets(_shared_dense_table())
    assert list(unique["ticket_id"]) == ["t0000r00", "t0000r01", "t0001r01"]
    dense = unique[unique["kind"] == "dense"].iloc[0]
    assert dense["param_prune_rate"] is None  # a pruning parameter means nothing for the dense network
    assert dense["param_time_steps"] == 4  # ... T does shape it
    front = pareto_front(_shared_dense_table(), OBJ)
    assert list(front["ticket_id"]) == ["t0000r00", "t0000r01", "t0001r01"]
    keyless = _shared_dense_table().assign(stage_key=None)  # rows without a key are never merged
    assert len(unique_tickets(keyless)) == 4


def test_parse_objectives() -> None:
    from sltsearch.errors import UserError
    from sltsearch.results import parse_objectives

    assert parse_objectives("val_accuracy:max, energy_uj:min") == OBJ
    with pytest.raises(UserError, match="needs a direction"):
        parse_objectives("val_accuracy")
    with pytest.raises(UserError, match="'up' is not one of max, min"):
        parse_objectives("val_accuracy:up")
    with pytest.raises(UserError, match="not in the ticket table"):
        pareto_front(pd.DataFrame({"val_accuracy": [0.5], "energy_uj": [1.0]}), {"bogus": "min", **OBJ})
