"""Bad configs are rejected at DAG start with an error that names the field."""

import copy
import os
import subprocess
import sys

import pytest
import yaml


def dry_run(repo_root, tmp_path, cfg):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "-n", "figures/all", "--cores", "1",
           "-s", os.path.join(repo_root, "Snakefile"), "-d", str(tmp_path), "--configfile", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def smoke_cfg(repo_root):
    with open(os.path.join(repo_root, "configs", "smoke.yaml")) as f:
        return yaml.safe_load(f)


def test_smoke_config_plans(repo_root, tmp_path, smoke_cfg):
    proc = dry_run(repo_root, tmp_path, smoke_cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _set(cfg, dotted, value):
    node = cfg
    *parents, last = dotted.split(".")
    for p in parents:
        node = node[p]
    node[last] = value


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("synthetic.nn", 3, "nn"),                          # unknown key
        ("synthetic.n", 0, "0"),                            # below minimum
        ("synthetic.rhos", [0.0, 1.0], "1.0"),              # ρ must be < 1
        ("synthetic.train.steps", "many", "many"),          # wrong type
        ("synthetic.families", ["L1", "Nope"], "Nope"),     # not defined under families
        ("synthetic.train.dead_window_steps", 10**9, "dead_window_steps"),
        ("device", "tpu", "tpu"),
        ("families.L1.architecture", 5, "5"),
    ],
)
def test_bad_config_is_rejected_naming_the_field(repo_root, tmp_path, smoke_cfg, field, value, message):
    cfg = copy.deepcopy(smoke_cfg)
    _set(cfg, field, value)
    proc = dry_run(repo_root, tmp_path, cfg)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def test_all_violations_are_reported_at_once(repo_root, tmp_path, smoke_cfg):
    cfg = copy.deepcopy(smoke_cfg)
    cfg["device"] = "tpu"
    cfg["synthetic"]["train"]["lr"] = -1
    cfg["synthetic"]["typo"] = 1
    proc = dry_run(repo_root, tmp_path, cfg)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "device = 'tpu': must be one of" in out
    assert "synthetic.train.lr = -1: must be > 0" in out
    assert "unknown key(s) 'typo'" in out


@pytest.mark.parametrize("name", ["default", "smoke", "paper_synthetic", "paper_pythia70m", "paper_llama8b",
                                  "paper_smollm2"])
def test_every_shipped_config_plans(repo_root, tmp_path, name):
    with open(os.path.join(repo_root, "configs", f"{name}.yaml")) as f:
        cfg = yaml.safe_load(f)
    proc = dry_run(repo_root, tmp_path, cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "figures_all" in proc.stdout


def test_config_without_any_track_is_rejected(repo_root, tmp_path, smoke_cfg):
    cfg = {k: v for k, v in smoke_cfg.items() if k not in ("synthetic", "llm", "variants")}
    proc = dry_run(repo_root, tmp_path, cfg)
    assert proc.returncode != 0
    assert "neither a `synthetic` nor an `llm` section" in proc.stdout + proc.stderr
