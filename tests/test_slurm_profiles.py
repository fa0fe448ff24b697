"""The cluster profiles (README, "Running on a cluster") plan the smoke DAG: `snakemake -n
--profile workflow/profiles/{slurm,slurm-gpu,kubernetes}`. No scheduler is contacted by a dry
run; the real-SLURM test is `.ci/slurm-test.sh` (root, about 10 minutes, not part of CI).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "workflow" / "profiles"
GPU_RULES = {"synthetic_train", "variant_train", "llm_harvest", "llm_train", "llm_train_streamed", "llm_crosscheck_saelens"}


def dry_run(profile, workdir, *extra):
    cmd = [sys.executable, "-m", "snakemake", "figures/all", "-n", "--profile", str(PROFILES / profile),
           "-s", str(REPO / "Snakefile"), "-d", str(workdir), *extra,
           "--configfile", str(REPO / "configs" / "smoke.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def rules_of(profile):
    """Every rule named in a profile's per-rule sections."""
    cfg = yaml.safe_load((PROFILES / profile / "config.yaml").read_text())
    return set(cfg["set-resources"]) | set(cfg["set-threads"]) | set(cfg["groups"]), cfg


def test_profiles_name_only_existing_rules():
    rules = set()
    for config in ("smoke.yaml", "paper_pythia70m.yaml"):  # the disk and the streamed LLM rules
        proc = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules", "-s", str(REPO / "Snakefile"),
                               "--configfile", str(REPO / "configs" / config)],
                              capture_output=True, text=True, cwd=REPO, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        rules |= set(proc.stdout.split())
    for profile in ("slurm", "slurm-gpu", "kubernetes"):
        named, cfg = rules_of(profile)
        assert named <= rules, f"{profile}: unknown rules {named - rules}"
        assert set(cfg["groups"].values()) == set(cfg["group-components"]), profile


def test_slurm_gpu_profile_is_the_slurm_profile_plus_gpus():
    _, cpu = rules_of("slurm")
    _, gpu = rules_of("slurm-gpu")
    with_gpu = {rule for rule, res in gpu["set-resources"].items() if res.pop("gpu", None) == 1}
    assert with_gpu == GPU_RULES
    assert gpu == cpu


def test_slurm_profile_plans_the_smoke_dag(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    out = dry_run("slurm", tmp_path / "w")
    assert "Group job teachers" in out and "Group job reports" in out
    assert "gpu=" not in out
    assert "mem_mb=1500" in out  # synthetic_train, from set-resources


def test_slurm_gpu_profile_asks_for_gpus(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    out = dry_run("slurm-gpu", tmp_path / "w")
    assert "gpu=1" in out


def test_kubernetes_profile_plans_the_smoke_dag(tmp_path):
    """The plugin assumes no shared file system: every file goes through the storage plugin,
    and files the workflow reads from the checkout by absolute path must be staged under the
    storage prefix (the profile's comments say so); here a folder stands in for the volume."""
    pytest.importorskip("snakemake_executor_plugin_kubernetes")
    pytest.importorskip("snakemake_storage_plugin_fs")
    volume = tmp_path / "volume"
    staged = volume / str(REPO).lstrip("/")
    shutil.copytree(REPO / "examples", staged / "examples")
    shutil.copytree(REPO / "results" / "reference", staged / "results" / "reference")
    out = dry_run("kubernetes", tmp_path / "w", "--default-storage-prefix", str(volume))
    assert "Group job teachers" in out and "Group job reports" in out
