"""Every command line of the README's CLI section runs as written on the smoke run's leaderboard
(the session's one smoke DAG run, test_compare.smoke_workdir), as a real `aenbench` process in
the run's folder."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from test_compare import REPO, smoke_workdir

pytestmark = pytest.mark.e2e


def readme_cli_commands():
    """The `aenbench ...` lines of the README's ```bash block under "In the terminal"."""
    text = (REPO / "README.md").read_text()
    section = text.split("In the terminal, without rerunning anything", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.startswith("aenbench ")]


def test_the_readme_names_its_cli_commands():
    commands = readme_cli_commands()
    assert len(commands) >= 5 and {c[1] for c in commands} == {"leaderboard", "compare", "metrics"}


@pytest.mark.parametrize("argv", readme_cli_commands(), ids=lambda a: " ".join(a[1:]))
def test_readme_cli_command_runs_as_written(argv):
    workdir = smoke_workdir()[0]
    exe = Path(sys.executable).parent / "aenbench"
    proc = subprocess.run([str(exe), *argv[1:]], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.strip() and "Traceback" not in proc.stderr
    if argv[1] == "compare" and "--track" not in argv:
        lb = pd.read_csv(workdir / "results" / "leaderboard.csv")
        tracks = sorted(lb.loc[(lb["source"] == "ours") & (lb["family"] == argv[2]), "track"].unique())
        assert [t for t in tracks if f"=== track {t} ===" in out] == tracks or len(tracks) == 1
    if argv[1] == "leaderboard" and "--columns" not in argv:
        assert "scale" in out.splitlines()[0]  # rows at different scales never sort together unmarked
