"""Matched-L0 comparison and verdicts on a hand-made leaderboard with known answers."""

import math

import pandas as pd
import pytest

from aenbench.compare import matching as C
from aenbench.compare.report import render_report
from aenbench.tables import pareto_front

DIRECTIONS = {"L0": None, "dead_pct": False, "EV": True, "MSE": False, "MCC": True, "shrinkage": None}


def rows(family, params, dataset, L0s, **metrics):
    """One leaderboard row per seed; metric lists are per seed."""
    out = []
    for i, l0 in enumerate(L0s):
        out.append({
            "source": "ours", "kind": "variant" if family == "V" else "family", "track": "synthetic",
            "dataset": dataset, "family": family, "architecture": "x", "params": params, "seed": i, "L0": l0,
            "samples_seen": 1000, "steps": 10, "batch_size": 100,
            **{m: v[i] for m, v in metrics.items()},
        })
    return out


@pytest.fixture
def board():
    r = []
    # the variant: one config, three seeds; seed means L0 5.1, dead 10, EV 0.9, MSE 0.3, MCC 0.6, shrinkage 0.8
    r += rows("V", "a=1", "rho0.5", [5.0, 5.1, 5.2], dead_pct=[9, 10, 11], EV=[0.89, 0.9, 0.91],
              MSE=[0.29, 0.3, 0.31], MCC=[0.55, 0.6, 0.65], shrinkage=[0.8, 0.8, 0.8])
    # family A: one config near the variant's L0, one far away
    r += rows("A", "lam=1", "rho0.5", [4.8, 5.0, 5.2], dead_pct=[12, 15, 20], EV=[0.7, 0.75, 0.8],
              MSE=[0.1, 0.2, 0.25], MCC=[0.5, 0.6, 0.7], shrinkage=[0.5, 0.6, 0.7])
    r += rows("A", "lam=9", "rho0.5", [20, 21, 22], dead_pct=[0, 0, 0], EV=[0.99, 0.99, 0.99],
              MSE=[0.01, 0.01, 0.01], MCC=[0.9, 0.9, 0.9], shrinkage=[1, 1, 1])
    # family B: its closest config is 40 % away in L0 -> no verdict
    r += rows("B", "k=3", "rho0.5", [3.0, 3.0, 3.0], dead_pct=[50, 50, 50], EV=[0.1, 0.1, 0.1],
              MSE=[0.9, 0.9, 0.9], MCC=[0.1, 0.1, 0.1], shrinkage=[0.9, 0.9, 0.9])
    # family A on another dataset the variant was not trained on: ignored
    r += rows("A", "lam=1", "rho0.0", [5.1], dead_pct=[0], EV=[1.0], MSE=[0.0], MCC=[1.0], shrinkage=[1.0])
    # a paper row with the variant's L0: never compared with (another scale and budget)
    paper = rows("A", "paper", "rho0.5", [5.1], dead_pct=[99], EV=[0.0], MSE=[9.0], MCC=[0.0], shrinkage=[0.0])
    paper[0]["source"] = "paper"
    return pd.DataFrame(r + paper)


def test_verdict_function_directions_and_spread():
    assert C.verdict(0.9, 0.7, 0.8, True) == C.BETTER
    assert C.verdict(0.6, 0.7, 0.8, True) == C.WORSE
    assert C.verdict(0.75, 0.7, 0.8, True) == C.WITHIN
    assert C.verdict(0.8, 0.7, 0.8, True) == C.WITHIN  # the spread is closed
    assert C.verdict(5.0, 10, 20, False) == C.BETTER
    assert C.verdict(25.0, 10, 20, False) == C.WORSE
    assert C.verdict(15.0, 10, 20, False) == C.WITHIN
    assert C.verdict(15.0, 10, 20, None) == C.NO_DIRECTION
    assert C.verdict(math.nan, 10, 20, False) == C.MISSING


def test_matched_l0_known_answers(board):
    table = C.matched_l0(board, "V", DIRECTIONS, metrics=["dead_pct", "EV", "MSE", "MCC", "shrinkage"])
    assert sorted(table["family"]) == ["A", "B"]  # every other family, once per variant config
    assert set(table["dataset"]) == {"rho0.5"}
    a = table[table["family"] == "A"].iloc[0]
    assert a["family_params"] == "lam=1"  # the closest L0 (5.0), not lam=9 (21)
    assert a["family_L0"] == pytest.approx(5.0) and a["variant_L0"] == pytest.approx(5.1)
    assert bool(a["L0_matched"])
    # dead % ↓: 10 < min 12 -> better; EV ↑: 0.9 > max 0.8 -> better
    assert a["dead_pct_verdict"] == C.BETTER and a["EV_verdict"] == C.BETTER
    # MSE ↓: 0.3 > max 0.25 -> worse; MCC ↑: 0.6 inside [0.5, 0.7] -> within seed spread
    assert a["MSE_verdict"] == C.WORSE
    assert a["MCC_verdict"] == C.WITHIN
    assert a["shrinkage_verdict"] == C.NO_DIRECTION  # no preferred direction, no verdict
    # deltas are variant mean − family mean; the family's spread is its seed min / max
    assert a["dead_pct_delta"] == pytest.approx(10 - (12 + 15 + 20) / 3)
    assert a["MSE_delta"] == pytest.approx(0.3 - (0.1 + 0.2 + 0.25) / 3)
    assert (a["MCC_family_min"], a["MCC_family_max"]) == (pytest.approx(0.5), pytest.approx(0.7))
    b = table[table["family"] == "B"].iloc[0]
    assert b["L0_rel_gap"] == pytest.approx(abs(3.0 - 5.1) / 5.1)
    assert not bool(b["L0_matched"])
    assert b["EV_verdict"] == C.NOT_MATCHED and b["dead_pct_verdict"] == C.NOT_MATCHED


def test_tolerance_and_against_and_datasets(board):
    loose = C.matched_l0(board, "V", DIRECTIONS, metrics=["EV"], l0_tolerance=0.5)
    assert loose.set_index("family").loc["B", "EV_verdict"] == C.BETTER  # 0.9 > 0.1 once B counts as matched
    only_b = C.matched_l0(board, "V", DIRECTIONS, against=["B"], metrics=["EV"])
    assert list(only_b["family"]) == ["B"]
    with pytest.raises(ValueError, match="Nope"):
        C.matched_l0(board, "V", DIRECTIONS, against=["Nope"])
    with pytest.raises(ValueError, match="rho0.0"):
        C.matched_l0(board, "V", DIRECTIONS, datasets=["rho0.0"])  # the variant has no rows there
    with pytest.raises(ValueError, match="no rows of our own"):
        C.matched_l0(board, "Missing", DIRECTIONS)


def test_a_family_can_be_compared_too(board):
    table = C.matched_l0(board, "A", DIRECTIONS, metrics=["EV"])
    # the variant is not a family: A is compared with B only, on both its datasets that B has
    assert set(table["family"]) == {"B"}
    assert set(table["variant_params"]) == {"lam=1", "lam=9"}


def test_counts_and_markdown(board):
    metrics = ["dead_pct", "EV", "MSE", "MCC"]
    table = C.matched_l0(board, "V", DIRECTIONS, metrics=metrics)
    counts = C.verdict_counts(table, metrics).set_index(["family", "metric"])
    assert counts.loc[("A", "dead_pct"), C.BETTER] == 1
    assert counts.loc[("A", "MSE"), C.WORSE] == 1
    assert counts.loc[("A", "MCC"), C.WITHIN] == 1
    assert counts.loc[("B", "EV"), C.NOT_MATCHED] == 1
    md = render_report(
        "V", table, DIRECTIONS, {"EV": "explained variance"}, metrics=metrics,
        variant={"architecture": "x", "grid": {"a": [1]}}, against=["A", "B"], datasets=["rho0.5"],
        budget={"track": "synthetic", "steps": 10, "batch_size": 100, "samples_seen": 1000, "seeds": "0, 1, 2",
                "n_seeds": 3},
    )
    assert "| A | 1 better · 0 worse · 0 within | 1 better · 0 worse · 0 within | 0 better · 1 worse · 0 within" in md
    assert "0 better · 0 worse · 1 within |" in md
    assert "(1 L0 not matched)" in md
    line = next(l for l in md.splitlines() if l.startswith("| A | lam=1 |"))
    assert "(Δ -5.67, better)" in line and "within seed spread" in line
    assert "not significance tests" not in md  # three seeds: a real spread


def test_pareto_front():
    pts = pd.DataFrame({"L0": [1, 2, 3, 4, 4], "EV": [0.5, 0.4, 0.7, 0.6, 0.8]})
    assert list(pareto_front(pts, "EV", True)["L0"]) == [1, 3, 4]
    assert list(pareto_front(pts, "EV", True)["EV"]) == [0.5, 0.7, 0.8]
    dead = pd.DataFrame({"L0": [1, 2, 3], "dead_pct": [50, 60, 10]})
    assert list(pareto_front(dead, "dead_pct", False)["L0"]) == [1, 3]


def test_budget_problems_flag_unequal_training(board):
    assert C.budget_problems(board) == []
    changed = board.copy()
    changed.loc[changed["family"] == "B", "samples_seen"] = 2000
    problems = C.budget_problems(changed)
    assert problems and "samples_seen" in problems[0]
