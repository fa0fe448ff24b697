"""The claims scorecard (aenbench.claims) on a hand-made leaderboard whose verdicts are known."""

import runpy
import types
from pathlib import Path

import pandas as pd
import pytest

from aenbench.claims import (DECISION_RULE, L0_TOLERANCE, STARVE_DEAD_PCT, scorecard, selected_configs,
                             synthetic_rows, write_scorecard)

REPO = Path(__file__).resolve().parents[1]
K = 4
RHOS = (0.0, 0.3, 0.9)
REPLICATES = (("", 0, 0), ("seed", 1, 0), ("seed", 2, 0), ("teacher", 0, 1))  # replicate, seed, dictionary seed

# the selected config's metrics per family and ρ: every claim holds (the spreads are added below)
GOOD = {
    #               dead % at ρ 0 / 0.3 / 0.9   EV     shrinkage  F1    lipschitz  flips
    "AEN":        dict(dead=(0, 1, 2), EV=0.90, shrinkage=0.98, f1=0.80, lip=1.0, flip=0.05),
    "L1":         dict(dead=(0, 10, 25), EV=0.92, shrinkage=0.80, f1=0.50, lip=2.0, flip=0.20),
    "EN":         dict(dead=(0, 8, 20), EV=0.91, shrinkage=0.85, f1=0.55, lip=1.8, flip=0.15),
    "AL":         dict(dead=(0, 3, 5), EV=0.91, shrinkage=0.95, f1=0.70, lip=1.2, flip=0.10),
    "TopK-paper": dict(dead=(5, 20, 30), EV=0.88, shrinkage=0.97, f1=0.60, lip=3.0, flip=0.30),
    "TopK":       dict(dead=(4, 15, 25), EV=0.88, shrinkage=0.97, f1=0.60, lip=3.0, flip=0.30),
    "TopK-AuxK":  dict(dead=(0, 0, 0), EV=0.95, shrinkage=0.97, f1=0.65, lip=3.0, flip=0.30),
}
OFFSETS = (0.0, -1.0, 1.0, 0.0)  # grid, seed 1, seed 2, teacher: × a metric's spread


def leaderboard() -> pd.DataFrame:
    """Per (ρ, family): the selected config "sel" (L0 = k, grid run + 3 replicate rows, a small
    spread), a far grid config "far" (L0 = 5k, absurd metrics) and a paper row and an LLM row
    that must be ignored."""
    out = []
    for rho in RHOS:
        i = RHOS.index(rho)
        for family, m in GOOD.items():
            base = {"source": "ours", "kind": "family", "track": "synthetic", "dataset": f"rho{rho}",
                    "teacher_rho": rho, "teacher_k": K, "family": family}
            for (rep, seed, dseed), off in zip(REPLICATES, OFFSETS):
                out.append({**base, "params": "sel", "seed": seed, "teacher_dictionary_seed": dseed,
                            "replicate": rep, "L0": K * (1 + 0.02 * off),
                            "dead_pct": max(0.0, m["dead"][i] + 0.2 * off) if m["dead"][i] else 0.0,
                            "EV": m["EV"] + 0.002 * off, "shrinkage": m["shrinkage"] + 0.002 * off,
                            "support_f1": m["f1"] + 0.005 * off, "lipschitz_median": m["lip"] + 0.02 * off,
                            "support_flip_rate": m["flip"] + 0.002 * off})
            out.append({**base, "params": "far", "seed": 0, "teacher_dictionary_seed": 0, "replicate": "",
                        "L0": 5 * K, "dead_pct": 90.0, "EV": 0.0, "shrinkage": 0.1, "support_f1": 0.0,
                        "lipschitz_median": 99.0, "support_flip_rate": 1.0})
    out.append({**out[0], "source": "paper", "dead_pct": 99.0})
    out.append({**out[0], "track": "llm", "dead_pct": 99.0})
    return pd.DataFrame(out)


def sel_rows(df, rho, family, rep=None):
    mask = ((df["teacher_rho"] == rho) & (df["family"] == family) & (df["params"] == "sel")
            & (df["source"] == "ours") & (df["track"] == "synthetic"))
    if rep is not None:
        mask &= df["replicate"] == rep
    return mask


def set_metric(df, rho, family, metric, values):
    """Set ``metric`` of the selected config's 4 runs (grid, seed 1, seed 2, teacher)."""
    df.loc[sel_rows(df, rho, family), metric] = values
    return df


def verdicts(df, **kwargs):
    return scorecard(df, **kwargs).set_index("id")


def test_selection_is_the_grid_run_closest_to_k_plus_its_replicates():
    sel = selected_configs(synthetic_rows(leaderboard())).set_index(["rho", "family"])
    row = sel.loc[(0.3, "L1")]
    assert row["params"] == "sel" and row["n_runs"] == 4 and row["n_seeds"] == 3
    assert row["replicates"] == "seed,seed,teacher" and row["L0_matched"] and row["L0_selected"] == K
    assert row["dead_pct_mean"] == pytest.approx(10) and row["dead_pct_min"] == pytest.approx(9.8)
    assert row["dead_pct_max"] == pytest.approx(10.2)
    assert row["shrinkage_gap_mean"] == pytest.approx(0.2)


def test_every_claim_holds_on_the_good_leaderboard():
    table = verdicts(leaderboard())
    assert list(table.index) == list(range(1, 8))
    assert (table["verdict"] == "holds").all(), table[["verdict", "why"]].to_string()
    # numbers are mean [min, max] over the selected config's runs
    assert "ρ0.3 TopK-paper 20 [19.8, 20.2]" in table.loc[1, "numbers"]
    assert "TopK (not in the verdict): holds" in table.loc[1, "why"]  # sae-lens TopK reported beside it
    assert f"dead % ≥ {STARVE_DEAD_PCT:g}" in table.loc[1, "rule"]
    # TopK-AuxK is no paper family: its 0 dead % does not beat AEN in claim 3
    assert "TopK-AuxK" not in table.loc[3, "rule"]


def test_without_replicate_rows_the_verdicts_rest_on_single_runs():
    df = leaderboard()
    df = df[df["replicate"] == ""]
    table = verdicts(df)
    assert (table["verdict"] == "holds").all()
    assert table["why"].str.contains("no seed spread").all()
    assert table.loc[1, "numbers"].startswith("ρ0.3 TopK-paper 20, TopK 15;")  # single values, no interval
    table = verdicts(df.drop(columns=["replicate"]))
    assert (table["verdict"] == "holds").all()


def test_a_leaderboard_read_back_from_csv_gives_the_same_scorecard(tmp_path):
    df = leaderboard()
    df.to_csv(tmp_path / "lb.csv", index=False)
    back = pd.read_csv(tmp_path / "lb.csv")
    assert back["replicate"].isna().any()  # "" reads back as NaN
    pd.testing.assert_frame_equal(scorecard(back), scorecard(df))


# claim id -> ((modification that breaks it: does not hold), (one that leaves it open: inconclusive))
def _claim1_not(df):
    return set_metric(df, 0.3, "TopK-paper", "dead_pct", [2.0, 1.0, 3.0, 2.0])


def _claim1_straddle(df):
    return set_metric(df, 0.3, "TopK-paper", "dead_pct", [10.0, 8.0, 12.0, 10.0])


def _claim1_unmatched(df):
    return set_metric(df, 0.9, "TopK-paper", "L0", K * (1 + L0_TOLERANCE) + 0.5)


def _claim2_not_rise(df):
    return set_metric(df, 0.9, "L1", "dead_pct", [2.0, 1.5, 2.5, 2.0])


def _claim2_not_step(df):
    set_metric(df, 0.3, "EN", "dead_pct", [30.0, 29.0, 31.0, 30.0])  # 0 → 30 → 20: a 10-point drop
    return df


def _claim2_overlap(df):
    set_metric(df, 0.0, "L1", "dead_pct", [2.0, 0.0, 4.0, 2.0])
    set_metric(df, 0.3, "L1", "dead_pct", [4.0, 3.0, 5.0, 4.0])
    return set_metric(df, 0.9, "L1", "dead_pct", [8.0, 6.0, 10.0, 8.0])  # rise in [2, 10] vs 5


def _claim3_not(df):
    return set_metric(df, 0.3, "AEN", "dead_pct", [12.0, 11.0, 13.0, 12.0])  # more than AL (3) and EN (8)


def _claim3_overlap(df):
    return set_metric(df, 0.3, "AEN", "dead_pct", [3.0, 2.0, 4.0, 3.0])  # AL is [2.8, 3.2]


def _claim3_unmatched(df):
    return set_metric(df, 0.3, "EN", "L0", 1.0)  # |1 − 4| = 3 > 0.25·4


def _claim3_missing_at_rho(df):
    return df[~((df["family"] == "AL") & (df["teacher_rho"] == 0.3))]


def _claim4_not(df):
    return set_metric(df, 0.9, "AEN", "shrinkage", 0.7)


def _claim4_overlap(df):
    return set_metric(df, 0.0, "AEN", "shrinkage", [0.8, 0.7, 0.9, 0.8])  # L1 [0.798, 0.802]


def _claim5_not(df):
    return set_metric(df, 0.9, "AEN", "support_f1", 0.55)  # < TopK-paper's 0.6


def _claim5_overlap(df):
    return set_metric(df, 0.9, "AEN", "support_f1", [0.6, 0.55, 0.65, 0.6])


def _claim5_no_rho(df):
    return df[df["teacher_rho"] != 0.9]


def _claim6_not(df):
    return set_metric(df, 0.3, "AEN", "support_flip_rate", 0.5)


def _claim6_overlap(df):
    return set_metric(df, 0.3, "AEN", "lipschitz_median", [2.0, 1.5, 2.5, 2.0])


def _claim7_not(df):
    return set_metric(df, 0.0, "AEN", "EV", 0.8)  # < 0.92 − 0.05


def _claim7_overlap(df):
    return set_metric(df, 0.0, "AEN", "EV", [0.87, 0.85, 0.89, 0.87])  # vs L1 0.92 − 0.05 = 0.87


def _claim7_missing_topk(df):
    return df[df["family"] != "TopK-paper"]


ALL = {1, 2, 3, 4, 5, 6, 7}
# claim, the change, its verdict, a phrase of its why, the claims that still hold after the change
CASES = [
    # TopK-paper's 2 [1, 3] also leaves AEN's 1 [0.8, 1.2] open in claim 3
    (1, _claim1_not, "does not hold", "TopK-paper dead % ≥ 10 at ρ0.3", ALL - {1, 3}),
    (1, _claim1_straddle, "inconclusive", "straddles 10", ALL - {1}),
    (1, _claim1_unmatched, "inconclusive", "TopK-paper at ρ0.9 not at matched L0", {2, 4, 6}),
    (2, _claim2_not_rise, "does not hold", "L1 dead % ρ0.9 − ρ0 ≥ 5", ALL - {2, 3}),
    (2, _claim2_not_step, "does not hold", "EN dead % ρ0.9 − ρ0.3 ≥ −2", ALL - {2}),
    (2, _claim2_overlap, "inconclusive", "within the seed spread", ALL - {2}),
    (3, _claim3_not, "does not hold", "AEN ≤ AL at ρ0.3", ALL - {3}),
    (3, _claim3_overlap, "inconclusive", "AEN ≤ AL at ρ0.3: within the seed spread", ALL - {3}),
    (3, _claim3_unmatched, "inconclusive", "EN at ρ0.3 not at matched L0 (L0 1, k 4", {1, 4, 5, 6}),
    (3, _claim3_missing_at_rho, "inconclusive", "AEN ≤ AL at ρ0.3: AL missing at ρ0.3", ALL - {3, 7}),
    (4, _claim4_not, "does not hold", "AEN |s − 1| < L1 at ρ0.9", ALL - {4}),
    (4, _claim4_overlap, "inconclusive", "within the seed spread", ALL - {4}),
    (5, _claim5_not, "does not hold", "AEN > TopK-paper at ρ0.9", ALL - {5}),
    (5, _claim5_overlap, "inconclusive", "AEN > TopK-paper at ρ0.9: within the seed spread", ALL - {5}),
    (5, _claim5_no_rho, "inconclusive", "no dataset with ρ = 0.9", ALL - {5}),
    (6, _claim6_not, "does not hold", "AEN support_flip_rate < L1 at ρ0.3", ALL - {6}),
    (6, _claim6_overlap, "inconclusive", "AEN lipschitz_median < L1 at ρ0.3: within the seed spread", ALL - {6}),
    (7, _claim7_not, "does not hold", "AEN ≥ L1 − 0.05 at ρ0", ALL - {7}),
    (7, _claim7_overlap, "inconclusive", "within the seed spread", ALL - {7}),
    (7, _claim7_missing_topk, "inconclusive", "TopK-paper missing from the leaderboard", {2, 4, 6}),
]


@pytest.mark.parametrize("claim, modify, verdict, why, still_hold", CASES, ids=[c[1].__name__ for c in CASES])
def test_each_claim_fails_or_stays_open_when_its_numbers_say_so(claim, modify, verdict, why, still_hold):
    table = verdicts(modify(leaderboard()))
    assert table.loc[claim, "verdict"] == verdict, table.loc[claim, "why"]
    assert why in table.loc[claim, "why"]
    holding = set(table.index[table["verdict"] == "holds"])
    assert holding == still_hold, table[["verdict", "why"]].to_string()


def test_a_failure_decides_even_when_another_check_is_open():
    df = _claim3_unmatched(_claim3_not(leaderboard()))
    assert verdicts(df).loc[3, "verdict"] == "does not hold"


def test_family_roles_are_a_parameter():
    df = leaderboard()
    df = df[df["family"] != "TopK-paper"]
    assert verdicts(df).loc[1, "verdict"] == "inconclusive"
    table = verdicts(df, families={"topk": "TopK"})  # the sae-lens TopK in the paper's TopK's role
    assert table.loc[1, "verdict"] == "holds" and "TopK's selected config" in table.loc[1, "rule"]
    # `only`: the config's families; a role outside it is missing
    assert verdicts(leaderboard(), only=["AEN", "L1"]).loc[5, "verdict"] == "inconclusive"
    with pytest.raises(ValueError, match="teacher_k"):
        scorecard(leaderboard(), k=16)


def test_an_empty_leaderboard_leaves_every_claim_open():
    table = scorecard(leaderboard().iloc[:0])
    assert list(table["verdict"]) == ["inconclusive"] * 7


def test_writer_round_trip(tmp_path):
    table = scorecard(_claim3_overlap(leaderboard()))
    write_scorecard(table, str(tmp_path / "claims.csv"), str(tmp_path / "claims.md"))
    back = pd.read_csv(tmp_path / "claims.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(back.astype(str), table.astype(str))
    md = (tmp_path / "claims.md").read_text()
    assert DECISION_RULE in md
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(lines) == 2 + len(table) and lines[0] == "| id | claim | rule | numbers | verdict | why |"
    assert "| inconclusive |" in lines[2 + 2] and not list(tmp_path.glob(".*.tmp"))


def test_job_script_writes_both_files(tmp_path):
    leaderboard().to_csv(tmp_path / "leaderboard.csv", index=False)
    smk = types.SimpleNamespace(
        input=types.SimpleNamespace(leaderboard=str(tmp_path / "leaderboard.csv")),
        output=types.SimpleNamespace(csv=str(tmp_path / "t" / "claims.csv"), md=str(tmp_path / "t" / "claims.md")),
        params=types.SimpleNamespace(k=K, families=list(GOOD)), log=[str(tmp_path / "claims.log")], threads=1)
    import sys
    stdout, stderr = sys.stdout, sys.stderr
    try:
        runpy.run_path(str(REPO / "workflow" / "scripts" / "table_claims.py"), init_globals={"snakemake": smk})
    finally:
        sys.stdout, sys.stderr = stdout, stderr
    table = pd.read_csv(tmp_path / "t" / "claims.csv", keep_default_na=False)
    assert list(table["verdict"]) == ["holds"] * 7
    assert "k = 4" in (tmp_path / "t" / "claims.md").read_text()
