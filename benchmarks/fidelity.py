"""Which early look predicts the final front: early-stopping rules replayed over tabulated search spaces.

`benchmarks/fidelity_table.py` runs every configuration of a space to its most IMP rounds once, so every
ticket any search over the space can produce is in a table, with every stage's per-epoch validation history.
Here searches are replayed over that table: Optuna's own samplers ask for parameters exactly as the Optuna
backend does (same sampler, seed, distributions; repeats skipped), a trial "runs" by reading its rounds from
the table, the stage cache is simulated (a stage computed once costs nothing again: dense runs shared per T,
IMP prefixes shared by stepped rates), and a rule decides after every round from the tickets reported so far,
as `RungStopper` does from the run folder (MO-ASHA is the engine's own `MOASHA`). The clock: every computed
stage costs its epochs x the calibrated seconds of one epoch at its T, plus one measurement (one worker, no
start-up): the replays rank rules on a shared machine, they do not time the engine.

For every candidate, over samplers x seeds, against the same searches without early stopping:

- front trials cut: the rule replayed on the searches without it, trial by trial (`benchmarks/search.py`'s
  replay, for any rule): trials holding a ticket of the final front (region of interest) stopped before it;
- same trial budget: time to 95 % of the pair's better final hypervolume (median, range, how often the search
  with the rule never gets there), clock ratio, final hypervolume;
- equal clock: the search with the rule runs until the clock of the one without (up to twice the trials).

A rule pays (`pays`) when at equal clock it reaches 95 % sooner (median above 1.1x, never missing it), its replay
cuts no front trial and it keeps the final hypervolume, at the spec's budget; and again on as many fresh seeds,
since the best of many candidates on one set of seeds is flattered by chance.

Ceilings (random sampler, whose parameters do not depend on what it is told): an oracle that stops every trial
right after its last ticket on the final front, and a look inside a round that knows which rounds end below the
region of interest and stops them after 2 epochs. What an early look sees: rank correlations between a rung's
ranking and the trial's best later ticket, and how well the accuracy after e epochs of a round's retraining
tells a ticket in the region of interest from one below it.

    python benchmarks/fidelity.py                                   # both tasks (their tables must exist)
    python benchmarks/fidelity.py --tasks digits --seeds 3 --budgets 10
Writes results/benchmarks/fidelity.md. The last line is the one a script reads.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fidelity_table import RESOURCE, cost_file, grid_values  # noqa: E402
from harness import Bench  # noqa: E402
from search import time_to  # noqa: E402

from sltsearch.results.pareto import hypervolume, pareto_front  # noqa: E402
from sltsearch.search.mo_asha import MOASHA, RUNG_KINDS, as_losses, nondominated_ranks, rung_rows  # noqa: E402
from sltsearch.search.optuna_backend import make_sampler  # noqa: E402
from sltsearch.search.space import to_distributions  # noqa: E402
from sltsearch.spec import Spec, load_spec  # noqa: E402
from sltsearch.spec.spaces import resolve_spec_path  # noqa: E402

OUT = ROOT / "results" / "benchmarks" / "fidelity.md"
BENCH = ROOT / "results" / "benchmarks"
# task -> (table, bundled space, region of interest: the validation accuracy the hypervolume counts from,
# declared before the replays: about 8 points below the dense networks' accuracy, as benchmarks/search.py's 0.9
# on digits)
TASKS = {
    "digits": (BENCH / "fidelity_digits.csv", "default", 0.9),
    "mnist1d": (BENCH / "fidelity_mnist1d.csv", "mnist1d", 0.85),
}
LOOK_EPOCHS = 2  # the in-round look: validation accuracy after this many epochs of a round's retraining


@dataclass
class Table:
    """A tabulated space: every configuration's tickets by round, and every stage's compute seconds."""

    names: list[str]  # the searched parameters other than the resource
    rows: dict[tuple, pd.DataFrame]  # configuration -> its tickets, one row per round (0 = dense)
    cost: dict[str, float]  # stage key -> compute seconds
    costs: dict[str, dict[str, float]]  # T -> calibrated epoch_s / val_s / measure_s (empty: measured seconds)

    @classmethod
    def read(cls, path: Path, spec: Spec) -> Table:
        """The table at ``path``; its clock: the calibrated costs beside it when there are (``--calibrate``),
        else every stage's own measured seconds."""
        if not path.exists():
            raise SystemExit(f"{path}: no table; make it with benchmarks/fidelity_table.py (see its docstring)")
        frame = pd.read_csv(path)
        frame["epochs"] = stage_epochs(frame, spec)
        names = [n for n in spec.space if n != RESOURCE]
        costs: dict[str, dict[str, float]] = {}
        if cost_file(path).exists():
            costs = json.loads(cost_file(path).read_text())["per_time_steps"]
            steps = frame["time_steps"] if "time_steps" in frame else pd.Series(spec.model.time_steps, frame.index)
            unit = pd.DataFrame([costs[str(int(t))] for t in steps], index=frame.index)
            frame = frame.assign(cost_s=frame["epochs"] * unit["epoch_s"] + unit["measure_s"])
        cost = frame.groupby("stage_key")["cost_s"].max().to_dict()
        rows = {_key(dict(zip(names, k, strict=True)), names): g.sort_values("round").reset_index(drop=True)
                for k, g in frame.groupby(names)}
        return cls(names, rows, cost, costs)

    def trajectory(self, params: dict[str, Any]) -> pd.DataFrame:
        rows = self.rows[_key(params, self.names)]
        return rows[rows["round"] <= int(params[RESOURCE])]

    def frame(self) -> pd.DataFrame:
        return pd.concat(self.rows.values(), ignore_index=True)


def stage_epochs(frame: pd.DataFrame, spec: Spec) -> pd.Series:
    """Epochs each row's stage trained: the table's ``epochs`` column, or (older tables) the dense recipe for
    round 0 and the recipe less the rewind epoch for a round."""
    derived = spec.train.epochs - frame["round"].gt(0) * frame.get("rewind_epoch", 0)
    return frame["epochs"].fillna(derived) if "epochs" in frame else derived


def _key(params: dict[str, Any], names: list[str]) -> tuple:
    return tuple(round(float(params[n]), 6) for n in names)


# (round just measured, its ticket, the other trials' tickets so far, the trial's params, its own tickets so far)
Rule = Callable[[int, dict[str, Any], pd.DataFrame, dict[str, Any], list[dict[str, Any]]], bool]
# (a round's table row before its ticket exists, the earlier rounds' rows with their histories (tickets and cut
# looks), the trial's params) -> epochs after which its retraining is cut, or None
Look = Callable[[pd.Series, pd.DataFrame, dict[str, Any]], int | None]


def mo_asha_rule(objectives: dict[str, str], **options: Any) -> Rule:
    """The engine's rule: `MOASHA.should_stop` at a rung, over the other trials' tickets at that rung."""
    rule = MOASHA(objectives, **options)

    def decide(rung: int, ticket: dict[str, Any], earlier: pd.DataFrame, params: dict[str, Any],
               own: list[dict[str, Any]]) -> bool:
        if not rule.is_rung(rung) or rung >= int(params[RESOURCE]):
            return False
        others = [{k: float(r[k]) for k in rule.objectives} for _, r in rung_rows(earlier, rung).iterrows()]
        return rule.should_stop(rung, {k: float(ticket[k]) for k in rule.objectives}, others)

    return decide


def sparsity_level(density: float, eta: float) -> int:
    """The sparsity rung a density has reached: the largest k with density <= eta**-k."""
    return math.floor(math.log(1.0 / max(density, 1e-12)) / math.log(eta) + 1e-9)


def sparsity_rung_rule(objectives: dict[str, str], eta: float = 3.0) -> Rule:
    """MO-ASHA with rungs in sparsity instead of rounds: a trial is judged when its ticket first reaches a new
    density level eta**-k, against every other trial's first ticket at or past that level (tickets of equal
    sparsity compete, whatever the rate that got them there)."""
    rule = MOASHA(objectives, eta=eta)

    def decide(rung: int, ticket: dict[str, Any], earlier: pd.DataFrame, params: dict[str, Any],
               own: list[dict[str, Any]]) -> bool:
        if rung >= int(params[RESOURCE]) or len(own) < 2 or earlier.empty:
            return False
        level = sparsity_level(1.0 - ticket["sparsity"], eta)
        if level <= sparsity_level(1.0 - own[-2]["sparsity"], eta):
            return False  # no new level reached this round
        main = earlier[earlier["round"] > 0]
        reached = main[[sparsity_level(1.0 - s, eta) >= level for s in main["sparsity"]]]
        firsts = reached.sort_values("round").drop_duplicates("trial")
        others = [{k: float(r[k]) for k in objectives} for _, r in firsts.iterrows()]
        return rule.should_stop(1, {k: float(ticket[k]) for k in objectives}, others)

    return decide


def bound_rule(margin: float) -> Rule:
    """Stop a trial when even its best case is dominated by a ticket measured already: its last accuracy (+
    ``margin``) at the energy its remaining rounds would reach if each cut energy by the ratio its last did."""

    def decide(rung: int, ticket: dict[str, Any], earlier: pd.DataFrame, params: dict[str, Any],
               own: list[dict[str, Any]]) -> bool:
        last = int(params[RESOURCE])
        if rung >= last or earlier.empty or len(own) < 2:
            return False
        ratio = min(1.0, ticket["energy_uj"] / own[-2]["energy_uj"])
        acc, energy = ticket["val_accuracy"] + margin, ticket["energy_uj"] * ratio ** (last - rung)
        seen = earlier[earlier["kind"].isin(("dense", *RUNG_KINDS))]
        a, e = seen["val_accuracy"].to_numpy(), seen["energy_uj"].to_numpy()
        return bool(((a >= acc) & (e <= energy) & ((a > acc) | (e < energy))).any())

    return decide


def cliff_rule(drop: float) -> Rule:
    """Stop a trial whose last round lost more than ``drop`` validation accuracy against the round before: past
    such a cliff, more pruning does not bring the accuracy back."""

    def decide(rung: int, ticket: dict[str, Any], earlier: pd.DataFrame, params: dict[str, Any],
               own: list[dict[str, Any]]) -> bool:
        fell = len(own) >= 2 and ticket["val_accuracy"] < own[-2]["val_accuracy"] - drop
        return rung < int(params[RESOURCE]) and fell

    return decide


def accuracy_after(row: Any, epochs: int) -> float | None:
    """A round's validation accuracy after ``epochs`` epochs of its retraining (None: no such epoch)."""
    history = json.loads(row["history"]) if isinstance(row.get("history"), str) else []
    return float(history[epochs - 1]) if len(history) > epochs else None


def chance_look(chance: float, epochs: int = LOOK_EPOCHS) -> Look:
    """A shorter retraining as the low fidelity: a round whose validation accuracy after ``epochs`` epochs of
    its retraining is still below 1.5 x chance is cut there (no ticket) and its trial stops."""

    def look(row: pd.Series, earlier: pd.DataFrame, params: dict[str, Any]) -> int | None:
        early = accuracy_after(row, epochs)
        return epochs if early is not None and early < 1.5 * chance else None

    return look


def short_rung_look(objectives: dict[str, str], epochs: int = LOOK_EPOCHS, **options: Any) -> Look:
    """MO-ASHA whose rungs see a shorter retraining: at a rung, every trial is ranked by its validation accuracy
    after ``epochs`` epochs of that round's retraining (and its ticket's energy); a trial outside the top 1/eta
    is cut there, after ``epochs`` epochs, without a ticket. The energy is the finished ticket's (the table
    measures a ticket only after its whole retraining; energy follows the mask far more than the epochs)."""
    rule = MOASHA(objectives, **options)

    def at_look(row: Any) -> dict[str, float] | None:
        early = accuracy_after(row, epochs)
        if early is None:
            return None
        return {k: early if k == "val_accuracy" else float(row[k]) for k in rule.objectives}

    def look(row: pd.Series, earlier: pd.DataFrame, params: dict[str, Any]) -> int | None:
        rung, mine = int(row["round"]), at_look(row)
        if mine is None or not rule.is_rung(rung) or rung >= int(params[RESOURCE]):
            return None
        others = [v for _, r in rung_rows(earlier, rung).iterrows() if (v := at_look(r)) is not None]
        return epochs if rule.should_stop(rung, mine, others) else None

    return look


@dataclass
class Candidate:
    """A rule to replay: after-round ``rule``, in-round ``look``; ``neighbour``: a stopped trial's budget goes
    to a neighbour of a front trial; ``ceiling``: needs knowledge of the outcome (random sampler only)."""

    name: str
    rule: Rule | None = None
    look: Look | None = None
    neighbour: bool = False
    ceiling: str | None = None  # "oracle" | "roi_look"
    every: int = 0  # control: every n-th trial is a front neighbour, with or without stopping
    free_pruned: bool = False  # control: a stopped trial uses no budget, the sampler draws the next trial


@dataclass
class Search:
    """One replayed search: its tickets, the clock after every finished trial, and the trials' states."""

    frame: pd.DataFrame
    curve: list[tuple[float, int]] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    rounds: int = 0  # IMP rounds the trials ran
    reused: int = 0  # ... of which another trial had computed (a cached prefix)
    subsumed: int = 0  # trials whose every round another trial had computed

    @property
    def wall(self) -> float:
        return self.curve[-1][0] if self.curve else 0.0


def neighbour_of(front_params: list[dict[str, Any]], spec: Spec, rng: random.Random) -> dict[str, Any]:
    """One searched value of a random front trial moved one step (the front's neighbourhood)."""
    params = dict(rng.choice(front_params))
    name = rng.choice(list(spec.space))
    values = grid_values(spec.space[name])
    i = min(range(len(values)), key=lambda j: abs(float(values[j]) - float(params[name])))
    params[name] = values[max(0, min(len(values) - 1, i + rng.choice((-1, 1))))]
    return params


def simulate(table: Table, spec: Spec, sampler: str, seed: int, trials: int, objectives: dict[str, str],
             cand: Candidate | None = None, clock_limit: float | None = None) -> Search:
    """A sequential search over ``table``: ``trials`` finished trials (with ``cand.neighbour``: trials that ran
    to their end; at most twice as many in all), or (``clock_limit``) until the clock passes it."""
    cand = cand or Candidate("none")
    spec = spec.model_copy(update={"seed": seed, "search": spec.search.model_copy(update={"sampler": sampler})})
    study = optuna.create_study(sampler=make_sampler(spec), directions=list(objectives.values()))
    distributions = to_distributions(spec.space)
    rng = random.Random(seed)
    computed: set[str] = set()
    clock, rows, seen, counted = 0.0, [], set(), 0
    looked: list[dict[str, Any]] = []  # rounds a look cut (no ticket): rung entries for the next looks
    out = Search(pd.DataFrame())
    while counted < trials and len(out.states) < 2 * trials:
        trial = study.ask(distributions)
        params = dict(trial.params)
        pkey = tuple(sorted((k, repr(v)) for k, v in params.items()))
        if pkey in seen:  # a repeat of a finished trial: never run (the Optuna backend's rule)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        seen.add(pkey)
        earlier = pd.DataFrame(rows)
        seen_rounds = pd.DataFrame(rows + looked) if looked else earlier
        state, final, own, fresh = "COMPLETE", None, [], False
        for _, tk in table.trajectory(params).iterrows():
            main_round = int(tk["round"]) > 0
            if cand.look is not None and main_round and tk["stage_key"] not in computed:
                cut = cand.look(tk, seen_rounds, params)
                if cut is not None:  # the round's retraining cut after ``cut`` epochs: no ticket, trial stops
                    clock += float(table.cost.get(tk["stage_key"], 0.0)) * cut / max(1, int(tk["epochs"]))
                    looked.append({"trial": trial.number, "round": int(tk["round"]), "kind": tk["kind"],
                                   "status": "ok", "history": tk["history"],
                                   **{c: float(tk[c]) for c in ("val_accuracy", "energy_uj", "sparsity")}})
                    state = "PRUNED"
                    break
            out.rounds += main_round
            if tk["stage_key"] not in computed:
                computed.add(tk["stage_key"])
                clock += float(table.cost.get(tk["stage_key"], 0.0))
                fresh |= main_round
            else:
                out.reused += main_round
            row = {"trial": trial.number, "round": int(tk["round"]), "kind": tk["kind"],
                   "ticket_id": f"t{trial.number:04d}r{int(tk['round']):02d}", "stage_key": tk["stage_key"],
                   "status": "ok", "history": tk.get("history"), **{f"param_{k}": v for k, v in params.items()},
                   **{c: float(tk[c]) for c in ("val_accuracy", "test_accuracy", "energy_uj", "sparsity")}}
            rows.append(row)
            own.append(row)
            final = row
            if cand.rule is not None and row["kind"] in RUNG_KINDS and cand.rule(row["round"], row, earlier,
                                                                                  params, own):
                state = "PRUNED"
                break
        out.subsumed += not fresh and int(params[RESOURCE]) > 0
        if state == "PRUNED":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, [float(final[m]) for m in objectives])
        if rows and ((state == "PRUNED" and cand.neighbour) or (cand.every and len(out.states) % cand.every == 0)):
            table_so_far = pd.DataFrame(rows)
            trials_params = table_so_far.drop_duplicates("trial").set_index("trial")
            front_params = [{k: trials_params.at[n, f"param_{k}"] for k in spec.space}
                            for n in pareto_front(table_so_far, objectives)["trial"].unique()]
            study.enqueue_trial(neighbour_of(front_params, spec, rng), skip_if_exists=True)
        counted += 1 if (state == "COMPLETE" or not (cand.neighbour or cand.free_pruned)) else 0
        out.curve.append((clock, trial.number))
        out.states.append(state)
        if clock_limit is not None and clock >= clock_limit:
            break
    out.frame = pd.DataFrame(rows)
    return out


def front_rounds(frame: pd.DataFrame, objectives: dict[str, str], min_accuracy: float) -> pd.Series:
    """Trial -> its latest round holding a ticket of the final front in the region of interest."""
    front = pareto_front(frame, objectives)
    return front[front["val_accuracy"] >= min_accuracy].groupby("trial")["round"].max()


def replay(frame: pd.DataFrame, cand: Candidate, objectives: dict[str, str], min_accuracy: float) -> tuple[int, int]:
    """The candidate's decisions replayed on a search without it, trial by trial in order (each trial judged on
    the earlier trials' tickets, as a sequential search would): (trials holding a ticket of the final front, in
    the region of interest, that it would stop before that ticket's round, or whose look would cut a round up
    to that one; trials holding one). For MO-ASHA this is `benchmarks/search.py`'s ``replay_rule``."""
    latest = front_rounds(frame, objectives, min_accuracy)
    lost = 0
    for number, last in latest.items():
        mine = frame[frame["trial"] == number].sort_values("round")
        earlier = frame[frame["trial"] < number]
        params = {c[len("param_"):]: v for c, v in mine.iloc[0].items() if str(c).startswith("param_")}
        own: list[dict[str, Any]] = []
        for _, row in mine.iterrows():
            if cand.look is not None and row["kind"] in RUNG_KINDS and cand.look(row, earlier, params) is not None:
                lost += int(row["round"]) <= last
                break
            own.append(row.to_dict())
            if cand.rule is not None and row["kind"] in RUNG_KINDS and cand.rule(int(row["round"]), own[-1], earlier,
                                                                                  params, own):
                lost += int(row["round"]) < last
                break
    return lost, len(latest)


def hv_curve(search: Search, objectives: dict[str, str], reference: dict[str, float]) -> list[tuple[float, float]]:
    """(clock, hypervolume of the tickets of the trials finished so far) after every trial."""
    frame = search.frame
    return [(clock, hypervolume(pareto_front(frame[frame["trial"] <= number], objectives), objectives, reference))
            for clock, number in search.curve]


def speedup(plain: list[tuple[float, float]], other: list[tuple[float, float]]) -> float:
    """Time to 95 % of the pair's better final hypervolume, without / with (0: never with; inf: never without)."""
    best = max(plain[-1][1], other[-1][1] if other else 0.0)
    t0, t1 = time_to(plain, 0.95 * best), time_to(other, 0.95 * best)
    return 0.0 if math.isinf(t1) else t0 / t1


def spread(values: list[float]) -> str:
    """Median (min..max, never reached n) of speed-ups."""
    if not values:
        return "n/a"
    never = sum(1 for v in values if v == 0)
    missed = f", never {never}" if never else ""
    return f"{statistics.median(values):.2f}x ({min(values):.2f}..{max(values):.2f}{missed})".replace("infx", "inf")


@dataclass
class Replays:
    """The searches without early stopping of one task and budget, per (sampler, seed)."""

    plains: dict[tuple[str, int], Search]
    curves: dict[tuple[str, int], list[tuple[float, float]]]


def evaluate(table: Table, spec: Spec, cand: Candidate, replays: Replays, trials: int, objectives: dict[str, str],
             reference: dict[str, float], min_acc: float) -> dict[str, Any]:
    """One candidate against the searches without early stopping: its row of the rules table."""
    cut = front = 0
    same_speed, equal_speed, clock_ratio, hv_same = [], [], [], []
    for (sampler, seed), plain in replays.plains.items():
        if cand.ceiling and sampler != "random":
            continue
        c0 = replays.curves[(sampler, seed)]
        use = cand
        if cand.ceiling == "oracle":  # stops every trial right after its last ticket on this search's front
            last = front_rounds(plain.frame, objectives, min_acc)
            by_params = {_key({k: r[f"param_{k}"] for k in spec.space}, list(spec.space)): int(last.get(r["trial"], 0))
                         for _, r in plain.frame.drop_duplicates("trial").iterrows()}
            use = Candidate(cand.name, rule=lambda rung, t, e, p, o, b=by_params: (
                rung >= max(1, b.get(_key(p, list(spec.space)), 0)) and rung < int(p[RESOURCE])))
        elif cand.ceiling == "roi_look":  # knows which rounds end below the region of interest
            use = Candidate(cand.name, look=lambda row, e, p: LOOK_EPOCHS if row["val_accuracy"] < min_acc else None)
        if use.rule is not None or use.look is not None:
            lost, holding = replay(plain.frame, use, objectives, min_acc)
            cut, front = cut + lost, front + holding
        same = simulate(table, spec, sampler, seed, trials, objectives, use)
        equal = simulate(table, spec, sampler, seed, 2 * trials, objectives, use, clock_limit=plain.wall)
        c1 = hv_curve(same, objectives, reference)
        c2 = [(c, hv) for c, hv in hv_curve(equal, objectives, reference) if c <= plain.wall]
        same_speed.append(speedup(c0, c1))
        equal_speed.append(speedup(c0, c2))
        clock_ratio.append(plain.wall / same.wall)
        hv_same.append(c1[-1][1])
    return {"name": cand.name, "lost": cut, "cut": f"{cut} of {front}" if front or cut else "-", "same": same_speed,
            "equal": equal_speed, "clock": statistics.mean(clock_ratio), "hv": statistics.mean(hv_same)}


def candidates(objectives: dict[str, str], chance: float) -> list[Candidate]:
    """Today's MO-ASHA and the issue's candidates (a later first rung, ranking by sparsity too, a shorter
    retraining as the low fidelity, a stopped trial's budget to the front's neighbourhood, with two controls:
    the budget alone, the neighbours alone), two rules from the table's shape (best case dominated, accuracy
    cliff), and the two ceilings. A shorter retraining is tried twice: as an absolute floor, and as the
    fidelity MO-ASHA ranks on at its rungs. With ``neighbour`` or ``free_pruned`` the budget counts trials run to
    their end (at most twice as many in all)."""
    sparsity = {**objectives, "sparsity": "maximize"}
    today = mo_asha_rule(objectives)
    return [
        Candidate("MO-ASHA today (eta 3, rungs 1, 3)", today),
        Candidate("MO-ASHA, every round a rung", mo_asha_rule(objectives, spacing="every_round")),
        Candidate("MO-ASHA, first rung 2", mo_asha_rule(objectives, min_rungs=2)),
        Candidate("MO-ASHA, first rung 3", mo_asha_rule(objectives, min_rungs=3)),
        Candidate("MO-ASHA, eta 2, first rung 2", mo_asha_rule(objectives, eta=2, min_rungs=2)),
        Candidate("MO-ASHA ranking sparsity too", mo_asha_rule(sparsity)),
        Candidate("MO-ASHA ranking sparsity too, first rung 2", mo_asha_rule(sparsity, min_rungs=2)),
        Candidate("MO-ASHA, rungs at sparsity levels 1/3, 1/9, ... instead of rounds", sparsity_rung_rule(objectives)),
        Candidate("MO-ASHA today, a stopped trial uses no budget (the sampler draws on)", today, free_pruned=True),
        Candidate("MO-ASHA today, a stopped trial's budget to a front neighbour", today, neighbour=True),
        Candidate("control: no stopping, every 3rd trial a front neighbour", every=3),
        Candidate("MO-ASHA at sparsity levels, a stopped trial's budget to a front neighbour",
                  sparsity_rung_rule(objectives), neighbour=True),
        Candidate("best case dominated (accuracy margin 0)", bound_rule(0.0)),
        Candidate("best case dominated (accuracy margin 0.005)", bound_rule(0.005)),
        Candidate("accuracy cliff (a round loses > 0.1)", cliff_rule(0.1)),
        Candidate(f"shorter retraining: a round below 1.5 x chance after {LOOK_EPOCHS} epochs stops",
                  look=chance_look(chance)),
        Candidate(f"shorter retraining at MO-ASHA's rungs: ranked after {LOOK_EPOCHS} epochs of the round (rungs 1, 3)",
                  look=short_rung_look(objectives)),
        Candidate(f"shorter retraining at MO-ASHA's rungs: ranked after {LOOK_EPOCHS} epochs, first rung 2",
                  look=short_rung_look(objectives, min_rungs=2)),
        Candidate("ceiling: oracle, every trial stopped after its last front ticket", ceiling="oracle"),
        Candidate(f"ceiling: a round ending below the region cut after {LOOK_EPOCHS} epochs", ceiling="roi_look"),
    ]


def early_look(table: Table, objectives: dict[str, str], min_acc: float) -> list[str]:
    """Rank correlations: a rung's ranking of the configurations against their best later ticket in the region
    of interest; and how the accuracy after e epochs of a round's retraining separates tickets in the region."""
    from scipy.stats import spearmanr

    frame = table.frame()
    later = frame[(frame["round"] > 0) & (frame["val_accuracy"] >= min_acc)].reset_index(drop=True)
    later["front"] = nondominated_ranks(as_losses(later.to_dict("records"), objectives))
    worst = int(later["front"].max()) + 1 if not later.empty else 1
    criteria = {"accuracy and energy (MO-ASHA)": objectives, "+ sparsity": {**objectives, "sparsity": "maximize"},
                "energy only": {"energy_uj": "minimize"}, "accuracy only": {"val_accuracy": "maximize"}}
    top = int(frame["round"].max())
    lines = [
        "What a rung sees: Spearman correlation between a rung's ranking of all configurations (non-dominated "
        "sorting of their tickets at that round) and the front index of their best later ticket in the region of "
        "interest (configurations without one rank last); 1 = the rung ranks as the later rounds will.",
        "",
        "| rung | " + " | ".join(criteria) + " |",
        "|---|" + "---|" * len(criteria),
    ]
    for rung in range(1, top):
        at = frame[frame["round"] == rung].reset_index(drop=True)
        best = later[later["round"] > rung].groupby(table.names)["front"].min()
        cells = []
        for crit in criteria.values():
            ranks = pd.Series(nondominated_ranks(as_losses(at.to_dict("records"), crit)), index=at.index)
            joined = at.assign(rank=ranks).set_index(table.names).join(best.rename("later"))
            cells.append(f"{spearmanr(joined['rank'], joined['later'].fillna(worst)).correlation:.2f}")
        lines.append(f"| {rung} | " + " | ".join(cells) + " |")
    rounds = frame[(frame["round"] > 0) & frame["history"].notna()] if "history" in frame else frame.iloc[0:0]
    if not rounds.empty:
        inside = rounds["val_accuracy"] >= min_acc
        lines += ["", f"What a shorter retraining sees: a round's validation accuracy after e epochs of its retraining "
                  f"against its ticket's (the best epoch's), over the {len(rounds)} rounds of the table "
                  f"({int(inside.sum())} in the region of interest, {int((~inside).sum())} below it).", "",
                  "| e | Spearman with the ticket's accuracy | lowest after e, in the region "
                  "| highest after e, below |",
                  "|---|---|---|---|"]
        for e in (1, 2, 3):
            after = rounds["history"].map(lambda h, e=e: json.loads(h)[e - 1])
            rho = spearmanr(after, rounds["val_accuracy"]).correlation
            lines.append(f"| {e} | {rho:.2f} | {after[inside].min():.3f} | {after[~inside].max():.3f} |")
    return lines + [""]


def work_lines(table: Table, replays: Replays, trials: int, min_acc: float) -> list[str]:
    """Where a search's work goes: rounds reused across trials, trials entirely cached, the shares of a stage."""
    plains = list(replays.plains.values())
    rounds, reused = sum(p.rounds for p in plains), sum(p.reused for p in plains)
    subsumed, total = sum(p.subsumed for p in plains), sum(len(p.states) for p in plains)
    lines = [f"Work per front ({trials} trials, searches without early stopping, all samplers and seeds): "
             f"{reused} of {rounds} IMP rounds the trials ran ({100 * reused / max(1, rounds):.1f} %) were another "
             f"trial's cached prefix (same rate, rewind epoch and T); {subsumed} of {total} trials "
             f"({100 * subsumed / max(1, total):.1f} %) computed nothing new (every round cached)."]
    if table.costs:
        shares = []
        for steps, c in table.costs.items():
            if "val_s" in c:
                epochs = 10
                whole = epochs * c["epoch_s"] + c["measure_s"]
                shares.append(f"T={steps}: training {100 * epochs * (c['epoch_s'] - c['val_s']) / whole:.0f} %, "
                              f"per-epoch validation {100 * epochs * c['val_s'] / whole:.0f} %, ticket measurement "
                              f"{100 * c['measure_s'] / whole:.0f} %")
        if shares:
            lines.append("A 10-epoch stage's time (calibrated): " + "; ".join(shares) + ".")
    frame = table.frame()
    rounds_f = frame[frame["round"] > 0]
    cost = rounds_f["stage_key"].map(table.cost)
    below = cost[rounds_f["val_accuracy"] < min_acc].sum() / cost.sum()
    lines.append(f"Across the whole table, {100 * below:.0f} % of the IMP rounds' compute gives tickets below the "
                 "region of interest.")
    return lines + [""]


def task_report(task: str, args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    """One task's section and its verdict."""
    path, space, min_acc = TASKS[task]
    spec = load_spec(resolve_spec_path(space))
    objectives = dict(spec.objective.metrics)
    table = Table.read(path, spec)
    frame = table.frame()
    dense = frame[frame["round"] == 0].drop_duplicates("stage_key")
    reference = {"val_accuracy": min_acc, "energy_uj": 1.1 * float(frame["energy_uj"].max())}
    chance = 1.0 / 10  # both tasks have ten classes
    lines = [
        f"## {task} (`{space}` space: {len(table.rows)} configurations x up to {int(spec.space[RESOURCE].high)} "
        "rounds)",
        "",
        f"Dense validation accuracy {dense['val_accuracy'].min():.3f}..{dense['val_accuracy'].max():.3f} (per T). "
        f"Hypervolume reference ({min_acc}, {reference['energy_uj']:.4f} uJ): the region of interest is tickets "
        f"above {min_acc:.0%} validation accuracy. Clock: "
        + (", ".join(f"T={t}: {c['epoch_s']:.2f} s per epoch" for t, c in table.costs.items()) or "measured seconds")
        + f" (calibrated, `{cost_file(path).name}`).",
        "",
        *early_look(table, objectives, min_acc),
    ]
    verdict: dict[str, Any] = {}

    def searches(trials: int, seeds: range) -> tuple[Replays, float]:
        """The searches without early stopping, and the final hypervolume a paying rule must keep (mean - sd)."""
        plains = {(s, seed): simulate(table, spec, s, seed, trials, objectives)
                  for s in args.samplers for seed in seeds}
        replays = Replays(plains, {k: hv_curve(v, objectives, reference) for k, v in plains.items()})
        finals = [c[-1][1] for c in replays.curves.values()]
        sd = statistics.stdev(finals) if len(finals) > 1 else 0.0
        return replays, statistics.mean(finals) - sd

    for trials in args.budgets:
        replays, hv_floor = searches(trials, range(args.seeds))
        finals = [c[-1][1] for c in replays.curves.values()]
        sd = statistics.mean(finals) - hv_floor
        own = spec.search.n_trials
        budget = "the spec's budget" if trials == own else f"the spec's budget is {own}"
        lines += [
            f"### {trials} trials per search ({budget})",
            "",
            *work_lines(table, replays, trials, min_acc),
            f"Samplers {', '.join(args.samplers)} x seeds 0..{args.seeds - 1}; without early stopping the final "
            f"hypervolume is {statistics.mean(finals):.4f} ± {sd:.4f} (mean ± sd).",
            "",
            "| candidate | front trials cut (replay) | same budget: t95 speed-up | clock ratio | final HV | "
            "equal clock: t95 speed-up | pays |",
            "|---|---|---|---|---|---|---|",
        ]
        for cand in candidates(objectives, chance):
            row = evaluate(table, spec, cand, replays, trials, objectives, reference, min_acc)
            row["pays"] = pays(row, hv_floor)
            verdict_cell = "ceiling" if cand.ceiling else "control" if cand.every else "yes" if row["pays"] else "no"
            lines.append(f"| {row['name']} | {row['cut']} | {spread(row['same'])} | {row['clock']:.2f}x | "
                         f"{row['hv']:.4f} | {spread(row['equal'])} | {verdict_cell} |")
            print(lines[-1], flush=True)
            if trials == spec.search.n_trials and not cand.ceiling and not cand.every:
                verdict[cand.name] = row
        lines.append("")
    # a rule chosen as the best of many on these seeds looks better than it is: it pays only if it pays again on
    # as many fresh seeds
    chosen = [c for c in candidates(objectives, chance) if verdict.get(c.name, {}).get("pays")]
    if chosen:
        fresh = range(args.seeds, 2 * args.seeds)
        replays, hv_floor = searches(spec.search.n_trials, fresh)
        lines += [f"### Held-out check: the rules that pay, again on seeds {fresh.start}..{fresh.stop - 1}", "",
                  "| candidate | front trials cut (replay) | final HV | equal clock: t95 speed-up | pays again |",
                  "|---|---|---|---|---|"]
        for cand in chosen:
            row = evaluate(table, spec, cand, replays, spec.search.n_trials, objectives, reference, min_acc)
            verdict[cand.name]["pays"] = again = pays(row, hv_floor)
            verdict[cand.name]["held_out"] = row
            lines.append(f"| {cand.name} | {row['cut']} | {row['hv']:.4f} | {spread(row['equal'])} | "
                         f"{'yes' if again else 'no'} |")
            print(lines[-1], flush=True)
        lines.append("")
    return lines, verdict


def pays(row: dict[str, Any], hv_floor: float) -> bool:
    """A rule pays when, at equal clock, its searches reach 95 % of the final hypervolume sooner (median speed-up
    above 1.1x) and every one of them reaches it, while its replay cuts no front trial and its final hypervolume
    at the same trial budget stays within the searches without it (at least their mean less one sd)."""
    equal = row["equal"]
    return statistics.median(equal) > 1.1 and min(equal) > 0 and row["lost"] == 0 and row["hv"] >= hv_floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--budgets", nargs="+", type=int, default=[10, 20], help="trials per search")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--samplers", nargs="+", default=["nsga2", "tpe", "random"])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bench = Bench()
    lines = [
        "t95 = the clock until the hypervolume first reaches 95 % of the better final hypervolume of the pair (the "
        "search with the candidate and the one without, same sampler and seed); speed-up = without / with; never n "
        "= searches with the candidate that never reach it (counted as 0x), inf = the search without it never "
        "reaches it. Same budget: both searches finish the spec's number of trials; equal clock: the search with "
        "the candidate runs (up to twice the trials) until the clock of the one without. A rule **pays** when, at "
        "equal clock, its median speed-up is above 1.1x and every search with it reaches 95 %, its replay cuts no "
        "front trial, and its final hypervolume at the same budget is at least the mean less one sd of the "
        "searches without it. The verdict is read at the spec's budget (`search.n_trials`), and a rule that pays "
        "there must pay again on as many fresh seeds (the best of many candidates on the same seeds is flattered "
        "by chance); the ceilings run the random sampler only.",
        "",
        "What a table replay cannot answer: parallel workers (the replays run one trial at a time, so a rung sees "
        "every earlier trial; with several workers it sees fewer), the engine's own overheads (start-up, reading "
        "the rung tables), and training noise (the table holds one training per configuration, the search's "
        "seed). A shorter retraining's look is the round's own validation history, but its energy is the finished "
        "ticket's (the table measures a ticket only after its whole retraining). A front neighbour is drawn "
        "from the stepped grid the table covers.",
        "",
    ]
    verdicts = {}
    for task in args.tasks:
        section, verdicts[task] = task_report(task, args)
        lines += section
    lines += ["## Verdict", ""]
    summary = []
    for task, rows in verdicts.items():
        paying = [r for r in rows.values() if r["pays"]]
        best = max(paying, key=lambda r: statistics.median(r["equal"]), default=None)
        fastest = max(rows.values(), key=lambda r: statistics.median(r["equal"]))
        failed = [f"{r['name']} ({spread(r['equal'])}, then {spread(r['held_out']['equal'])} on fresh seeds, front "
                  f"trials cut {r['held_out']['cut']})" for r in rows.values() if "held_out" in r and not r["pays"]]
        if best:
            lines.append(f"- {task}: **{best['name']}** pays: equal-clock speed-up {spread(best['equal'])} "
                         f"(fresh seeds {spread(best['held_out']['equal'])}), front trials cut {best['cut']} "
                         f"(fresh seeds {best['held_out']['cut']}).")
            summary.append(f"{task} {best['name']} {statistics.median(best['equal']):.2f}x")
        else:
            lines.append(f"- {task}: no rule pays. The fastest at equal clock, {fastest['name']}: "
                         f"{spread(fastest['equal'])}, front trials cut {fastest['cut']}, final HV "
                         f"{fastest['hv']:.4f}." + (f" Paid on the first seeds only: {'; '.join(failed)}."
                                                    if failed else ""))
            summary.append(f"{task} none pays")
    lines += ["", bench.summary(summary)]
    notes = ["Replays over the tables: no training; the clock is the tables' calibrated stage costs."]
    title = "Early-stopping fidelity: rules replayed over tabulated spaces"
    bench.write(args.out, [*bench.header(title, seeds=args.seeds, notes=notes), *lines], echo=False)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
