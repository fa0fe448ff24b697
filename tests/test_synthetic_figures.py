"""The synthetic track's tables and ablation helpers on hand-made leaderboards."""

import math

import pandas as pd
import pytest

from aenbench.synthetic.ablations import arm_family, summary
from aenbench.synthetic.figures import closest_to_k, l0_window, replication_table
from aenbench.tables import pareto_front


def rows(records):
    base = {"dataset": "rho0.5", "seed": 0, "dead_pct": 0.0, "EV": 0.5, "shrinkage": 0.9, "MCC": 0.5,
            "support_f1": 0.5, "support_precision": 0.5, "support_recall": 0.5}
    return pd.DataFrame([{**base, **r} for r in records])


def test_l0_window_is_the_papers_at_k16_and_scales_with_k():
    assert l0_window(16) == (7.5, 64.5)
    assert l0_window(4) == pytest.approx((7.5 / 4, 64.5 / 4))


def test_closest_to_k_picks_the_nearest_run_and_flags_unmatched_families():
    df = rows([
        {"family": "AEN", "params": "a", "L0": 3.0, "hp_adaptive": True, "pct_w_at_max": 40.0},
        {"family": "AEN", "params": "b", "L0": 4.5, "hp_adaptive": True, "pct_w_at_max": 10.0},
        {"family": "AEN", "params": "c", "L0": 20.0, "hp_adaptive": True, "pct_w_at_max": 0.0},
        {"family": "L1", "params": "d", "L0": 9.0, "hp_adaptive": False, "pct_w_at_max": 99.0},
        {"family": "L1", "params": "e", "L0": 0.5, "hp_adaptive": False, "pct_w_at_max": 99.0},
    ])
    table = closest_to_k(df, k=4, families=["L1", "AEN"])
    assert list(table["family"]) == ["L1", "AEN"]
    aen = table.set_index("family").loc["AEN"]
    assert aen["config"] == "b" and aen["L0_matched"] and aen["pct_w_at_max"] == 10.0
    l1 = table.set_index("family").loc["L1"]
    # |0.5 − 4| = 3.5 < |9 − 4| = 5, and 3.5 > 25 % of 4
    assert l1["config"] == "e" and not l1["L0_matched"]
    assert math.isnan(l1["pct_w_at_max"])  # not adaptive: the raw weights are unused


def test_pareto_front_keeps_only_undominated_runs():
    pts = pd.DataFrame({"L0": [1, 2, 3, 4], "dead_pct": [50.0, 60.0, 20.0, 20.0], "EV": [0.1, 0.3, 0.2, 0.5]})
    assert list(pareto_front(pts, "dead_pct", higher_is_better=False)["L0"]) == [1, 3]
    assert list(pareto_front(pts, "EV", higher_is_better=True)["L0"]) == [1, 2, 4]


def test_replication_table_spread_and_beyond_spread():
    ours = pd.DataFrame({
        "dataset": ["rho0.5"] * 3, "model": ["AEN"] * 3, "reference_config": ["l1=1e-3"] * 3, "seed": [0, 1, 2],
        "L0": [14.0, 15.0, 16.0], "dead_pct": [1.0, 2.0, 3.0], "EV": [0.3, 0.35, 0.4], "shrinkage": [0.9, 0.95, 0.97],
    })
    ref = pd.DataFrame({"rho": [0.5], "model": ["AEN"], "L0": [14.4], "dead_pct": [5.0], "EV": [0.351],
                        "shrinkage": [0.967]})
    t = replication_table(ours, ref).iloc[0]
    assert t["n_seeds"] == 3 and t["L0_ours"] == pytest.approx(15.0)
    assert (t["L0_min"], t["L0_max"]) == (14.0, 16.0)
    assert not t["L0_beyond_spread"] and t["dead_pct_beyond_spread"]
    assert t["dead_pct_paper"] == 5.0


def test_ablation_arm_overrides_base_and_fixed_in_order():
    families = {"AEN": {"architecture": "aen", "fixed": {"adaptive": True, "l2_coefficient": 0.1}, "grid": {"x": [1]}}}
    ablation = {"base": "AEN", "fixed": {"l1_coefficient": 0.004, "l2_coefficient": 0.0004},
                "arms": {"L1": {"adaptive": False, "l2_coefficient": 0.0}, "AEN": {}, "none": None}}
    l1 = arm_family(ablation, "L1", families)
    assert l1 == {"architecture": "aen", "description": "AEN with L1",
                  "fixed": {"adaptive": False, "l2_coefficient": 0.0, "l1_coefficient": 0.004}}
    assert arm_family(ablation, "AEN", families)["fixed"] == {"adaptive": True, "l2_coefficient": 0.0004,
                                                              "l1_coefficient": 0.004}
    assert "grid" not in arm_family(ablation, "none", families)


def test_ablation_summary_means_over_seeds_per_arm():
    df = pd.DataFrame({"family": ["w:a", "w:a", "w:b"], "dataset": ["rho0.5"] * 3, "seed": [0, 1, 0],
                       "L0": [2.0, 4.0, 5.0], "dead_pct": [10.0, 30.0, 0.0], "EV": [0.1, 0.3, 0.5]})
    t = summary(df, ["b", "a"]).set_index("arm")
    assert list(t.index) == ["b", "a"]
    assert t.loc["a", "L0"] == 3.0 and t.loc["a", "dead_pct"] == 20.0 and t.loc["a", "n_seeds"] == 2


def test_adaptive_traces_find_an_ablation_arm_without_swept_values(tmp_path):
    """An ablation arm's run has no swept values: its params label is "" and reads back from the
    leaderboard CSV as NaN; the trace of its closest-to-k run is still found (it was an IndexError)."""
    import json

    from aenbench.synthetic.figures import adaptive_traces

    (tmp_path / "m.json").write_text(json.dumps({"adaptive_trace": [{"step": 0, "pct_w_at_max": 0.0}]}))
    board = tmp_path / "lb.csv"
    pd.DataFrame([{"dataset": "rho0.5", "family": "en_al_aen:AL", "params": "", "seed": 0, "L0": 3.0,
                   "dead_pct": 1.0, "hp_adaptive": True, "metrics_path": "m.json"}]).to_csv(board, index=False)
    trace = adaptive_traces(pd.read_csv(board), 4, base_dir=tmp_path)
    assert trace[["family", "step"]].values.tolist() == [["en_al_aen:AL", 0]]
