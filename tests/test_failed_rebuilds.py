"""A failed rebuild never leaves less than before, and a failed job shows its real error.

* every bad per-SAE ``metrics.json`` the leaderboard reads (malformed, empty, binary, wrong schema,
  a NaN where a number is needed, a moved run folder, two records claiming one run) is refused in
  one line naming its path, the field and what to rerun;
* through a real ``snakemake``: a bad record fails ``check_records``, before the leaderboard job
  starts, so the previous ``leaderboard.csv`` and ``metrics.yaml`` survive, and the error (path and
  cause) reaches snakemake's stderr, not only the log; the leaderboard verifies each record against
  the sha256 the check recorded;
* a job script that fails (a plugin with a syntax error, an exception) writes the error's last
  lines and its log path to the terminal.

Hand-made records and tiny Snakefiles (the repo's leaderboard rules, no sae_lens import).
"""

import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aenbench import leaderboard as L

REPO = Path(__file__).resolve().parents[1]


def record(family="L1", run_id="l1_coefficient~0.1_seed~0", seed=0, l1=0.1):
    return {
        "eval_type_id": "aenbench_synthetic", "eval_id": f"rho0.5/{family}/{run_id}", "sae_lens_id": run_id,
        "sae_lens_version": "6.0", "eval_config": {}, "eval_result_details": [],
        "eval_result_metrics": {"sparsity": {"L0": 3.0, "dead_pct": 10.0}, "reconstruction": {"EV": 0.8, "MSE": 0.1}},
        "run": {"track": "synthetic", "dataset": "rho0.5", "family": family, "architecture": "aen",
                "params": f"l1={l1}", "hyperparameters": {"l1_coefficient": l1, "l2_coefficient": 0.0},
                "seed": seed, "steps": 10, "batch_size": 8, "max_grad_norm": None, "train_seconds": 1.0,
                "teacher": {"n": 8, "m": 32, "k": 1, "rho": 0.5}, "git_commit": "abc",
                "training_fingerprint": "f" * 16, "weights_sha256": "0" * 64},
    }


def write_run(root, rec, name=None):
    path = Path(root) / (name or rec["sae_lens_id"]) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec, indent=1))
    return path


def broken(mutate):
    rec = copy.deepcopy(record())
    mutate(rec)
    return json.dumps(rec)


def _set(keys, value):
    def mutate(rec):
        d = rec
        for k in keys[:-1]:
            d = d[k]
        if value is KeyError:
            del d[keys[-1]]
        else:
            d[keys[-1]] = value
    return mutate


# (name, file content (str or bytes), words the refusal must name)
BAD_RECORDS = [
    ("truncated JSON", json.dumps(record())[:-40], ["not valid JSON", "line"]),
    ("empty file", "", ["empty"]),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", ["not UTF-8 text"]),
    ("top level a list", "[1, 2]", ["a JSON object", "list"]),
    ("no run block", broken(_set(["run"], KeyError)), ["'run'", "missing"]),
    ("run block a string", broken(_set(["run"], "x")), ["'run'", "an object"]),
    ("no family", broken(_set(["run", "family"], KeyError)), ["run.family", "missing"]),
    ("seed a string", broken(_set(["run", "seed"], "zero")), ["run.seed", "an integer"]),
    ("steps a float", broken(_set(["run", "steps"], 1.5)), ["run.steps", "an integer"]),
    ("grad clip a string", broken(_set(["run", "max_grad_norm"], "big")), ["run.max_grad_norm", "a number"]),
    ("hyperparameters a list", broken(_set(["run", "hyperparameters"], [1])), ["run.hyperparameters", "an object"]),
    ("no metrics", broken(_set(["eval_result_metrics"], KeyError)), ["eval_result_metrics", "missing"]),
    ("a metric group a number", broken(_set(["eval_result_metrics", "sparsity"], 3)),
     ["eval_result_metrics.sparsity", "an object"]),
    ("L0 missing", broken(_set(["eval_result_metrics", "sparsity", "L0"], KeyError)), ["L0", "missing"]),
    ("EV NaN", json.dumps(record()).replace('"EV": 0.8', '"EV": NaN'), ["eval_result_metrics.reconstruction.EV", "NaN"]),
    ("MSE Infinity", json.dumps(record()).replace('"MSE": 0.1', '"MSE": Infinity'),
     ["eval_result_metrics.reconstruction.MSE", "inf"]),
    ("a metric a string", broken(_set(["eval_result_metrics", "reconstruction", "MSE"], "0.1")),
     ["eval_result_metrics.reconstruction.MSE", "a number"]),
    ("sae_lens_id a number", broken(_set(["sae_lens_id"], 7)), ["sae_lens_id", "not a string"]),
    ("dead_pct null", broken(_set(["eval_result_metrics", "sparsity", "dead_pct"], None)), ["dead_pct", "null"]),
]


@pytest.mark.parametrize("name,content,words", BAD_RECORDS, ids=[b[0] for b in BAD_RECORDS])
def test_a_bad_record_is_refused_naming_its_path_field_and_rerun(tmp_path, name, content, words):
    root = tmp_path / "results" / "synthetic" / "rho0.5" / "runs" / "L1"
    path = root / "l1_coefficient~0.1_seed~0" / "metrics.json"
    path.parent.mkdir(parents=True)
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    with pytest.raises(L.RecordError) as err:
        L.build([root])
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: "), msg
    assert all(w in msg for w in words), (words, msg)
    assert "rerun" in msg and f"snakemake {root} --force" in msg, msg
    assert "Traceback" not in msg


def test_a_record_in_another_run_folder_is_refused(tmp_path):
    runs = tmp_path / "runs"
    # moved from L1's folder into AEN's: its family is not the folder's
    moved = write_run(runs / "AEN", record(family="L1"))
    with pytest.raises(L.RecordError) as err:
        L.build([runs / "AEN"])
    assert str(err.value).startswith(f"{moved}: ") and "family 'L1'" in str(err.value) and "AEN" in str(err.value)
    # copied under another run's folder name: the record names another run
    copied = write_run(runs / "L1", record(), name="l1_coefficient~0.2_seed~0")
    with pytest.raises(L.RecordError) as err:
        L.build([runs / "L1"])
    assert str(err.value).startswith(f"{copied}: ") and "l1_coefficient~0.1_seed~0" in str(err.value)


def test_two_records_claiming_one_run_are_refused_naming_both(tmp_path):
    a = write_run(tmp_path / "runs" / "L1", record())
    twin = record(run_id="l1_coefficient~0.1_seed~0_copy")
    b = write_run(tmp_path / "runs" / "L1", twin)
    with pytest.raises(ValueError) as err:
        L.build([tmp_path / "runs" / "L1"])
    msg = str(err.value)
    assert "same run" in msg and str(a) in msg and str(b) in msg and "\n" not in msg


def test_a_good_record_is_read_and_checked_records_carry_hashes_and_settings(tmp_path):
    path = write_run(tmp_path / "runs" / "L1", record())
    df, checked = L.check_inputs({"runs": [str(tmp_path / "runs" / "L1")]})
    assert len(df) == 1 and df.loc[0, "EV"] == 0.8
    (entry,) = checked["records"]
    import hashlib

    assert entry["path"] == str(path) and entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert entry["training_fingerprint"] == "f" * 16 and entry["weights_sha256"] == "0" * 64
    assert entry["family"] == "L1" and entry["seed"] == 0 and checked["rows"] == 1
    # the leaderboard verifies what it reads against the check: a record changed since is checked
    # again and named (not refused: `--forcerun leaderboard` reruns it without the check, and a
    # refusal there would cost the previous leaderboard); one changed into a bad record is refused
    inputs = {"runs": [str(tmp_path / "runs" / "L1")]}
    rec = record()
    rec["eval_result_metrics"]["reconstruction"]["EV"] = 0.99
    path.write_text(json.dumps(rec))
    df, now = L.check_inputs(inputs, checked=checked, checked_path="checked.json")
    (note,) = now["changed_since_check"]
    assert df.loc[0, "EV"] == 0.99 and note.startswith(f"{path}: its sha256") and "check_records" in note
    path.write_text(json.dumps(rec).replace("0.99", "NaN"))
    with pytest.raises(L.RecordError) as err:
        L.check_inputs(inputs, checked=checked, checked_path="checked.json")
    assert str(err.value).startswith(f"{path}: ") and "NaN" in str(err.value)
    shutil.rmtree(path.parent)  # a deleted run folder: its row goes, noted
    df, now = L.check_inputs(inputs, checked=checked, checked_path="checked.json")
    assert df.empty and now["changed_since_check"] == [f"{path}: checked by checked.json but gone now; its row is dropped"]


# --------------------------------------------------------------------------- real snakemake

SNAKEFILE = """
SYN_PAIRS = [("rho0.5", "L1")]
SYNTHSAE_RUN_DIRS, SYNTHSAE_BENCHMARKS, LLM_RUN_DIRS, LLM_BENCHMARKS = [], [], [], []
SPREAD_DATASETS, VARIANT_RUN_DIRS, VARIANT_BENCHMARKS = [], [], []

include: "{repo}/workflow/rules/leaderboard.smk"
"""


def snakemake(workdir, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "snakemake", *args, "-s", str(workdir / "Snakefile"), "-d",
                           str(workdir), "--cores", "1"], capture_output=True, text=True, timeout=300, env=env)


def test_a_bad_record_fails_before_the_leaderboard_job_and_the_old_leaderboard_survives(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "Snakefile").write_text(SNAKEFILE.format(repo=REPO))
    runs = work / "results" / "synthetic" / "rho0.5" / "runs" / "L1"
    write_run(runs, record())
    bench = work / "benchmarks" / "synthetic" / "rho0.5" / "train_L1.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                     "2.0\t0:00:02\t100.0\t200.0\t90\t95\t0\t0\t50\t1.5\n")
    proc = snakemake(work, "results/leaderboard.csv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    csv, yml = work / "results" / "leaderboard.csv", work / "results" / "metrics.yaml"
    before = csv.read_bytes(), yml.read_bytes()
    assert json.loads((work / "results" / "checked_records.json").read_text())["rows"] == 1

    # a second run whose record is cut short (written in place of the good one, folder touched)
    bad = write_run(runs, record(run_id="l1_coefficient~0.2_seed~0", l1=0.2))
    bad.write_text(bad.read_text()[:-30])
    proc = snakemake(work, "results/leaderboard.csv")
    assert proc.returncode != 0
    assert (csv.read_bytes(), yml.read_bytes()) == before  # nothing lost
    # the terminal names the record and the cause, not only the log
    assert f"{bad.relative_to(work)}: is not valid JSON" in proc.stderr, proc.stderr[-3000:]
    assert "logs/check_records.log" in proc.stderr
    assert "rule leaderboard:" not in proc.stdout + proc.stderr  # the leaderboard job never started

    # repaired: the leaderboard is rebuilt with both rows
    write_run(runs, record(run_id="l1_coefficient~0.2_seed~0", l1=0.2))
    proc = snakemake(work, "results/leaderboard.csv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(csv.read_text().splitlines()) == 3


FAILING = """
rule syntax:
    output: "syntax.txt"
    log: "logs/syntax.log"
    script: "syntax_job.py"

rule raises:
    output: "raises.txt"
    log: "logs/raises.log"
    script: "raises_job.py"
"""


def test_a_failed_job_shows_its_real_error_in_the_terminal(tmp_path):
    """A plugin with a syntax error and a job that raises: snakemake's stderr shows the exception,
    its message, the plugin's file and line, and the log path; the log keeps the traceback."""
    work = tmp_path / "w"
    work.mkdir()
    (work / "Snakefile").write_text(FAILING)
    (work / "bad_plugin.py").write_text("x = 1\ndef broken(:\n    pass\n")
    head = "from aenbench.jobs import setup_job\nsetup_job(snakemake)\nprint('job started')\n"
    (work / "syntax_job.py").write_text(head + textwrap.dedent("""
        import importlib.util
        spec = importlib.util.spec_from_file_location("bad_plugin", "bad_plugin.py")
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    """))
    (work / "raises_job.py").write_text(head + "raise ValueError('the teacher file names 7 atoms, the config 8')\n")
    proc = snakemake(work, "syntax.txt", "raises.txt", "--keep-going")
    assert proc.returncode != 0
    err = proc.stderr
    assert "SyntaxError" in err and "bad_plugin.py" in err and "line 2" in err and "def broken(:" in err, err[-3000:]
    assert "ValueError: the teacher file names 7 atoms, the config 8" in err, err[-3000:]
    assert "logs/syntax.log" in err and "logs/raises.log" in err
    log = (work / "logs" / "raises.log").read_text()
    assert "job started" in log and "Traceback" in log and "ValueError" in log
