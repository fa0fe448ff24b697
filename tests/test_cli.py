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


def _bad_files(board):
    """(name, write(path) -> the --file to give, words the one-line refusal must name)"""
    text = board.read_text()
    lines = text.splitlines(keepends=True)

    def content(data):
        def write(p):
            (p.write_bytes if isinstance(data, bytes) else p.write_text)(data)
            return p
        return write

    return [
        ("empty", content(""), ["is empty"]),
        ("blank lines only", content("\n\n  \n"), ["is empty"]),
        ("binary", content(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), ["is binary"]),
        ("cut short mid-line", content(text[: len(text) - len(lines[-1]) // 2]), ["cut short", "truncated"]),
        ("a line with too few fields", content("".join(lines[:3]) + ",".join(lines[3].split(",")[:5]) + "\n"
                                               + "".join(lines[4:])), ["line 4", "field(s)", "header has"]),
        ("a line with too many fields", content("".join(lines[:2]) + lines[2].rstrip("\n") + ",x,y\n"
                                                + "".join(lines[3:])), ["line 3", "header has"]),
        ("an unterminated quote", content(lines[0] + '"' + "".join(lines[1:])), ["well-formed CSV"]),
        ("header only", content(lines[0]), ["no rows"]),
        ("another tool's CSV", content("name,score\nx,1\ny,2\n"), ["not an aenbench leaderboard", "source", "name, score"]),
        ("a JSON file", content('{"rows": [1, 2]}\n'), ["not an aenbench leaderboard"]),
        ("text in a metric column", content(text.replace(",0.95,", ",high,", 1)), ["metric column", "'high'"]),
        ("a directory", lambda p: (p.mkdir(), p)[1], ["is a directory"]),
    ]


def test_a_bad_leaderboard_file_is_refused_in_one_line(board, tmp_path):
    cases = _bad_files(board)
    for name, write, words in cases:
        target = write(tmp_path / f"bad_{len(name)}_{abs(hash(name)) % 1000}.csv")
        for argv in (["leaderboard"], ["compare", "V"]):
            code, out, err = run(*argv, "--file", target)
            assert code == 2 and out == "", (name, err)
            assert err.count("\n") == 1 and str(target) in err and "Traceback" not in err, (name, err)
            assert all(w in err for w in words), (name, words, err)
    # a malformed metrics.yaml next to a good CSV
    (board.parent / "metrics.yaml").write_text("metrics: [unclosed\n")
    for argv in (["leaderboard"], ["metrics"]):
        code, _, err = run(*argv, "--file", board)
        assert code == 2 and "metrics.yaml: not a metrics.yaml" in err and err.count("\n") == 1, err


def test_bad_arguments_are_refused_in_one_line(board):
    for argv, words in [
        (["leaderboard", "--limit", "-1"], ["--limit -1", "positive"]),
        (["leaderboard", "--limit", "0"], ["--limit 0"]),
        (["leaderboard", "--columns", ","], ["names no column"]),
        (["leaderboard", "--columns", "nonesuch"], ["no such column(s): nonesuch"]),
        (["leaderboard", "--sort", "nonesuch"], ["cannot sort by 'nonesuch'", "dead_pct"]),
        (["leaderboard", "--dataset", "rho0.7"], ["dataset = rho0.7", "known: rho0.0, rho0.5"]),
        (["leaderboard", "--family", ""], ["--family", "names no value"]),
        (["compare", "V", "--l0-tolerance", "-0.1"], ["--l0-tolerance -0.1"]),
        (["compare", "V", "--metrics", "nonesuch"], ["no such metric(s): nonesuch"]),
    ]:
        code, out, err = run(*argv, "--file", board)
        assert code == 2 and out == "" and err.count("\n") == 1, (argv, err)
        assert all(w in err for w in words) and "Traceback" not in err, (argv, err)


def test_a_truncated_leaderboard_is_refused_by_the_real_cli(board, tmp_path):
    """As a user sees it: the `aenbench` process, a file cut mid-row (a killed copy)."""
    cut = tmp_path / "cut.csv"
    data = board.read_bytes()
    cut.write_bytes(data[: len(data) - 25])
    exe = Path(sys.executable).parent / "aenbench"
    proc = subprocess.run([str(exe), "leaderboard", "--file", str(cut), "--limit", "3"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and str(cut) in proc.stderr
    assert "truncated" in proc.stderr and "Traceback" not in proc.stderr
