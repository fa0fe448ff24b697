"""What a job shows on the terminal (aenbench.jobs.setup_job): one summary line per SAE from
every job; bars and log lines only from the job holding the terminal lock. Each case runs in a
fresh process whose stderr is a stand-in terminal (a file that says it is a tty)."""

import fcntl
import subprocess
import sys
import textwrap

JOB = textwrap.dedent("""
    import io, logging, sys, types
    from pathlib import Path

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    sys.stderr = term
    from aenbench.jobs import progress, setup_job, summarise

    setup_job(types.SimpleNamespace(threads=1, log=["job.log"]))
    logging.getLogger("aenbench.training").info("a log line")
    for _ in progress(range(3), desc="AEN"):
        pass
    summarise("AEN %s: L0=%.2f dead=%.1f%%", "l1~0.04_seed~0", 1.5, 12.5)
    sys.stderr.flush()
    Path("terminal.txt").write_text(term.getvalue())
""")


def run_job(cwd):
    subprocess.run([sys.executable, "-c", JOB], cwd=cwd, check=True, timeout=60)
    return (cwd / "terminal.txt").read_text(), (cwd / "job.log").read_text()


def test_a_job_on_its_own_shows_its_bar_logs_and_summary(tmp_path):
    terminal, log = run_job(tmp_path)
    assert "AEN l1~0.04_seed~0: L0=1.50 dead=12.5%" in terminal
    assert "a log line" in terminal
    assert "3/3" in terminal and "AEN" in terminal  # the tqdm bar, drawn because the terminal is a tty
    assert "a log line" in log and "L0=1.50" in log and "3/3" in log  # the log has everything too


def test_a_job_beside_another_shows_only_its_summary_lines(tmp_path):
    (tmp_path / ".snakemake").mkdir()
    with open(tmp_path / ".snakemake" / "aenbench-terminal.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another job owns the terminal
        terminal, log = run_job(tmp_path)
    assert terminal.strip().splitlines() == ["AEN l1~0.04_seed~0: L0=1.50 dead=12.5%"]
    assert "a log line" in log and "L0=1.50" in log
