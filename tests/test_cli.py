"""`aenbench leaderboard / compare / metrics` on a hand-made leaderboard CSV (no DAG)."""

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

from aenbench import cli
from aenbench import leaderboard as L


def rows(family, params, dataset, seeds_values, source="ours", kind="family"):
    return [{"source": source, "kind": kind, "track": "synthetic", "dataset": dataset, "family": family,
             "architecture": "x", "params": params, "seed": seed, "samples_seen": 100, "steps": 10,
             "batch_size": 10, **values} for seed, values in enumerate(seeds_values)]


@pytest.fixture
def board(tmp_path):
    r = []
    r += rows("V", "a=1", "rho0.5", [dict(L0=5.0, dead_pct=10.0, EV=0.9, MSE=0.3, MCC=0.6, support_f1=0.5)], kind="variant")
    r += rows("A", "lam=1", "rho0.5", [dict(L0=5.2, dead_pct=30.0, EV=0.7, MSE=0.2, MCC=0.6, support_f1=0.4)])
    r += rows("A", "lam=2", "rho0.5", [dict(L0=2.0, dead_pct=60.0, EV=0.5, MSE=0.4, MCC=0.4, support_f1=0.2)])
    r += rows("B", "k=5", "rho0.5", [dict(L0=5.0, dead_pct=5.0, EV=0.95, MSE=0.1, MCC=0.7, support_f1=0.6)])
    r += rows("B", "k=5", "rho0.0", [dict(L0=5.0, dead_pct=1.0, EV=0.99, MSE=0.01, MCC=0.9, support_f1=0.9)])
    r += rows("A", "l1=5e-3", "rho0.5", [dict(L0=16.0, dead_pct=20.0, EV=0.4)], source="paper")
    path = tmp_path / "results" / "leaderboard.csv"
    path.parent.mkdir()
    L.write(L.combine([pd.DataFrame(r)]), path)
    L.write_metrics_yaml(path.parent / "metrics.yaml")
    return path


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def as_frame(text):
    return pd.read_csv(io.StringIO(text))


def test_filter_and_sort_by_metric_direction(board):
    code, out, _ = run("leaderboard", "--file", board, "--source", "ours", "--sort", "dead_pct", "--format", "csv")
    assert code == 0
    df = as_frame(out)
    assert list(df["dead_pct"]) == [1.0, 5.0, 10.0, 30.0, 60.0]  # ↓ metric: lowest (best) first
    code, out, _ = run("leaderboard", "--file", board, "--source", "ours", "--sort", "EV", "--format", "csv")
    assert list(as_frame(out)["EV"]) == [0.99, 0.95, 0.9, 0.7, 0.5]  # ↑ metric: highest first
    code, out, _ = run("leaderboard", "--file", board, "--sort", "EV", "--ascending", "--limit", "2", "--format", "csv")
    assert list(as_frame(out)["EV"]) == [0.4, 0.5]
    code, out, _ = run("leaderboard", "--file", board, "--family", "A", "--dataset", "rho0.5", "--format", "csv")
    df = as_frame(out)
    assert set(df["family"]) == {"A"} and set(df["source"]) == {"ours", "paper"} and len(df) == 3
    code, out, _ = run("leaderboard", "--file", board, "--kind", "variant", "--columns", "family,L0")
    assert code == 0 and "V" in out and "1 of 1 rows" in out and "dead_pct" not in out


def test_user_errors_exit_2_with_a_message(board, tmp_path):
    code, _, err = run("leaderboard", "--file", board, "--family", "Nope")
    assert code == 2 and "Nope" in err and "known: A, B, V" in err
    code, _, err = run("leaderboard", "--file", tmp_path / "missing.csv")
    assert code == 2 and "snakemake results/leaderboard.csv" in err
    code, _, err = run("leaderboard", "--file", board, "--sort", "nonsense")
    assert code == 2 and "nonsense" in err
    code, _, err = run("compare", "Nope", "--file", board)
    assert code == 2 and "Nope" in err


def test_compare_matched_l0_verdicts(board):
    code, out, _ = run("compare", "V", "--file", board, "--format", "csv")
    assert code == 0
    t = as_frame(out).set_index("family")
    assert t.loc["A", "family_params"] == "lam=1"  # L0 5.2 is closest to 5.0 (not lam=2, nor the paper row)
    assert t.loc["A", "dead_pct_verdict"] == "better"  # 10 < 30, ↓
    assert t.loc["A", "EV_verdict"] == "better"  # 0.9 > 0.7, ↑
    assert t.loc["A", "MSE_verdict"] == "worse"  # 0.3 > 0.2, ↓
    assert t.loc["A", "MCC_verdict"] == "within seed spread"  # equal to the one-seed spread
    assert t.loc["B", "EV_verdict"] == "worse" and t.loc["B", "dead_pct_verdict"] == "worse"
    code, out, _ = run("compare", "V", "--file", board, "--against", "A", "--metrics", "EV")
    assert code == 0 and "better" in out and "0.9 vs 0.7" in out and "B " not in out.split("verdicts")[0]
    code, out, _ = run("compare", "A", "--file", board, "--format", "markdown")
    assert code == 0 and "| B |" in out  # a family compared with the other families


def test_compare_on_one_track_when_a_name_is_on_two(board, tmp_path):
    lb = pd.read_csv(board)
    llm = lb[(lb["family"].isin(["A", "B"])) & (lb["dataset"] == "rho0.5") & (lb["source"] == "ours")].copy()
    llm["track"], llm["dataset"] = "llm", "model:hook"
    llm.loc[llm["family"] == "B", "EV"] = 0.1
    path = tmp_path / "two" / "leaderboard.csv"
    path.parent.mkdir()
    L.write(L.combine([lb, llm]), path)
    code, out, _ = run("compare", "A", "--file", path)  # one comparison per track
    assert code == 0 and "=== track llm ===" in out and "=== track synthetic ===" in out
    llm_part = out.split("=== track synthetic ===")[0]
    assert "model:hook" in llm_part and "rho0.5" not in llm_part
    code, _, err = run("compare", "A", "--file", path, "--format", "csv")
    assert code == 2 and "--track" in err  # one CSV holds one track's comparison
    code, out, _ = run("compare", "A", "--file", path, "--track", "llm", "--metrics", "EV", "--format", "csv")
    t = as_frame(out)
    assert set(t["dataset"]) == {"model:hook"} and set(t["family"]) == {"B"}
    verdicts = dict(zip(t["variant_params"], t["EV_verdict"]))
    assert verdicts == {"lam=1": "better", "lam=2": "L0 not matched"}  # 0.7 vs 0.1 at L0 5.2 vs 5; L0 2 vs 5


def test_metrics_lists_directions(board):
    code, out, _ = run("metrics", "--file", board, "--format", "csv")
    df = as_frame(out).set_index("metric")
    assert df.loc["dead_pct", "direction"] == "↓" and df.loc["EV", "direction"] == "↑" and df.loc["L0", "direction"] == "—"


@pytest.mark.parametrize("argv", [["--help"], ["leaderboard", "--help"], ["compare", "--help"], ["metrics", "--help"]])
def test_help(argv):
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 0 and "usage: aenbench" in out.getvalue()


def test_console_script(board):
    exe = Path(sys.executable).parent / "aenbench"
    assert exe.exists(), "the `aenbench` entry point is not installed (pip install -e .)"
    proc = subprocess.run([str(exe), "leaderboard", "--file", str(board), "--family", "B"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "rho0.0" in proc.stdout and "2 of 2 rows" in proc.stdout


def test_chosen_columns_keep_what_tells_rows_apart_and_limit_must_be_positive(board):
    code, out, _ = run("leaderboard", "--file", board, "--columns", "family", "L0", "--format", "csv")
    df = as_frame(out)
    # source and dataset differ between the rows, so they are shown; track (one value) is not
    assert code == 0 and list(df.columns) == ["source", "dataset", "family", "L0"]
    code, out, _ = run("leaderboard", "--file", board, "--columns", "family", "L0")
    assert "also shown: source, dataset" in out
    code, _, err = run("leaderboard", "--file", board, "--limit", "-3")
    assert code == 2 and "--limit -3" in err


def test_single_seed_verdicts_carry_a_caveat(board):
    code, out, _ = run("compare", "V", "--file", board)
    assert code == 0 and "2 of 2 matches rest on a single seed" in out
