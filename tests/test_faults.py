"""Faults with real processes: kill -9 mid-training and resume; divergence; kill a Snakemake run.

Counts for the report are in the docstrings: faults injected per test.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

RUNNER = textwrap.dedent('''
    import json, logging, sys
    from pathlib import Path
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    import torch
    torch.set_num_threads(1)
    from aenbench.synthetic.track import make_teacher, train_family
    a = json.loads(sys.argv[1])
    d = Path(a["dictionary"])
    if not d.exists():
        make_teacher(a["spec"], d, d.with_suffix(".json"))
    train_family(dictionary_path=d, out_dir=a["out_dir"], dataset="rho0.5", family_name="AEN", family=a["family"],
                 runs=[tuple(r) for r in a["runs"]], spec=a["spec"], train=a["train"],
                 arch_defaults=a["arch_defaults"], device="cpu")
    print("FAMILY DONE", flush=True)
''')

RUNS = [["l1_coefficient~0.04_seed~0", {"l1_coefficient": 0.04, "seed": 0}],
        ["l1_coefficient~0.02_seed~1", {"l1_coefficient": 0.02, "seed": 1}]]


def job_args(root, steps=4000, every=200, engine="per_sae"):
    return {
        "spec": {"dataset": "rho0.5", "n": 8, "m": 32, "k": 1, "rho": 0.5, "dictionary_seed": 0,
                 "magnitude": [0.5, 1.5], "n_diagnostic_supports": 5},
        "dictionary": str(root / "dict.safetensors"),
        "out_dir": str(root / "results" / "synthetic" / "rho0.5" / "runs" / "AEN"),
        "family": {"architecture": "aen", "fixed": {"adaptive": True, "l2_coefficient": 0.002}},
        "runs": RUNS,
        "train": {"steps": steps, "batch_size": 32, "lr": 0.003, "seeds": [0], "dead_window_steps": 50,
                  "auxk_dead_window_steps": 50, "eval_samples": 256, "eval_seed": 123, "checkpoint_every": every,
                  "engine": engine},
        # AEN: its EMA and adaptive weights are updated every step, so a lost EMA shows in the metrics
        "arch_defaults": {"aen": {"warmup_steps": 100, "ramp_steps": 50, "w_min": 0.01, "w_max": 10.0, "beta": 0.9,
                                  "p": 0.05, "gamma": 1.0, "decoder_norm": "project", "loss_convention": "authors"}},
    }


def start(tmp_path, args):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    return subprocess.Popen([sys.executable, str(script), json.dumps(args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp_path)


def comparable(metrics_path):
    rec = json.loads(Path(metrics_path).read_text())
    return rec["eval_result_metrics"], rec["sae_cfg_dict"], rec["run"]["steps"], rec["run"]["hyperparameters"]


def second_checkpoint(ckpt, store, engine, proc, deadline):
    """The checkpoint.json of the job's 2nd SAE (per_sae) or 2nd stack (stacked: the runs have
    two seeds, so two stacks of one), once it exists."""
    first_stacks = None
    while True:
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        if engine == "per_sae":
            if (ckpt / RUNS[1][0] / "latest" / "checkpoint.json").exists():
                return ckpt / RUNS[1][0] / "latest" / "checkpoint.json"
        elif len(list(store.glob("*/training.json"))) == 1:
            stacks = {p.parents[1].name for p in ckpt.glob("stack-*/latest/checkpoint.json")}
            if first_stacks is None:
                first_stacks = stacks  # the 1st stack's, if its folder is not removed yet
            elif stacks - first_stacks:
                return ckpt / (stacks - first_stacks).pop() / "latest" / "checkpoint.json"
        time.sleep(0.02)


@pytest.mark.parametrize("engine", ["per_sae", "stacked"])
def test_kill_9_mid_training_resumes_to_the_same_metrics(tmp_path, engine):
    """Faults injected: 1 SIGKILL of a real training process, mid-run of its 2nd SAE (per_sae)
    or of its 2nd stack (stacked)."""
    ref_root, cut_root = tmp_path / "ref", tmp_path / "cut"
    for r in (ref_root, cut_root):
        r.mkdir()
    ref = start(ref_root, job_args(ref_root, engine=engine))
    out, _ = ref.communicate(timeout=300)
    assert ref.returncode == 0, out[-3000:]

    args = job_args(cut_root, engine=engine)
    ckpt = cut_root / "results" / "checkpoints" / "synthetic" / "rho0.5" / "runs" / "AEN"
    proc = start(cut_root, args)
    second = second_checkpoint(ckpt, cut_root / "results" / "store" / "trained", engine, proc, time.time() + 300)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(second.read_text())["step"]
    assert 0 < killed_at < args["train"]["steps"]
    out_dir = Path(args["out_dir"])
    assert not out_dir.exists()  # the family folder appears only when complete
    # the finished first SAE is in the store (aenbench.stages), outside the checkpoints
    assert len(list((cut_root / "results" / "store" / "trained").glob("*/training.json"))) == 1

    again = start(cut_root, args)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out[-3000:]
    assert f"{RUNS[0][0]}: trained before (store" in out and f"1 SAE(s) trained ({engine}), 1 reused from the store" in out, \
        "\n".join(line for line in out.replace("\r", "\n").splitlines() if "it/s" not in line)[-3000:]
    assert not ckpt.exists()  # checkpoints are removed once the family is in place
    ref_dir = Path(job_args(ref_root, engine=engine)["out_dir"])
    for run_id, _ in RUNS:
        assert comparable(out_dir / run_id / "metrics.json") == comparable(ref_dir / run_id / "metrics.json")
        a = load_file(str(out_dir / run_id / "sae" / "sae_weights.safetensors"))
        b = load_file(str(ref_dir / run_id / "sae" / "sae_weights.safetensors"))
        assert a.keys() == b.keys() and "ema_activity" in a
        for k in a:
            assert torch.equal(a[k], b[k]), k


def test_divergence_stops_with_step_losses_and_checkpoint(tmp_path, monkeypatch):
    """Faults injected: 1 NaN batch at step 130 (checkpoints every 50 steps)."""
    from aenbench.synthetic import track
    from aenbench.synthetic.spiked import SpikedStream
    from aenbench.training import DivergenceError

    args = job_args(tmp_path, steps=300, every=50)
    track.make_teacher(args["spec"], args["dictionary"], tmp_path / "diag.json")
    real_next = SpikedStream.__next__
    calls = {"n": 0}

    def poisoned(self):
        calls["n"] += 1
        x = real_next(self)
        return x * float("nan") if calls["n"] == 131 else x  # the batch of step 130

    monkeypatch.setattr(SpikedStream, "__next__", poisoned)
    with pytest.raises(DivergenceError) as err:
        track.train_family(dictionary_path=args["dictionary"], out_dir=args["out_dir"], dataset="rho0.5",
                           family_name="AEN", family=args["family"], runs=[tuple(r) for r in RUNS],
                           spec=args["spec"], train=args["train"], arch_defaults=args["arch_defaults"],
                           device="cpu")
    e = err.value
    assert e.step == 130
    assert "mse_loss" in e.losses and any(v != v for v in e.losses.values())
    assert e.checkpoint and e.checkpoint.endswith(os.path.join(RUNS[0][0], "latest"))
    assert json.loads((Path(e.checkpoint) / "checkpoint.json").read_text())["step"] == 100
    msg = str(e)
    assert "step 130" in msg and "mse_loss=nan" in msg and e.checkpoint in msg
    assert "(saved at step 100 in this run)" in msg  # named "last good" only as a checkpoint it verified
    meta = json.loads((Path(e.checkpoint) / "checkpoint.json").read_text())
    from aenbench.io import sha256_file

    assert meta["files"] and all(sha256_file(Path(e.checkpoint) / n) == h for n, h in meta["files"].items())
    assert not Path(args["out_dir"]).exists()
    assert not list(tmp_path.rglob("metrics.json"))
