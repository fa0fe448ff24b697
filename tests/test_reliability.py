"""Reliability with real Snakemake processes on a tiny config (synthetic + a tiny LLM track):

* kill -9 of a whole `snakemake` process group mid-run: no partial JSON / CSV / safetensors,
  leftovers only as dot-named temporaries; `--unlock` + rerun completes with no row lost, and
  the resumed rows equal those of an uninterrupted run (checkpoints, finished runs reused);
* the uninterrupted run has no network (``unshare -n``) and a socket guard that records and
  refuses every non-local connection;
* same seeds → identical leaderboard rows; other seeds → different rows;
* no bare ``torch.load`` in the code.
"""

import copy
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from safetensors.torch import load_file

pytestmark = pytest.mark.e2e

# columns that describe the machine or the wall clock, not the result
# (git_commit: the checkout may move between two runs of a test)
VOLATILE = {"train_seconds", "job_wall_s", "job_max_rss_mb", "job_cpu_s", "metrics_path", "git_commit"}

AEN = {"warmup_steps": 60, "ramp_steps": 20, "w_min": 0.01, "w_max": 10.0, "beta": 0.9, "p": 0.05, "gamma": 1.0,
       "decoder_norm": "project", "loss_convention": "authors"}
CONFIG = {
    "device": "cpu",
    "arch_defaults": {"aen": AEN},
    "families": {
        "L1": {"architecture": "aen", "fixed": {"adaptive": False, "l2_coefficient": 0.0},
               "grid": {"l1_coefficient": [0.08, 0.02]}},
        "AEN": {"architecture": "aen", "fixed": {"adaptive": True, "l2_coefficient": 0.002},
                "grid": {"l1_coefficient": [0.04]}},
        "TopK": {"architecture": "topk", "fixed": {"aux_loss_coefficient": 0.0}, "grid": {"k": [1, 2]}},
    },
    "synthetic": {
        "n": 8, "m": 32, "k": 1, "rhos": [0.5], "dictionary_seed": 0, "n_diagnostic_supports": 5,
        "families": ["L1", "AEN", "TopK"],
        "train": {"steps": 1500, "batch_size": 32, "lr": 0.003, "seeds": [0], "dead_window_steps": 100,
                  "auxk_dead_window_steps": 100, "eval_samples": 512, "checkpoint_every": 100},
    },
    "llm": {
        "model": "smollm2-135m", "hook": "blocks.1.hook_resid_post", "corpus": "packaged", "width": 128,
        "harvest": {"context_size": 32, "train_contexts": 16, "eval_contexts": 4, "shard_contexts": 8,
                    "batch_contexts": 4},
        "train": {"steps": 30, "batch_size": 64, "lr": 0.001, "seeds": [0], "dead_window_steps": 10,
                  "auxk_dead_window_steps": 10, "buffer_tokens": 256, "checkpoint_every": 10},
        "eval": {"ce_contexts": 2, "batch_contexts": 2, "crosscheck_saelens": False},
        "arch_defaults": {"aen": {**AEN, "warmup_steps": 10, "ramp_steps": 10}},
        "families": {
            "AEN": {"architecture": "aen", "fixed": {"adaptive": True, "l2_coefficient": 0.0001},
                    "grid": {"l1_coefficient": [0.005]}},
        },
    },
}
N_ROWS = 5 + 1  # 5 synthetic SAEs + 1 LLM SAE

# Imported first by every Python process of the run (PYTHONPATH): records and refuses any
# connection that is not a local (AF_UNIX) socket.
GUARD = textwrap.dedent('''
    import os, socket
    _log = os.environ.get("AENBENCH_NET_LOG")
    _connect = socket.socket.connect
    def _guarded(self, address, *args):
        if self.family != socket.AF_UNIX:
            with open(_log, "a") as f:
                f.write(f"{os.getpid()} {address!r}\\n")
            raise OSError("network disabled by the aenbench reliability test")
        return _connect(self, address, *args)
    if _log:
        socket.socket.connect = _guarded
        socket.socket.connect_ex = _guarded
''')


def smk_cmd(repo_root, workdir, *args):
    return [sys.executable, "-m", "snakemake", *args, "-s", os.path.join(repo_root, "Snakefile"),
            "-d", str(workdir), "--configfile", str(workdir / "cfg.yaml")]


def prepare(tmp_path_factory, name, cfg):
    workdir = tmp_path_factory.mktemp(name)
    (workdir / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return workdir


def run(repo_root, workdir, *args, env=None, prefix=(), timeout=600):
    proc = subprocess.run([*prefix, *smk_cmd(repo_root, workdir, *args)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def rows(workdir):
    df = pd.read_csv(workdir / "results" / "leaderboard.csv")
    df = df[df["source"] == "ours"].drop(columns=[c for c in VOLATILE if c in df.columns])
    return df.sort_values(["track", "dataset", "family", "params", "seed"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def offline_run(repo_root, tmp_path_factory):
    """The uninterrupted reference: no network namespace and a socket guard."""
    workdir = prepare(tmp_path_factory, "offline", CONFIG)
    guard_dir = workdir / "guard"
    guard_dir.mkdir()
    (guard_dir / "sitecustomize.py").write_text(GUARD)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(guard_dir), env.get("PYTHONPATH")]))
    env["AENBENCH_NET_LOG"] = str(workdir / "net.log")
    prefix = ("unshare", "-n") if shutil.which("unshare") and os.geteuid() == 0 else ()
    # "once resources are fetched": fetch them first, with the network (a no-op when cached)
    resources = Path(repo_root) / "resources"
    run(repo_root, workdir, str(resources / "models" / "smollm2-135m" / "info.json"),
        str(resources / "corpus" / "manifest.json"), "--cores", "2")
    run(repo_root, workdir, "results/leaderboard.csv", "--cores", "2", env=env, prefix=prefix)
    return workdir


def test_no_network_connection_at_run_time(offline_run):
    log = offline_run / "net.log"
    assert not log.exists(), "connections attempted:\n" + log.read_text()
    assert len(rows(offline_run)) == N_ROWS


def check_no_partial_files(results):
    """Every JSON / CSV / safetensors parses; returns the dot-named temporaries left behind."""
    leftovers, n_checked = [], 0
    for p in results.rglob("*"):
        if any(part.startswith(".") and part.endswith((".tmp", ".old")) for part in p.relative_to(results).parts):
            if p.name.startswith("."):
                leftovers.append(p)
            continue
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".csv":
            pd.read_csv(p)
        elif p.suffix == ".safetensors":
            load_file(str(p))
        else:
            continue
        n_checked += 1
    return leftovers, n_checked


def test_kill_9_snakemake_then_resume_loses_nothing(repo_root, tmp_path_factory, offline_run):
    """Faults injected: 1 SIGKILL of the whole Snakemake process group (driver + running jobs),
    while training jobs are mid-run with checkpoints on disk."""
    workdir = prepare(tmp_path_factory, "killed", CONFIG)
    proc = subprocess.Popen(smk_cmd(repo_root, workdir, "results/leaderboard.csv", "--cores", "2"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    results = workdir / "results"
    deadline = time.time() + 400
    try:
        while True:
            try:
                done = list(results.glob("synthetic/*/runs/*"))
                ckpts = list(results.glob("checkpoints/**/latest/checkpoint.json"))
            except FileNotFoundError:  # a folder renamed into place while glob walked it: look again
                continue
            if done and ckpts:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (results / "leaderboard.csv").exists(), "killed too late"
    leftovers, n_checked = check_no_partial_files(results)
    assert n_checked > 0
    # every family folder present is complete: one metrics.json and a loadable SAE per run
    for fam_dir in results.glob("synthetic/*/runs/*"):
        for run_dir in (p for p in fam_dir.iterdir() if p.is_dir()):  # not Snakemake's .snakemake_timestamp
            assert (run_dir / "metrics.json").exists() and (run_dir / "sae" / "sae_weights.safetensors").exists()

    run(repo_root, workdir, "--unlock")
    run(repo_root, workdir, "results/leaderboard.csv", "--cores", "2", "--rerun-incomplete")
    leftovers_after, _ = check_no_partial_files(results)
    assert not [p for p in leftovers_after if "checkpoints" not in p.parts], leftovers_after
    assert not (results / "checkpoints").exists() or not list((results / "checkpoints").rglob("*.safetensors"))
    resumed, reference = rows(workdir), rows(offline_run)
    assert len(resumed) == N_ROWS  # rows lost: 0
    pd.testing.assert_frame_equal(resumed, reference)  # resumed = uninterrupted, to the bit
    logs = "".join(p.read_text() for p in (workdir / "logs").rglob("*.log"))
    n_resumed = logs.count("resumed from the checkpoint")
    n_reused = logs.count("trained before (store")
    assert n_resumed >= 1
    print(f"kill -9: {len(leftovers)} temporaries left by the kill, {n_checked} files checked, "
          f"{n_resumed} SAE(s) resumed from a checkpoint, {n_reused} finished SAE(s) reused, rows lost 0")


def test_other_seeds_give_other_rows(repo_root, tmp_path_factory, offline_run):
    cfg = copy.deepcopy(CONFIG)
    del cfg["llm"]
    cfg["synthetic"]["train"]["seeds"] = [1]
    cfg["synthetic"]["families"] = ["AEN", "TopK"]
    workdir = prepare(tmp_path_factory, "seed1", cfg)
    run(repo_root, workdir, "results/leaderboard.csv", "--cores", "2")
    other = rows(workdir)
    ref = rows(offline_run)
    ref = ref[(ref["track"] == "synthetic") & ref["family"].isin(["AEN", "TopK"])].reset_index(drop=True)
    assert len(other) == len(ref)
    metric_cols = [c for c in ("L0", "EV", "MSE", "MCC", "dead_pct") if c in ref.columns]
    assert metric_cols
    for col in metric_cols:
        assert not ref[col].equals(other[col]), col


def test_weights_load_only_through_safetensors_or_weights_only(repo_root):
    bare = []
    for folder in ("src", "workflow", "examples", "scripts"):
        for p in Path(repo_root, folder).rglob("*.py"):
            for i, line in enumerate(p.read_text().splitlines(), 1):
                if re.search(r"\btorch\.load\(", line) and "weights_only=True" not in line:
                    bare.append(f"{p}:{i}: {line.strip()}")
                if re.search(r"\bpickle\.loads?\(", line):
                    bare.append(f"{p}:{i}: {line.strip()}")
    assert not bare, bare


def test_unknown_architecture_stops_the_dag_and_broken_plugin_fails_its_job_by_name(repo_root, tmp_path_factory):
    """Through the DAG: a family whose architecture is not registered is refused at DAG start
    (aenbench.configcheck, from the generated arch_fields table), before any job runs or removes
    an output; a variant whose plugin file raises on import (ast cannot tell what it registers)
    fails its job naming the file. Neither is a KeyError from sae-lens."""
    cfg = copy.deepcopy(CONFIG)
    del cfg["llm"]
    cfg["families"]["Bogus"] = {"architecture": "no_such_sae", "grid": {"l1_coefficient": [0.1]}}
    cfg["synthetic"]["families"] = ["Bogus"]
    cfg["synthetic"]["train"]["steps"] = 100
    cfg["variants"] = {"Broken": {"plugin": "broken_plugin.py", "architecture": "broken", "grid": {"x": [1]}}}
    workdir = prepare(tmp_path_factory, "badnames", cfg)
    (workdir / "broken_plugin.py").write_text("import torch\nraise RuntimeError('plugin exploded on import')\n")
    targets = ["results/synthetic/rho0.5/runs/Bogus", "results/synthetic/rho0.5/variants/Broken"]
    proc = subprocess.run(smk_cmd(repo_root, workdir, *targets, "--cores", "2", "--keep-going"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "families.Bogus.architecture = 'no_such_sae': not a registered SAE architecture" in proc.stderr
    assert "registered:" in proc.stderr and "aen" in proc.stderr.split("registered:")[1]
    assert not (workdir / "logs").exists()  # no job ran

    cfg["synthetic"]["families"] = ["L1"]
    del cfg["families"]["Bogus"]
    workdir = prepare(tmp_path_factory, "badplugin", cfg)
    (workdir / "broken_plugin.py").write_text("import torch\nraise RuntimeError('plugin exploded on import')\n")
    proc = subprocess.run(smk_cmd(repo_root, workdir, targets[1], "--cores", "2"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    variant_log = (workdir / "logs" / "synthetic" / "rho0.5" / "variant_Broken.log").read_text()
    assert "broken_plugin.py" in variant_log and "plugin exploded on import" in variant_log
    assert "Traceback" in variant_log
    assert "plugin exploded on import" in proc.stderr  # the real error on the terminal too (jobs.setup_job)
    assert "KeyError" not in variant_log
    assert not (workdir / targets[1]).exists()


def test_unknown_model_lists_the_registered_ones():
    from aenbench.llm.models import MODELS, model_spec

    with pytest.raises(ValueError) as err:
        model_spec("gpt-5")
    assert "'gpt-5'" in str(err.value) and all(name in str(err.value) for name in MODELS)
