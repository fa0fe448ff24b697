"""The benchmark command runs on a tiny shape (speed itself is never asserted in tests)."""

import csv
import math
import subprocess
import sys
from pathlib import Path


def test_bench_runs_on_a_tiny_shape(repo_root, tmp_path):
    proc = subprocess.run([sys.executable, str(Path(repo_root) / "bench" / "run.py"), "--tiny", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "results_tiny.csv")))
    names = {r["row"] for r in rows}
    assert {"aen_overhead/tiny", "roofline/tiny", "topk_noaux_skip/tiny/dead77", "per_job_overhead",
            "stacked/K=1", "stacked/K=4"} <= names
    assert {"import_time/aenbench", "import_time/aenbench.cli", "import_time/aenbench.leaderboard",
            "cli_latency/help", "cli_latency/leaderboard", "job_overhead/figure"} <= names
    for r in rows:
        assert math.isfinite(float(r["ratio"])) and float(r["ratio"]) > 0
    assert (tmp_path / "measured_tiny.md").read_text().count("|") > 10
