"""MO-ASHA over IMP rounds: the pure rule against hand-worked rung tables, and a stopped trial's stages."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_spec_dict

from sltsearch.results.record import Ticket
from sltsearch.results.store import TicketStore, load_tickets
from sltsearch.search.early_stop import RungStopper, StoppedEarly
from sltsearch.search.execute import TrialRunner
from sltsearch.search.mo_asha import (
    MOASHA,
    as_losses,
    better_than,
    crowding_distances,
    nondominated_ranks,
    pairwise_ranks,
    rung_rounds,
    surely_better,
    total_violation,
)
from sltsearch.search.rung_view import RungView
from sltsearch.spec import parse_spec

ACC = {"val_accuracy": "maximize"}
ACC_ENERGY = {"val_accuracy": "maximize", "energy_uj": "minimize"}
THREE = {"val_accuracy": "maximize", "energy_uj": "minimize", "sparsity": "maximize"}


def _acc(*values: float) -> list[dict[str, float]]:
    return [{"val_accuracy": v} for v in values]


def _ae(*pairs: tuple[float, float]) -> list[dict[str, float]]:
    return [{"val_accuracy": a, "energy_uj": e} for a, e in pairs]


# --- one objective: plain ASHA; keep ceil(n / eta) of the n tickets at the rung ---------------------------

def test_one_objective_keeps_the_top_third() -> None:
    rule = MOASHA(ACC, eta=3)
    others = _acc(0.9, 0.8, 0.7, 0.6, 0.5)  # with the candidate n = 6, keep 2
    assert not rule.should_stop(1, {"val_accuracy": 0.85}, others)  # 1 better (0.9)
    assert rule.should_stop(1, {"val_accuracy": 0.75}, others)  # 2 better (0.9, 0.8)
    assert rule.should_stop(1, {"val_accuracy": 0.1}, others)


def test_first_tickets_at_a_rung() -> None:
    rule = MOASHA(ACC, eta=3)
    assert not rule.should_stop(1, {"val_accuracy": 0.1}, [])  # n = 1: keep 1
    assert rule.should_stop(1, {"val_accuracy": 0.5}, _acc(0.9))  # n = 2: keep ceil(2/3) = 1
    assert not rule.should_stop(1, {"val_accuracy": 0.95}, _acc(0.9))


def test_ties_continue_and_min_rungs() -> None:
    rule = MOASHA(ACC, eta=3, spacing="every_round")
    assert not rule.should_stop(2, {"val_accuracy": 0.8}, _acc(0.8, 0.8, 0.8))  # nobody strictly better
    assert rule.should_stop(2, {"val_accuracy": 0.7}, _acc(0.8, 0.8, 0.8))
    late = MOASHA(ACC, eta=3, min_rungs=3, spacing="every_round")
    assert not late.should_stop(2, {"val_accuracy": 0.0}, _acc(0.8, 0.8, 0.8))  # rung below min_rungs
    assert late.should_stop(3, {"val_accuracy": 0.0}, _acc(0.8, 0.8, 0.8))
    assert late.should_stop(4, {"val_accuracy": 0.0}, _acc(0.8, 0.8, 0.8))


def test_rungs_are_spaced_geometrically_by_default() -> None:
    """ASHA's rungs: rounds min_rungs * eta**k, so the rounds between two rungs never stop a trial."""
    assert rung_rounds(1, 3, 30) == [1, 3, 9, 27]
    assert rung_rounds(2, 3, 20) == [2, 6, 18]
    assert rung_rounds(1, 2, 8) == [1, 2, 4, 8]
    assert rung_rounds(1, 1.5, 7) == [1, 2, 3, 4, 6]  # the first round at or past 1, 1.5, 2.25, 3.375, 5.06
    assert rung_rounds(3, 3, 5, "every_round") == [3, 4, 5]
    worst, rung = {"val_accuracy": 0.0}, _acc(0.8, 0.8, 0.8)
    rule = MOASHA(ACC, eta=3)
    assert [r for r in range(1, 11) if rule.should_stop(r, worst, rung)] == [1, 3, 9]
    late = MOASHA(ACC, eta=3, min_rungs=2)
    assert [r for r in range(1, 11) if late.should_stop(r, worst, rung)] == [2, 6]
    with pytest.raises(ValueError, match="geometric, every_round"):
        rung_rounds(1, 3, 5, "sometimes")


def test_keep_count() -> None:
    rule = MOASHA(ACC, eta=3)
    assert [rule.keep_count(n) for n in range(1, 8)] == [1, 1, 1, 2, 2, 2, 3]


# --- two objectives: fronts first, crowding distance inside the candidate's front ---------------------------
# others: A (0.9, 1.0), B (0.8, 0.5), C (0.7, 0.2) form the first front; D (0.6, 0.9) is dominated by B,
# E (0.5, 1.5) by everyone. With one candidate n = 6: keep 2.
OTHERS_2D = _ae((0.9, 1.0), (0.8, 0.5), (0.7, 0.2), (0.6, 0.9), (0.5, 1.5))


def test_two_objectives_crowding_breaks_the_tie_in_a_front() -> None:
    rule = MOASHA(ACC_ENERGY, eta=3)
    # X (0.85, 0.6) joins the first front {A, X, B, C}. Crowding (losses -acc, energy):
    #   acc order A, X, B, C (span 0.2): X (0.9-0.8)/0.2 = 0.5, B (0.85-0.7)/0.2 = 0.75; A, C inf
    #   energy order C, B, X, A (span 0.8): B (0.6-0.2)/0.8 = 0.5, X (1.0-0.5)/0.8 = 0.625
    #   X = 1.125 < B = 1.25, A = C = inf: three rank better than X >= keep 2 -> stop
    assert rule.should_stop(1, {"val_accuracy": 0.85, "energy_uj": 0.6}, OTHERS_2D)
    # W (0.65, 0.1) is in the first front and the extreme of energy: crowding inf, nobody better -> continue
    assert not rule.should_stop(1, {"val_accuracy": 0.65, "energy_uj": 0.1}, OTHERS_2D)
    # Y dominates everyone -> continue; Z (0.55, 1.2) is dominated (by A and B) -> stop
    assert not rule.should_stop(1, {"val_accuracy": 0.95, "energy_uj": 0.1}, OTHERS_2D)
    assert rule.should_stop(1, {"val_accuracy": 0.55, "energy_uj": 1.2}, OTHERS_2D)


def test_two_objectives_with_equal_tickets() -> None:
    rule = MOASHA(ACC_ENERGY, eta=3)
    same = _ae((0.9, 1.0), (0.9, 1.0), (0.9, 1.0))
    assert not rule.should_stop(1, {"val_accuracy": 0.9, "energy_uj": 1.0}, same)  # a tie is no defeat
    assert rule.should_stop(1, {"val_accuracy": 0.8, "energy_uj": 1.1}, same)  # dominated by all three
    assert rule.should_stop(1, {"val_accuracy": float("nan"), "energy_uj": 0.1}, same)  # cannot rank


def test_nondominated_ranks_and_crowding_by_hand() -> None:
    losses = np.array([[-0.9, 1.0], [-0.8, 0.5], [-0.7, 0.2], [-0.6, 0.9], [-0.5, 1.5]])
    assert nondominated_ranks(losses).tolist() == [0, 0, 0, 1, 2]
    # equal rows share their distance whatever their order
    dup = crowding_distances(np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]))
    assert dup[0] == dup[1] == math.inf and dup[2] == math.inf and dup[3] == pytest.approx(2.0)
    # three objectives: a, d extreme (inf); b = 2/4 + 3/4 + 7/8, c = 3/4 + 3/4 + 2/8
    three = crowding_distances(np.array([[0, 0, 0], [1, 1, 2], [2, 3, 1], [4, 4, 8]], dtype=float))
    assert three[0] == three[3] == math.inf
    assert three[1] == pytest.approx(2.125) and three[2] == pytest.approx(1.75)


# --- three objectives --------------------------------------------------------------------------------------
# P (0.9, 1.0, 0.5) and Q (0.8, 0.5, 0.7) are the first front; R (0.7, 0.5, 0.6) is dominated by Q;
# S (0.6, 2.0, 0.2) by P, Q and R.
OTHERS_3D = [
    {"val_accuracy": 0.9, "energy_uj": 1.0, "sparsity": 0.5},
    {"val_accuracy": 0.8, "energy_uj": 0.5, "sparsity": 0.7},
    {"val_accuracy": 0.7, "energy_uj": 0.5, "sparsity": 0.6},
    {"val_accuracy": 0.6, "energy_uj": 2.0, "sparsity": 0.2},
]


def test_three_objectives() -> None:
    rule = MOASHA(THREE, eta=2)  # n = 5: keep 3
    # K (0.75, 0.4, 0.65) joins the first front {P, Q, K} as the extreme of energy: continue
    assert not rule.should_stop(1, {"val_accuracy": 0.75, "energy_uj": 0.4, "sparsity": 0.65}, OTHERS_3D)
    # K2 (0.65, 0.6, 0.55) is dominated by Q and by R (third front): P, Q, R rank better -> stop
    assert rule.should_stop(1, {"val_accuracy": 0.65, "energy_uj": 0.6, "sparsity": 0.55}, OTHERS_3D)
    # with eta = 1.25 (keep ceil(5/1.25) = 4) the same ticket continues
    assert not MOASHA(THREE, eta=1.25).should_stop(
        1, {"val_accuracy": 0.65, "energy_uj": 0.6, "sparsity": 0.55}, OTHERS_3D
    )


# --- rung tables from the ticket table, and a stopped trial's stages -----------------------------------------

def _ticket(trial: int, round_: int, val: float, energy: float, kind: str = "imp") -> Ticket:
    return Ticket(
        trial=trial, round=round_, kind=kind, params={"rounds": 3}, seed=0, time_steps=2, sparsity=0.5,
        density=0.5, nonzero_params=1, prunable_params=2, val_accuracy=val, test_accuracy=val, energy_uj=energy,
        macs=0.0, acs=0.0, firing_rate=0.0, best_epoch=0, epochs_trained=0, wall_time_s=0.0, stage_key="k",
    )


def test_rung_entries_read_the_ticket_table(tmp_path: Path) -> None:
    store = TicketStore(tmp_path)
    store.append([_ticket(0, 0, 0.5, 1.0, "dense"), _ticket(0, 1, 0.9, 0.5)], status="ok")
    store.append([_ticket(1, 1, 0.8, 0.4), _ticket(1, 1, 0.1, 0.1, "random_prune")], status="running")
    store.append([_ticket(2, 1, 0.99, 0.01)], status="failed")  # its parameters run again: not a rung entry
    view = RungView(tmp_path, list(ACC_ENERGY))  # what a decision reads (RungStopper)

    def entries(exclude_trial: int | None = None) -> list[dict[str, float]]:
        return [{k: float(row[k]) for k in ACC_ENERGY} for row in view.rows(1, exclude_trial=exclude_trial)]

    assert entries(exclude_trial=1) == [{"val_accuracy": 0.9, "energy_uj": 0.5}]
    assert len(entries()) == 2


@pytest.mark.slow
def test_a_stopped_trial_runs_no_further_rounds(tmp_path: Path) -> None:
    spec = parse_spec(
        tiny_spec_dict(
            train={"epochs": 1},
            tickets={"rounds": 3, "prune_rate": 0.5},
            search={"early_stopping": {"rule": "mo_asha", "eta": 3, "min_rungs": 1}},
            space={"rounds": {"type": "int", "low": 1, "high": 3}},
        )
    )
    # two earlier trials measured far better round-1 tickets: n = 3, keep 1, our trial ranks third
    TicketStore(tmp_path).append([_ticket(0, 1, 1.0, 1e-9), _ticket(1, 1, 1.0, 2e-9)], status="ok")
    runner = TrialRunner(spec, tmp_path, device="cpu")
    stopper = RungStopper(spec, tmp_path)
    with pytest.raises(StoppedEarly) as stopped:
        runner(2, {"rounds": 3}, on_ticket=stopper.on_ticket(2, {"rounds": 3}))
    assert stopped.value.ticket.round == 1
    rows = load_tickets(tmp_path)
    mine = rows[rows["trial"] == 2]
    assert sorted(mine["round"]) == [0, 1]  # dense + the one kept round; rounds 2 and 3 never ran
    assert set(mine["status"]) == {"ok"}  # a stopped trial's tickets stand (and go on the front)
    imp_stages = list((tmp_path / "cache" / "imp").iterdir())
    assert len([p for p in imp_stages if p.is_dir()]) == 1  # one IMP stage trained, not three
    # the same trial unstopped trains all three rounds (the first is reused from the cache)
    done = runner(3, {"rounds": 3})
    assert [t.round for t in done if t.kind == "imp"] == [1, 2, 3]
    assert len([p for p in (tmp_path / "cache" / "imp").iterdir() if p.is_dir()]) == 3
    assert done[0].cached and [t.cached for t in done if t.kind == "imp"] == [True, False, False]


# --- constraints: constrained domination (Deb's rule, as Optuna's NSGA-II ranks) ------------------------------
# others: I1 (0.99, 0.01) violates by 0.1, I2 (0.98, 0.02) by 0.2, F (0.7, 1.0) is feasible. With one
# candidate n = 4: keep ceil(4/3) = 2.
OTHERS_C = _ae((0.99, 0.01), (0.98, 0.02), (0.7, 1.0))
VIOL_C = [0.1, 0.2, 0.0]


def test_a_feasible_ticket_beats_a_dominating_infeasible_one() -> None:
    rule = MOASHA(ACC_ENERGY, eta=3)
    # X (0.6, 1.2), feasible, is dominated by all three. Constrained: F front 0, X front 1 (dominated by F),
    # I1 front 2, I2 front 3 -> only F ranks better: continue. Unconstrained: I1, I2, F rank better: stop.
    x = {"val_accuracy": 0.6, "energy_uj": 1.2}
    assert not rule.should_stop(1, x, OTHERS_C, [0.0, *VIOL_C])
    assert rule.should_stop(1, x, OTHERS_C)
    # Y (0.995, 0.005) dominates everyone but violates by 0.3: F, I1, I2 rank better -> stop (unconstrained it
    # is alone in the first front and continues)
    y = {"val_accuracy": 0.995, "energy_uj": 0.005}
    assert rule.should_stop(1, y, OTHERS_C, [0.3, *VIOL_C])
    assert not rule.should_stop(1, y, OTHERS_C)
    # the same Y violating by only 0.05 is the best infeasible ticket: F ranks better, I1 and I2 worse -> continue
    assert not rule.should_stop(1, y, OTHERS_C, [0.05, *VIOL_C])
    # a violation of exactly 0 is feasible (a bound is inclusive): Y joins F's front and dominates it
    assert not rule.should_stop(1, y, OTHERS_C, [0.0, 0.1, 0.2, 0.0])


def test_equal_violations_share_a_front_and_crowding_breaks_the_tie() -> None:
    rule = MOASHA(ACC_ENERGY, eta=3)
    # A (0.9, 1.0), B (0.8, 0.5), C (0.7, 0.2) all violate by 0.5; n = 4, keep 2.
    others = _ae((0.9, 1.0), (0.8, 0.5), (0.7, 0.2))
    # Z (0.5, 1.5) is dominated by all three, but an equal violation puts the four in one front (neither of two
    # infeasible tickets with the same violation dominates). Crowding (losses -acc, energy):
    #   acc order A, B, C, Z: A and Z extreme (inf); energy order C, B, A, Z: C and Z extreme (inf)
    #   B = (0.9-0.7)/0.4 + (1.0-0.2)/1.3 is finite; nobody has more crowding than Z (inf) -> continue
    z = {"val_accuracy": 0.5, "energy_uj": 1.5}
    assert not rule.should_stop(1, z, others, [0.5, 0.5, 0.5, 0.5])
    assert rule.should_stop(1, z, others, [0.6, 0.5, 0.5, 0.5])  # a larger violation: last front alone -> stop
    assert not rule.should_stop(1, z, others, [0.4, 0.5, 0.5, 0.5])  # smaller: the first front alone
    # B as the candidate (same four tickets): interior in both objectives, A, C, Z (inf) rank better -> stop
    b = {"val_accuracy": 0.8, "energy_uj": 0.5}
    zac = _ae((0.5, 1.5), (0.9, 1.0), (0.7, 0.2))
    assert rule.should_stop(1, b, zac, [0.5, 0.5, 0.5, 0.5])
    # infinite violations (a NaN constraint metric) tie with each other, behind every finite violation
    assert rule.should_stop(1, z, others, [math.inf, 0.5, math.inf, 0.5])  # A and C rank better
    assert not rule.should_stop(1, z, others, [math.inf, math.inf, math.inf, 0.5])  # C alone ranks better


def test_all_feasible_ranks_as_without_constraints() -> None:
    # every case of the unconstrained tests above with all violations 0 gives the same decision
    cases = [
        (MOASHA(ACC, eta=3), _acc(0.9, 0.8, 0.7, 0.6, 0.5), [{"val_accuracy": v} for v in (0.85, 0.75, 0.1)]),
        (MOASHA(ACC_ENERGY, eta=3), OTHERS_2D, _ae((0.85, 0.6), (0.65, 0.1), (0.95, 0.1), (0.55, 1.2))),
        (MOASHA(THREE, eta=2), OTHERS_3D, [
            {"val_accuracy": 0.75, "energy_uj": 0.4, "sparsity": 0.65},
            {"val_accuracy": 0.65, "energy_uj": 0.6, "sparsity": 0.55},
        ]),
    ]
    decisions = []
    for rule, others, candidates in cases:
        for ticket in candidates:
            plain = rule.should_stop(1, ticket, others)
            assert rule.should_stop(1, ticket, others, [0.0] * (1 + len(others))) == plain
            decisions.append(plain)
    assert True in decisions and False in decisions  # the comparison covers both outcomes


def test_violations_must_match_the_tickets() -> None:
    with pytest.raises(ValueError, match="violations"):
        MOASHA(ACC, eta=3).should_stop(1, {"val_accuracy": 0.5}, _acc(0.9), [0.0])


def test_total_violation() -> None:
    assert total_violation({"val_accuracy:min": -0.01, "energy_uj:max": 0.0}) == 0.0
    assert total_violation({"val_accuracy:min": 0.07, "energy_uj:max": 0.2}) == pytest.approx(0.27)
    assert total_violation({"val_accuracy:min": float("nan")}) == math.inf
    assert total_violation({}) == 0.0


def test_both_backends_rank_the_same_constrained_rung(tmp_path: Path) -> None:
    # the Optuna backend passes the Ticket, the Ray scheduler the Tune result built from it: same decision,
    # and both rank with the constraint violations computed from the table's metric columns
    from sltsearch.search.ray_backend import _result

    spec = parse_spec(tiny_spec_dict(
        objective={"constraints": {"val_accuracy": {"min": 0.9}}},
        search={"early_stopping": {"rule": "mo_asha", "eta": 3, "min_rungs": 1}},
    ))
    # trials 0 and 1: far better energy but below 0.9 accuracy (infeasible); trial 2: feasible, costly
    TicketStore(tmp_path).append([_ticket(0, 1, 0.85, 1e-9), _ticket(1, 1, 0.8, 2e-9), _ticket(2, 1, 0.95, 5.0)],
                                 status="ok")
    stopper = RungStopper(spec, tmp_path)
    params = {"rounds": 3}
    mine = _ticket(3, 1, 0.93, 6.0)  # feasible, dominated by trial 2 only: ranks second of 4 -> keep 2: continue
    assert not stopper.should_stop(3, params, mine, 1)
    assert not stopper.should_stop(3, params, _result(mine, 3), 1)
    # dominating every ticket but one, violating by 0.11 (trial 0 by 0.05, trial 1 by 0.1): all three rank better
    low = _ticket(3, 1, 0.79, 1e-12)
    assert stopper.should_stop(3, params, low, 1) and stopper.should_stop(3, params, _result(low, 3), 1)
    unconstrained = RungStopper(parse_spec(tiny_spec_dict(
        search={"early_stopping": {"rule": "mo_asha", "eta": 3, "min_rungs": 1}})), tmp_path)
    assert unconstrained.should_stop(3, params, mine, 1)  # without constraints trials 0-2 all rank better
    assert not unconstrained.should_stop(3, params, low, 1)
    # a smaller violation than trials 0 and 1 (0.01): only the feasible trial 2 ranks better -> continue
    assert not stopper.should_stop(3, params, _ticket(3, 1, 0.89, 1e-12), 1)


# --- ranking that scales with the rung (one ticket per trial: tens of thousands of rows) ---------------------


@pytest.mark.parametrize("m", [1, 2, 3])
def test_fast_ranks_equal_peeling_the_fronts(m: int) -> None:
    rng = np.random.default_rng(m)
    for n in (1, 2, 7, 60, 300):
        losses = rng.integers(0, 6, size=(n, m)).astype(float)  # coarse values: many ties and equal rows
        assert nondominated_ranks(losses).tolist() == pairwise_ranks(losses).tolist(), n
        smooth = rng.random((n, m))
        assert nondominated_ranks(smooth).tolist() == pairwise_ranks(smooth).tolist(), n


def test_a_dominated_ticket_is_stopped_before_ranking_and_the_decision_is_the_same() -> None:
    rng = np.random.default_rng(5)
    for m, objectives in ((1, ACC), (2, ACC_ENERGY), (3, THREE)):
        rule = MOASHA(objectives, eta=3)
        names = list(objectives)
        for _ in range(40):
            vectors = [dict(zip(names, row, strict=True)) for row in rng.integers(0, 5, size=(12, m)) / 4]
            violations = np.where(rng.random(12) < 0.4, rng.integers(1, 3, 12) / 2, 0.0)
            for viol in (None, violations):
                losses = as_losses(vectors, objectives)
                full = better_than(losses, 0, viol) >= rule.keep_count(12)
                assert rule.should_stop(1, vectors[0], vectors[1:], viol) == full
                assert surely_better(losses, viol) <= better_than(losses, 0, viol)
