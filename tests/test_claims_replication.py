"""The replication scorecard (aenbench.claims.replication_scorecard) on a hand-made replication
export (the columns of results/reference/replication_ours.csv) whose verdicts are known, and on
the committed CSV itself."""

from pathlib import Path

import pandas as pd
import pytest

from aenbench.claims import replication_rows, replication_scorecard

REPO = Path(__file__).resolve().parents[1]
K = 16


def export(aen_dead=(0.0, 1.0, 2.0), l1_dead=(1.0, 20.0, 40.0), l1_l0=K):
    """ρ 0 / 0.5 / 0.9; AEN, L1 and sae-lens TopK at one configuration each, seeds 0, 1, 2."""
    rows = []
    for i, rho in enumerate((0.0, 0.5, 0.9)):
        for model, dead, l0, ev, shrink, f1 in (("AEN", aen_dead[i], K, 0.60, 0.99, 0.8),
                                                ("L1", l1_dead[i], l1_l0, 0.62, 0.80, 0.5),
                                                ("TopK", 90.0, K, 0.55, 0.97, 0.4)):
            for seed, off in ((0, 0.0), (1, -1.0), (2, 1.0)):
                rows.append({"dataset": f"rho{rho}", "model": model, "family": f"{model}-ref", "params": None,
                             "seed": seed, "L0": l0 * (1 + 0.01 * off), "dead_pct": dead + 0.1 * off * bool(dead),
                             "EV": ev + 0.001 * off, "shrinkage": shrink + 0.001 * off,
                             "support_f1": f1 + 0.002 * off})
    return pd.DataFrame(rows)


def verdicts(table):
    return dict(zip(table["id"], table["verdict"]))


def test_rows_are_one_configuration_per_model_with_seed_replicates():
    rows = replication_rows(export())
    assert set(rows["family"]) == {"AEN", "L1", "TopK"}
    assert (rows.loc[rows["seed"] == 0, "replicate"] == "").all()
    assert (rows.loc[rows["seed"] > 0, "replicate"] == "seed").all()
    assert rows.groupby(["dataset", "family"])["params"].nunique().eq(1).all()


def test_known_verdicts():
    table = replication_scorecard(export(), K)
    v, why = verdicts(table), table.set_index("id")["why"]
    assert v[4] == "holds"           # |0.99 − 1| < |0.80 − 1| at every ρ
    # AEN beats ℓ1 (dead %, and EV within 0.05) but EN, AL and the paper's TopK were not run
    assert v[3] == "inconclusive" and "EN (not run) missing" in why[3] and "AEN ≤ L1" not in why[3]
    assert v[7] == "inconclusive" and "AEN ≥ L1" not in why[7]
    assert v[1] == "inconclusive" and "TopK (not in the verdict): holds" in why[1]  # sae-lens TopK: 90 % dead
    assert v[2] == "inconclusive"    # EN was not run
    assert v[6] == "inconclusive"    # no stability metrics in the export


def test_a_failed_check_and_an_unmatched_l0():
    v = verdicts(replication_scorecard(export(aen_dead=(0.0, 30.0, 2.0)), K))
    assert v[3] == "does not hold"   # AEN 30 % vs ℓ1 20 % at ρ 0.5
    table = replication_scorecard(export(l1_l0=3 * K), K)
    assert verdicts(table)[3] == "inconclusive"
    assert "not at matched L0" in table.set_index("id").loc[3, "why"]


def test_missing_column_is_named():
    with pytest.raises(ValueError, match="model"):
        replication_rows(export().drop(columns=["model"]))


def test_the_committed_export_scores():
    table = replication_scorecard(pd.read_csv(REPO / "results" / "reference" / "replication_ours.csv"), K)
    assert list(table["id"]) == list(range(1, 8))
    assert set(table["verdict"]) <= {"holds", "does not hold", "inconclusive"}


def test_clip_statement_names_the_clip_of_the_rows():
    from aenbench.synthetic.replication import clip_statement

    rows = export()
    assert "fixed 1.0" in clip_statement(rows)                             # no grad_clip column: clipped
    assert "fixed 1.0" in clip_statement(rows.assign(grad_clip=[None] + ["none"] * (len(rows) - 1)))
    assert clip_statement(rows.assign(grad_clip="none")) == "gradient clip: none"
