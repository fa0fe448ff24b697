"""Every config error is found at DAG start (issue 17, finding 3): NaN / inf, 8.0 for an integer,
misspelled hyperparameter names, unknown architectures, repeated grid values, an LLM hook past
the model's last layer, seeds beyond int64, keys given twice, grids too large to mean it.

The many bad inputs are checked in-process with the very functions workflow/rules/common.smk
calls (duplicate_key_problems, schema_errors, early_problems, consistency_problems); two real
Snakemake processes show that such a config stops before any job runs and removes nothing.
"""

import copy
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


cc = _load("_cc_dag_start", REPO / "src" / "aenbench" / "configcheck.py")
SCHEMA = cc.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
TABLES = cc.load_tables()


def config(name="smoke"):
    with open(REPO / "configs" / f"{name}.yaml") as f:
        return yaml.safe_load(f)


SMOKE = config()


def problems(cfg, notes=None):
    """What common.smk reports for ``cfg``, in its order: the schema's errors (with the checks
    that need no schema-valid config), else the consistency problems."""
    errors = cc.schema_errors(cfg, SCHEMA)
    if errors:
        return errors + cc.early_problems(cfg, TABLES, REPO, notes, already=errors)
    return cc.consistency_problems(copy.deepcopy(cfg), TABLES, REPO, notes)


def with_value(cfg, dotted, value):
    """``cfg`` with ``value`` at ``dotted`` (parts separated by '|': family and arm names hold dots)."""
    cfg = copy.deepcopy(cfg)
    node = cfg
    *parents, last = dotted.split("|")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return cfg


NAN, INF = float("nan"), float("inf")
BIG_GRID = {f"p{i}": list(range(10)) for i in range(6)}  # 10⁶ combinations (names checked later)

# (class, field, value, expected text: the field path, the bad value and the fix)
BAD = [
    # non-finite: YAML .nan / .inf pass JSON schema's minimum / maximum
    ("non-finite", "synthetic|rhos", [0.0, NAN], "synthetic.rhos[1] = nan: must be a finite number"),
    ("non-finite", "synthetic|train|lr", INF, "synthetic.train.lr = inf: must be a finite number"),
    ("non-finite", "synthetic|magnitude", [1.0, INF], "synthetic.magnitude[1] = inf: must be a finite number"),
    ("non-finite", "llm|train|max_grad_norm", INF, "llm.train.max_grad_norm = inf: must be a finite number"),
    ("non-finite", "families|AEN|grid|l1_coefficient", [NAN], "families.AEN.grid.l1_coefficient[0] = nan: must be a finite"),
    ("non-finite", "arch_defaults|aen|beta", NAN, "arch_defaults.aen.beta = nan: must be a finite number"),
    ("non-finite", "variants|L1-resample|compare|l0_tolerance", NAN,
     "variants.L1-resample.compare.l0_tolerance = nan: must be a finite"),
    ("non-finite", "synthsae|spec|correlation_scale", -INF, "synthsae.spec.correlation_scale = -inf: must be a finite"),
    # integer: JSON schema's `integer` accepts 8.0
    ("integer", "synthetic|n", 16.0, "synthetic.n = 16.0: must be an integer, not a float — write 16"),
    ("integer", "synthetic|train|steps", 300.0, "synthetic.train.steps = 300.0: must be an integer, not a float — write 300"),
    ("integer", "synthetic|train|seeds", [0.0], "synthetic.train.seeds[0] = 0.0: must be an integer"),
    ("integer", "llm|width", 1152.0, "llm.width = 1152.0: must be an integer, not a float — write 1152"),
    ("integer", "llm|harvest|context_size", 64.0, "llm.harvest.context_size = 64.0: must be an integer"),
    ("integer", "synthsae|train|batch_size", 64.0, "synthsae.train.batch_size = 64.0: must be an integer"),
    ("integer", "families|TopK|grid|k", [1, 2.0],
     "families.TopK.grid.k[1] = 2.0: must be an integer (field k of architecture 'topk') — write 2"),
    ("integer", "arch_defaults|aen|warmup_steps", 60.0,
     "arch_defaults.aen.warmup_steps = 60.0: must be an integer (field warmup_steps of architecture 'aen') — write 60"),
    ("integer", "synthsae|spec|num_features", 128.0, "synthsae.spec.num_features = 128.0: must be an integer"),
    # names: every place hyperparameters are written
    ("names", "families|L1|fixed|l2_coefficent", 0.0,
     "families.L1.fixed.l2_coefficent: 'l2_coefficent' is not a hyperparameter of architecture 'aen' — did you mean "
     "'l2_coefficient'?"),
    ("names", "families|L1|grid|l1_coef", [0.1], "families.L1.grid.l1_coef: 'l1_coef' is not a hyperparameter"),
    ("names", "arch_defaults|aen|betta", 0.9, "arch_defaults.aen.betta: 'betta' is not a hyperparameter of architecture 'aen' — did you mean 'beta'?"),
    ("names", "llm|families|L1|fixed|adaptiv", False, "llm.families.L1.fixed.adaptiv: 'adaptiv' is not a hyperparameter"),
    ("names", "llm|arch_defaults|aen|w_mx", 5.0, "llm.arch_defaults.aen.w_mx: 'w_mx' is not a hyperparameter"),
    ("names", "llm|families|TopK|fixed|aux_los", 0.0, "llm.families.TopK.fixed.aux_los: 'aux_los' is not a hyperparameter of architecture 'topk'"),
    ("names", "ablations|warmup|arms|T_w=0|warmup_step", 0,
     "ablations.warmup.arms.T_w=0.warmup_step: 'warmup_step' is not a hyperparameter of architecture 'aen' — did you mean 'warmup_steps'?"),
    ("names", "ablations|warmup|fixed", {"gama": 1.0}, "ablations.warmup.fixed.gama: 'gama' is not a hyperparameter"),
    ("names", "variants|L1-resample|fixed|resample_evry", 60,
     "variants.L1-resample.fixed.resample_evry: 'resample_evry' is not a hyperparameter of architecture 'l1_resample' "
     "— did you mean 'resample_every'?"),  # read from the plugin's config dataclass with ast
    ("names", "variants|L1-resample|grid|l1_coeff", [1.0], "variants.L1-resample.grid.l1_coeff: 'l1_coeff' is not"),
    ("names", "synthsae|arch_defaults|aen|ramp_step", 5, "synthsae.arch_defaults.aen.ramp_step: 'ramp_step' is not"),
    ("names", "synthsae|spec|num_feature", 64, "synthsae.spec.num_feature: unknown spec key — did you mean 'num_features'?"),
    ("names", "families|AEN|fixed|d_in", 16, "families.AEN.fixed.d_in: 'd_in' is not a hyperparameter of architecture 'aen' — aenbench sets it"),
    ("names", "families|TopK|grid|aux_loss_coefficient", [0.0, 1.0],
     "families.TopK: 'aux_loss_coefficient' is set in both fixed and grid (the grid value silently wins)"),
    # kinds of hyperparameter values
    ("names", "families|L1|grid|l1_coefficient", ["1e-3"],
     "families.L1.grid.l1_coefficient[0] = '1e-3': must be a number (field l1_coefficient of architecture 'aen') — "
     "YAML read '1e-3' as a string"),
    ("names", "families|L1|grid|l1_coefficient", [True], "families.L1.grid.l1_coefficient[0] = True: must be a number"),
    ("names", "families|TopK|fixed|aux_loss_coefficient", None, "families.TopK.fixed.aux_loss_coefficient = None: must be a number"),
    ("names", "families|Gated|fixed", {"normalize_activations": "unit"},
     "families.Gated.fixed.normalize_activations = 'unit': must be one of ['none', 'expected_average_only_in'"),
    ("names", "synthsae|spec|hierarchy_compensate_probabilities", "yes",
     "synthsae.spec.hierarchy_compensate_probabilities = 'yes': must be true or false"),
    # architecture names (an unknown one used to delete the family's previous results mid-DAG)
    ("architecture", "families|TopK|architecture", "topkk",
     "families.TopK.architecture = 'topkk': not a registered SAE architecture — did you mean 'topk'?"),
    ("architecture", "llm|families|TopK|architecture", "top_k", "llm.families.TopK.architecture = 'top_k': not a registered"),
    ("architecture", "variants|Plain", {"architecture": "nope", "grid": {"l1_coefficient": [1.0]}},
     "variants.Plain.architecture = 'nope': not a registered SAE architecture"),
    ("architecture", "variants|L1-resample|architecture", "l1_resampl",
     "variants.L1-resample.architecture = 'l1_resampl': examples/l1_resample.py registers only 'l1_resample'"),
    ("architecture", "arch_defaults|aem", {"beta": 0.9},
     "arch_defaults.aem: not a registered SAE architecture, so these defaults would never be used — did you mean 'aen'?"),
    ("architecture", "variants|L1-resample|plugin", "examples/nope.py",
     "variants.L1-resample.plugin = 'examples/nope.py': no such file"),
    # duplicates
    ("duplicates", "families|L1|grid|l1_coefficient", [0.08, 0.08],
     "families.L1.grid.l1_coefficient = [0.08, 0.08]: items must be unique (0.08 is listed more than once: remove the repeat)"),
    ("duplicates", "families|TopK|grid|k", [1, 1.0], "families.TopK.grid.k = [1, 1.0]: items must be unique"),
    ("duplicates", "variants|L1-resample|grid|l1_coefficient", [1.28, 1.28], "variants.L1-resample.grid.l1_coefficient = [1.28, 1.28]: items must be unique"),
    ("duplicates", "llm|families|L1|grid|l1_coefficient", [0.005, 0.005], "llm.families.L1.grid.l1_coefficient = [0.005, 0.005]: items must be unique"),
    # the LLM hook's layer, for the registered models
    ("layer", "llm|hook", "blocks.30.hook_resid_post",
     "llm.hook = 'blocks.30.hook_resid_post': smollm2-135m has 30 layers (blocks.0 … blocks.29) — pick a layer ≤ 29"),
    ("layer", "llm|hook", "blocks.99.hook_resid_pre", "llm.hook = 'blocks.99.hook_resid_pre': smollm2-135m has 30 layers"),
    # seeds beyond int64 (the schema already refuses negative ones)
    ("seed", "synthetic|train|seeds", [2**63], "synthetic.train.seeds[0] = 9223372036854775808: must be ≤ 9223372036854775807"),
    ("seed", "synthetic|dictionary_seed", 2**64, "synthetic.dictionary_seed = 18446744073709551616: must be ≤"),
    ("seed", "synthetic|spread|seeds", [1, 2**63], "synthetic.spread.seeds[1] = 9223372036854775808: must be ≤"),
    ("seed", "llm|harvest|seed", 2**63, "llm.harvest.seed = 9223372036854775808: must be ≤"),
    ("seed", "llm|train|seeds", [-1], "llm.train.seeds[0] = -1: must be ≥ 0"),
    ("seed", "synthsae|spec|seed", 2**63, "synthsae.spec.seed = 9223372036854775808: must be within 0 … 9223372036854775807"),
    # the grid-size guard
    ("grid size", "families|TopK|grid", BIG_GRID,
     "above the guard of 20,000 SAEs — shrink the grids (families.*.grid, seeds, rhos), or set `allow_large_grid: true`"),
    ("grid size", "synthetic|train|seeds", list(range(1000)), "grid size: this config trains 32,014 SAEs (synthetic 32,008, synthsae 3, llm 3)"),
    # other
    ("other", "allow_large_grid", "yes", "allow_large_grid = 'yes': must be of type boolean"),
    ("other", "families|L1|grid|l1_coefficient", [], "families.L1.grid.l1_coefficient = []: needs at least 1 item"),
    ("other", "synthetic|train|steps", True, "synthetic.train.steps = True: must be of type integer"),
]


@pytest.mark.parametrize("kind, field, value, message", BAD, ids=[f"{k}:{f}={v!r}"[:80] for k, f, v, _ in BAD])
def test_bad_input_is_refused_naming_field_value_and_fix(kind, field, value, message):
    found = problems(with_value(SMOKE, field, value))
    assert any(message in p for p in found), found
    assert all("\n" not in p for p in found)  # one line each


MALFORMED = [("families", [1, 2], "families = [1, 2]: must be of type object"),
             ("families|L1|fixed", 3, "families.L1.fixed = 3: must be of type object"),
             ("llm|families|L1", None, "llm.families.L1 = None: must be of type object"),
             ("ablations|warmup|arms", [1], "ablations.warmup.arms = [1]: must be of type object"),
             ("synthsae|spec", [1], "synthsae.spec = [1]: must be of type object"),
             ("variants|L1-resample|plugin", 5, "variants.L1-resample.plugin = 5: must be of type string"),
             ("llm|train", None, "llm.train = None: must be of type object")]


@pytest.mark.parametrize("field, value, message", MALFORMED, ids=[f for f, _, _ in MALFORMED])
def test_malformed_shapes_get_the_schema_error_not_a_crash(field, value, message):
    assert message in problems(with_value(SMOKE, field, value))


def test_the_smoke_config_and_the_plugin_variant_pass_unchanged():
    notes = []
    assert problems(SMOKE, notes) == [] and notes == []


def test_every_class_of_error_is_reported_at_once():
    cfg = copy.deepcopy(SMOKE)
    cfg["synthetic"]["rhos"] = [0.0, NAN]                        # non-finite (schema stage)
    cfg["synthetic"]["n"] = 16.0                                 # integer (schema stage)
    cfg["synthetic"]["train"]["seeds"] = [2**63]                 # seed (schema stage)
    cfg["families"]["L1"]["grid"]["l1_coefficient"] = [0.1, 0.1]  # duplicate (schema stage)
    cfg["families"]["TopK"]["architecture"] = "topkk"            # architecture
    cfg["families"]["AEN"]["fixed"]["l2_coefficent"] = 0.0       # name
    cfg["llm"]["hook"] = "blocks.30.hook_resid_post"             # layer
    cfg["families"]["EN"]["grid"] = BIG_GRID | {"l1_coefficient": [0.1]}  # grid size (+ 6 unknown names)
    found = problems(cfg)
    for text in ["synthetic.rhos[1] = nan", "synthetic.n = 16.0", "synthetic.train.seeds[0] = 9223372036854775808",
                 "families.L1.grid.l1_coefficient = [0.1, 0.1]", "families.TopK.architecture = 'topkk'",
                 "families.AEN.fixed.l2_coefficent", "llm.hook = 'blocks.30", "allow_large_grid: true",
                 "families.EN.grid.p0"]:
        assert sum(text in p for p in found) == 1, (text, found)


def test_nan_in_a_hyperparameter_is_reported_once():
    found = problems(with_value(SMOKE, "families|AEN|grid|beta", [NAN]))
    assert len([p for p in found if p.startswith("families.AEN.grid.beta")]) == 1, found


def test_yaml_key_given_twice_is_refused(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("families:\n  L1:\n    architecture: aen\n  L1:\n    architecture: topk\ndevice: cpu\n")
    assert cc.duplicate_key_problems(path) == [
        f"families.L1: defined twice in {path} (lines 2 and 4; YAML keeps only the last) — remove or rename one"]
    path.write_text(yaml.safe_dump(SMOKE))
    assert cc.duplicate_key_problems(path) == []


# --- the grid-size guard: counts of the shipped configs, the threshold, the opt-in

def test_grid_counts_of_shipped_configs_pass_the_guard():
    counts = {}
    for path in sorted((REPO / "configs").glob("*.yaml")):
        sizes = cc.grid_size(config(path.stem), TABLES)
        counts[path.stem] = sum(n for n, _ in sizes.values())
        assert cc.grid_size_problems(config(path.stem), TABLES) == [], path.stem
    assert counts["paper_grid"] == 1003 and counts["smoke"] == 46
    # the main job's cuts (configs/default.yaml header): 3 ρ × (L1 4 + EN 9 + AL 20 + AEN 36 (half fractions)
    # + TopK-paper 3 + TopK-AuxK 3) = 225, spread 3 ρ × 5 families × 3 = 45, ablations 18 on ρ 0.5, variant 4 on
    # one ρ; synthsae L1 4 + AEN 36 + TopK-AuxK 3 = 43; llm 10
    assert counts["default"] == 225 + 45 + 18 + 4 + 43 + 10
    assert max(counts.values()) < cc.GRID_SAE_LIMIT
    # smoke: 10 families' grids (2+1+1+1+2+2+1+1+1+1 = 13) on 2 ρ, 2 spread replicates × 2 families × 2 ρ,
    # ablation 2 arms × 1 ρ, variant 2 × 2 ρ; synthsae AEN 1 + TopK 2; llm 3
    assert cc.grid_size(SMOKE, TABLES)["synthetic"][0] == 26 + 8 + 2 + 4


def test_grid_guard_threshold_and_opt_in():
    cfg = copy.deepcopy(SMOKE)
    total = sum(n for n, _ in cc.grid_size(cfg, TABLES).values())
    assert cc.grid_size_problems(cfg, TABLES, limit=total) == []
    assert cc.grid_size_problems(cfg, TABLES, limit=total - 1)
    big = with_value(cfg, "families|TopK|grid", {"k": [1, 2]} | {"aux_loss_coefficient": [0.0]})
    big["synthetic"]["train"]["seeds"] = list(range(10_000))
    assert cc.grid_size_problems(big, TABLES)
    big["allow_large_grid"] = True
    assert cc.grid_size_problems(big, TABLES) == []
    assert cc.schema_errors(big, SCHEMA) == []  # the opt-in is a schema key
    seconds = sum(s for _, s in cc.grid_size(SMOKE, TABLES).values())
    # synthetic smoke SAE: 300 steps × 64 × 16 × 64 × 6 FLOP / 25 GFLOP/s
    assert cc.grid_size(SMOKE, TABLES)["synthetic"][1] == pytest.approx(40 * 300 * 64 * 16 * 64 * 6 / 25e9)
    assert 0 < seconds < 60


# --- a variant's plugin: its architectures and config fields read with ast

def test_plugin_fields_are_read_from_its_config_dataclass():
    facts = cc.plugin_facts((REPO / "examples" / "l1_resample.py").read_text(), TABLES["CONFIG_CLASSES"])
    fields = facts.registrations["l1_resample"]
    assert facts.complete and set(facts.registrations) == {"l1_resample"}
    assert fields["resample_every"] == {"type": "int"} and fields["resample_until"] == {"type": "int", "null": True}
    assert set(TABLES["ARCH_FIELDS"]["standard"]["fields"]) < set(fields)  # its base class's fields too


def test_unreadable_plugins_are_noted_or_refused(tmp_path):
    computed = tmp_path / "computed.py"
    computed.write_text("from sae_lens import register_sae_training_class as r\nNAME = 'x' + 'y'\n"
                        "r(NAME, object, object)\n")
    unknown_base = tmp_path / "base.py"
    unknown_base.write_text("from mylib import Base\nfrom sae_lens import register_sae_training_class\n"
                            "class C(Base):\n    a: int = 1\nregister_sae_training_class('mine', object, C)\n")
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    for path, arch, expect_problem, expect_note in [
        (computed, "xy", None, "could not tell from"),
        (unknown_base, "mine", None, "could not be read from"),
        (broken, "mine", "not a Python file that parses (line 1)", None),
    ]:
        cfg = copy.deepcopy(SMOKE)
        cfg["variants"]["L1-resample"].update(plugin=str(path), architecture=arch, fixed={"anything": 1})
        notes = []
        found = problems(cfg, notes)
        if expect_problem:
            assert any(expect_problem in p for p in found), found
        else:
            assert found == [] and any(expect_note in n for n in notes), (found, notes)


@pytest.mark.parametrize("text, kind", [
    ("int", {"type": "int"}), ("<class 'float'>", {"type": "float"}), ("float | None", {"type": "float", "null": True}),
    ("Optional[int]", {"type": "int", "null": True}), ("typing.Literal['a', 'b']", {"enum": ["a", "b"]}),
    ("list[int]", {"type": "list"}), ("<class 'sae_lens.saes.sae.SAEMetadata'>", {"type": "any"}),
    ("Union[int, str]", {"type": "any"}),
])
def test_annotation_kinds(text, kind):
    assert cc.annotation_kind(text) == kind


def test_arch_fields_table_is_up_to_date():
    """The generated table equals what the generator writes from the installed sae-lens and
    aenbench now (rerun scripts/gen_arch_fields.py when this fails)."""
    gen = _load("_gen_arch_fields", REPO / "scripts" / "gen_arch_fields.py")
    assert (REPO / "src" / "aenbench" / "arch_fields.py").read_text() == gen.render()
    from aenbench.llm.models import MODELS

    assert TABLES["MODELS"]["smollm2-135m"] == {"n_layers": 30, "d_model": 576} == {
        "n_layers": MODELS["smollm2-135m"].n_layers, "d_model": MODELS["smollm2-135m"].d_model}
    assert {"aen", "topk_paper", "topk", "gated", "jumprelu", "batchtopk", "standard"} <= set(TABLES["ARCH_FIELDS"])


# --- two real Snakemake processes

def _snakemake(workdir, cfg_text, *args):
    path = workdir / "bad.yaml"
    path.write_text(cfg_text)
    cmd = [sys.executable, "-m", "snakemake", *args, "--cores", "1", "-s", str(REPO / "Snakefile"),
           "-d", str(workdir), "--configfile", str(path)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONHASHSEED": "0"})
    return proc, time.perf_counter() - start


def test_a_real_run_stops_before_any_job_and_keeps_previous_results(tmp_path):
    """Not a dry run: Snakemake would remove results/…/trained/TopK before rerunning its job; the
    bad config must stop it at DAG start, with every error at once."""
    trained = tmp_path / "results" / "synthetic" / "rho0.0" / "trained" / "TopK"
    (trained / "k~1_seed~0").mkdir(parents=True)
    (trained / "k~1_seed~0" / "training.json").write_text("{}")
    teacher = tmp_path / "results" / "synthetic" / "rho0.0" / "teacher"
    teacher.mkdir(parents=True)
    for name in ("dictionary.safetensors", "diagnostics.json"):
        (teacher / name).write_text("")
    cfg = copy.deepcopy(SMOKE)
    cfg["families"]["TopK"]["architecture"] = "topkk"
    cfg["families"]["AEN"]["fixed"]["l2_coefficent"] = 0.002
    cfg["synthetic"]["train"]["lr"] = INF
    cfg["synthetic"]["n"] = 16.0
    cfg["synthetic"]["train"]["seeds"] = [2**63]
    cfg["llm"]["hook"] = "blocks.30.hook_resid_post"
    text = yaml.safe_dump(cfg) + "device: cpu\n"  # `device` a second time
    proc, _ = _snakemake(tmp_path, text, "results/synthetic/rho0.0/trained/TopK")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for message in ["families.TopK.architecture = 'topkk': not a registered SAE architecture",
                    "families.AEN.fixed.l2_coefficent: 'l2_coefficent' is not a hyperparameter",
                    "synthetic.train.lr = inf: must be a finite number",
                    "synthetic.n = 16.0: must be an integer, not a float — write 16",
                    "synthetic.train.seeds[0] = 9223372036854775808: must be ≤ 9223372036854775807",
                    "llm.hook = 'blocks.30.hook_resid_post': smollm2-135m has 30 layers",
                    "device: defined twice in"]:
        assert message in out, out[-4000:]
    assert "Job stats" not in out and "localrule" not in out and "rule synthetic" not in out
    assert (trained / "k~1_seed~0" / "training.json").is_file()
    assert sorted(p.name for p in teacher.iterdir()) == ["diagnostics.json", "dictionary.safetensors"]
    assert not (tmp_path / "logs").exists()


def test_a_huge_grid_is_refused_fast_with_the_opt_in_named(tmp_path):
    cfg = copy.deepcopy(SMOKE)
    cfg["families"]["AEN"]["grid"] = {"l1_coefficient": [0.001 * i for i in range(1, 11)],
                                      "gamma": [0.1 * i for i in range(1, 11)],
                                      "beta": [0.5 + 0.01 * i for i in range(10)],
                                      "p": [0.01 * i for i in range(1, 11)],
                                      "w_max": [10.0 + i for i in range(10)],
                                      "ramp_steps": list(range(10))}  # 10⁶ SAEs per ρ
    proc, seconds = _snakemake(tmp_path, yaml.safe_dump(cfg), "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "grid size: this config trains 3,000,043 SAEs" in out, out[-3000:]
    assert "set `allow_large_grid: true`" in out and "Job stats" not in out
    assert seconds < 20  # the same grid planned for ~27 s with no warning before the guard


def test_streamed_train_split_with_train_statistics_is_refused():
    cfg = with_value(with_value(SMOKE, "llm|harvest|train_storage", "stream"), "llm|harvest|stats_split", "train")
    assert any(p.startswith("llm.harvest.stats_split = 'train': with train_storage: stream") for p in problems(cfg))
    assert not any("stats_split" in p for p in problems(with_value(SMOKE, "llm|harvest|train_storage", "stream")))
    assert any("llm.harvest.train_storage = 'tape'" in p for p in problems(with_value(SMOKE, "llm|harvest|train_storage",
                                                                                       "tape")))


def test_llm_disk_estimate_by_hand():
    """smollm2 (d = 576), 1,000 contexts of 101 in float16, width 1,000, 2 SAEs × 1 seed."""
    llm = {"model": "smollm2-135m", "width": 1000,
           "harvest": {"context_size": 101, "train_contexts": 1000, "eval_contexts": 10, "dtype": "float16"},
           "train": {"seeds": [0], "buffer_tokens": 10_000, "batch_size": 100, "stack_size": 32},
           "families": {"A": {"grid": {"k": [1, 2]}}}}
    disk = cc.llm_disk_estimate({"llm": llm}, TABLES)
    per_sae = (2 * 576 * 1000 + 576 + 1000) * 4  # 4,614,304 bytes
    acts = 1000 * 100 * 576 * 2  # 115.2 MB
    assert f"train activations {acts / 1e6:.1f} MB" in disk and f"2 trained SAEs {2 * per_sae / 1e6:.1f} MB" in disk
    llm["harvest"]["train_storage"] = "stream"
    stream = cc.llm_disk_estimate({"llm": llm}, TABLES)
    ckpt = (10_000 + 4096) * 576 * 4 + 3 * per_sae * 2  # 60.2 MB
    assert f"train token ids {1000 * 101 * 4 / 1e3:.1f} kB" in stream and f"one lockstep checkpoint {ckpt / 1e6:.1f} MB" in stream
    assert f"on disk they would take {acts / 1e6:.1f} MB" in stream
    assert f"≈ {(ckpt + 4 * 100 * 1000 * 4 * 2) / 1e6:.1f} MB of device memory" in stream
