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
        ("families.AEN.grid.beta", [0.9, 1.2], "families.AEN.grid.beta = 1.2: must be a number with 0 < β < 1"),
        ("llm.families.TopK.grid.k", [4096], "llm.families.TopK.grid.k = 4096: must be ≤ llm.width = 1152"),
    ],
)
def test_bad_config_is_rejected_naming_the_field(repo_root, tmp_path, smoke_cfg, field, value, message):
    cfg = copy.deepcopy(smoke_cfg)
    _set(cfg, field, value)
    proc = dry_run(repo_root, tmp_path, cfg)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert "Job stats" not in proc.stdout  # stopped before any job was planned


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


@pytest.mark.parametrize("name", ["default", "paper_grid", "smoke", "paper_synthetic", "paper_pythia70m", "paper_llama8b",
                                  "paper_smollm2", "replication_synthetic"])
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


# --- more bad configs, checked in-process with the very functions common.smk runs at DAG start
# (schema_errors, then consistency_problems); a few of them also through `snakemake -n` below.

def _configcheck(repo_root):
    import importlib.util

    spec = importlib.util.spec_from_file_location("_cc", os.path.join(repo_root, "src", "aenbench", "configcheck.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _problems(repo_root, cfg):
    cc = _configcheck(repo_root)
    errors = cc.schema_errors(cfg, cc.load_schema(os.path.join(repo_root, "workflow", "schemas", "config.schema.yaml")))
    return errors or cc.consistency_problems(cfg)


BAD_CONFIGS = [
    # (field, value, expected words: the field, the bad value, what is allowed)
    ("families.AEN.fixed.l2_coefficient", -0.1, "families.AEN.fixed.l2_coefficient = -0.1: must be a number ≥ 0"),
    ("families.L1.grid.l1_coefficient", [0.08, -1], "families.L1.grid.l1_coefficient = -1: must be a number ≥ 0"),
    ("arch_defaults.aen.beta", 1.0, "arch_defaults.aen.beta = 1.0: must be a number with 0 < β < 1"),
    ("arch_defaults.aen.p", 0, "arch_defaults.aen.p = 0: must be a number with 0 < p ≤ 1"),
    ("families.AEN.grid.p", [0.5, 1.5], "families.AEN.grid.p = 1.5: must be a number with 0 < p ≤ 1"),
    ("families.AEN.fixed.w_min", 20.0,
     "families.AEN.fixed.w_min = 20.0 exceeds arch_defaults.aen.w_max = 10.0: need w_min ≤ w_max"),
    ("families.TopK.grid.k", [1, 65], "families.TopK.grid.k = 65: must be ≤ synthetic.m = 64 (k ≤ width)"),
    ("llm.families.TopK.grid.k", [2000], "llm.families.TopK.grid.k = 2000: must be ≤ llm.width = 1152"),
    ("families.TopK.grid.k", [0], "families.TopK.grid.k = 0: must be an integer ≥ 1"),
    ("families.AL.fixed.adaptive", "yes", "families.AL.fixed.adaptive = 'yes': must be true or false"),
    ("arch_defaults.aen.decoder_norm", "unit",
     "arch_defaults.aen.decoder_norm = 'unit': must be one of ['project', 'weight_penalty']"),
    ("arch_defaults.aen.warmup_steps", -5, "arch_defaults.aen.warmup_steps = -5: must be an integer ≥ 0"),
    ("llm.arch_defaults.aen.gamma", -1, "llm.arch_defaults.aen.gamma = -1: must be a number ≥ 0"),
    ("families.TopK-AuxK.fixed.aux_loss_coefficient", -1.0,
     "families.TopK-AuxK.fixed.aux_loss_coefficient = -1.0: must be a number ≥ 0"),
    ("variants.L1-resample.grid.l1_coefficient", [-1.28],
     "variants.L1-resample.grid.l1_coefficient = -1.28: must be a number ≥ 0"),
    ("synthetic.k", 100, "synthetic.k = 100 exceeds synthetic.m = 64: need k ≤ m"),
    ("synthetic.magnitude", [3.0, 1.0], "synthetic.magnitude = [3.0, 1.0]: need low ≤ high"),
    ("llm.eval.ce_contexts", 100, "llm.eval.ce_contexts = 100 exceeds llm.harvest.eval_contexts = 8"),
    ("llm.train.dead_window_steps", 100, "llm.train.dead_window_steps = 100 exceeds llm.train.steps = 40"),
    ("llm.model", "gpt2", "llm.model = 'gpt2': must be one of ['smollm2-135m', 'pythia-70m-deduped', 'llama-3.1-8b']"),
    ("llm.hook", "layer3", "llm.hook = 'layer3': must match"),
    ("synthetic.train.checkpoint_every", -1, "synthetic.train.checkpoint_every = -1: must be ≥ 0"),
    ("llm.harvest.dtype", "float64", "llm.harvest.dtype = 'float64': must be one of"),
    ("synthetic.train.seeds", [0, 0], "synthetic.train.seeds = [0, 0]: items must be unique"),
    ("families.L1.grid.l1_coefficient", [], "families.L1.grid.l1_coefficient = []: needs at least 1 item"),
    ("llm.width", 0.5, "llm.width = 0.5: must be of type integer"),
    ("families.JumpReLU.grid.l0_coefficient", [-1.0],
     "families.JumpReLU.grid.l0_coefficient = -1.0: must be a number ≥ 0"),
    ("synthetic.pairs", {"rho0.9": ["Nope"]}, "synthetic.pairs.rho0.9 lists 'Nope', which is not in synthetic.families"),
    ("synthetic.pairs", {"rho0.5": ["AEN"]}, "synthetic.pairs.rho0.5: not a dataset of synthetic.rhos"),
    ("ablations.warmup.base", "Nope", "ablations.warmup.base = 'Nope': not a family"),
    ("ablations.warmup.datasets", ["rho0.3"], "ablations.warmup.datasets lists 'rho0.3'; known datasets"),
    ("ablations.warmup.arms", {"T_w=0": {"warmup_steps": -1}},
     "ablations.warmup.arms.T_w=0.fixed.warmup_steps = -1: must be an integer ≥ 0"),
    ("ablations.warmup.arms", {"bad label": {}}, "ablations.warmup.arms = 'bad label': must match"),
]


@pytest.mark.parametrize("field, value, message", BAD_CONFIGS, ids=[f"{f}={v!r}" for f, v, _ in BAD_CONFIGS])
def test_bad_hyperparameter_or_range_is_named(repo_root, smoke_cfg, field, value, message):
    cfg = copy.deepcopy(smoke_cfg)
    _set(cfg, field, value)
    problems = _problems(repo_root, cfg)
    assert any(message in p for p in problems), problems


def test_shipped_configs_pass_the_range_checks(repo_root):
    for name in ["default", "paper_grid", "smoke", "paper_synthetic", "paper_pythia70m", "paper_llama8b", "paper_smollm2",
                 "replication_synthetic"]:
        with open(os.path.join(repo_root, "configs", f"{name}.yaml")) as f:
            assert _problems(repo_root, yaml.safe_load(f)) == [], name


