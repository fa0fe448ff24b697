# Config validation and the helpers every stage uses.
import importlib.util
import re
import sys
from pathlib import Path

import yaml

from snakemake.exceptions import WorkflowError
from snakemake.utils import Paramspace, validate


def _light_module(name):
    """Load src/aenbench/<name>.py, a module that imports no other aenbench module, straight from
    the checkout (whichever aenbench is installed), so that planning the DAG stays fast."""
    path = Path(workflow.basedir) / "src" / "aenbench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_aenbench_light_{name}", path)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = loaded  # dataclasses look their module up there
    spec.loader.exec_module(loaded)
    return loaded


_sweeps = _light_module("sweeps")
family_table = _sweeps.family_table
# what each stage reads of a track's `train` section (aenbench.sweeps.EVAL_KEYS): training does
# not read the evaluation keys, evaluation reads only those, so changing one stage's settings
# reruns that stage alone
train_settings = _sweeps.train_settings
eval_settings = _sweeps.eval_settings
_configcheck = _light_module("configcheck")
_SCHEMA = str(Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")

# Report every violation at once, each naming the field, its value and what is allowed (keys
# given twice in a config file, the schema, NaN / inf, 8.0 for an integer); then let Snakemake's
# own validation fill in the schema defaults.
_config_files = list(dict.fromkeys([*(workflow.overwrite_configfiles or []), *workflow.configfiles]))
_schema_problems = [p for f in _config_files for p in _configcheck.duplicate_key_problems(f)]
_schema_problems += _configcheck.schema_errors(config, _configcheck.load_schema(_SCHEMA))
if _schema_problems:
    _schema_problems += _configcheck.early_problems(
        config, _configcheck.load_tables(), workflow.basedir, already=_schema_problems
    )
    raise WorkflowError("invalid config:\n  - " + "\n  - ".join(_schema_problems))
validate(config, schema=_SCHEMA)


def _check_config_consistency(cfg):
    """What the schema cannot express (aenbench.configcheck.consistency_problems: architecture and
    hyperparameter names and kinds against the generated src/aenbench/arch_fields.py, the LLM
    hook's layer, cross-field constraints, hyperparameter ranges, the grid-size guard); each error
    names the field, the bad value and the fix. Runs before any rule is defined, so a bad config
    stops here, before a job runs or Snakemake removes any output."""
    if "synthetic" not in cfg and "llm" not in cfg:
        raise WorkflowError("invalid config: it has neither a `synthetic` nor an `llm` section; add one")
    cfg.setdefault("families", {})
    tables = _configcheck.load_tables()
    sizes = _configcheck.grid_size(cfg, tables)
    print(f"aenbench: {_configcheck.grid_summary(sizes)}", file=sys.stderr)
    disk = _configcheck.llm_disk_estimate(cfg, tables)
    if disk:
        print(f"aenbench: {disk}", file=sys.stderr)
    notes = []
    problems = _configcheck.consistency_problems(cfg, tables, workflow.basedir, notes)
    for note in notes:
        print(f"aenbench: note: {note}", file=sys.stderr)
    if problems:
        raise WorkflowError("invalid config:\n  - " + "\n  - ".join(problems))


_check_config_consistency(config)

# the synthetic track is optional (the paper's LLM configs have only `llm`)
config.setdefault("families", {})
SYN = config.get("synthetic", {})
SYN_DATASETS = {f"rho{rho}": rho for rho in SYN.get("rhos", [])}
SYN_FAMILIES = SYN.get("families", [])
# (dataset, family) pairs to train: every family on every ρ unless synthetic.pairs restricts a ρ
SYN_PAIRS = [
    (dataset, family)
    for dataset in SYN_DATASETS
    for family in (SYN.get("pairs") or {}).get(dataset, SYN_FAMILIES)
]
# the seed / teacher spread (synthetic.spread): (dataset, family) pairs whose selected
# configuration is trained again; none when it lists no seed and no dictionary seed
SPREAD = SYN.get("spread") or {}
SPREAD_PAIRS = [
    (dataset, family)
    for dataset, family in SYN_PAIRS
    if (SPREAD.get("seeds") or SPREAD.get("dictionary_seeds")) and family in SPREAD.get("families", SYN_FAMILIES)
]
SPREAD_DATASETS = list(dict.fromkeys(d for d, _ in SPREAD_PAIRS))


wildcard_constraints:
    dataset="|".join(re.escape(d) for d in SYN_DATASETS),
    family="|".join(re.escape(f) for f in config["families"]),


def family_paramspace(family):
    """The sweep of one family as a Paramspace: one row per SAE, named by its values."""
    table = family_table(config["families"][family], SYN["train"]["seeds"])
    return Paramspace(table, filename_params="*")


def family_runs(family):
    """(run folder name, swept values) for every SAE of ``family``."""
    space = family_paramspace(family)
    return list(zip(space.instance_patterns, space.dataframe.to_dict("records")))


def arch_defaults_for(family, defaults=None):
    """The architecture defaults one family's runs read: its own architecture's only."""
    defaults = (config.get("arch_defaults") or {}) if defaults is None else defaults
    arch = family["architecture"]
    return {arch: defaults[arch]} if arch in defaults else {}


def teacher_spec(dataset):
    """What training and evaluation read of a spiked teacher (not its diagnostics settings)."""
    spec = dict(synthetic_spec(dataset))
    spec.pop("n_diagnostic_supports")
    return spec


def synthetic_spec(dataset):
    return {
        "dataset": dataset,
        "n": SYN["n"],
        "m": SYN["m"],
        "k": SYN["k"],
        "rho": SYN_DATASETS[dataset],
        "dictionary_seed": SYN["dictionary_seed"],
        "magnitude": SYN["magnitude"],
        "n_diagnostic_supports": SYN["n_diagnostic_supports"],
    }


# --- LLM track (workflow/rules/llm.smk); RES is defined there


def llm_family_runs(family):
    """(run folder name, swept values) for every SAE of an LLM family."""
    space = Paramspace(
        family_table(config["llm"]["families"][family], config["llm"]["train"]["seeds"]), filename_params="*"
    )
    return list(zip(space.instance_patterns, space.dataframe.to_dict("records")))


def llm_model_inputs(wildcards):
    """The offline default needs its re-saved HF folder; hub models are loaded by name."""
    if config["llm"]["model"] == "smollm2-135m":
        return [f"{RES}/models/smollm2-135m/info.json"]
    return []


def llm_corpus_inputs(wildcards):
    return [f"{RES}/corpus/manifest.json"] if config["llm"].get("corpus", "packaged") == "packaged" else []


# --- ablations (workflow/rules/ablations.smk)


def ablation_datasets(name):
    """The datasets an ablation runs on (default: every synthetic ρ)."""
    return list((config.get("ablations") or {})[name].get("datasets") or SYN_DATASETS)


def ablation_training(name):
    """What training an ablation reads: its base family's architecture and fixed values, its own
    fixed values and arms (not its description or datasets)."""
    ablation = (config.get("ablations") or {})[name]
    base = config["families"][ablation["base"]]
    return {
        "ablation": {k: ablation[k] for k in ("base", "fixed", "arms") if k in ablation},
        "base": {k: base[k] for k in ("architecture", "fixed") if k in base},
    }


def ablation_run_dirs(name):
    return [f"results/synthetic/{d}/ablations/{name}" for d in ablation_datasets(name)]


def ablation_artefacts(name):
    return [f"figures/ablations/{name}.{ext}" for ext in ("csv", "md", "png")]


# --- SynthSAEBench-style track (workflow/rules/synthsae.smk)


def synthsae_family_runs(family):
    """(run folder name, swept values) for every SAE of a family on the synthsae teacher."""
    space = Paramspace(
        family_table(config["families"][family], config["synthsae"]["train"]["seeds"]), filename_params="*"
    )
    return list(zip(space.instance_patterns, space.dataframe.to_dict("records")))


def synthsae_arch_defaults():
    """config arch_defaults with synthsae.arch_defaults laid over them, per architecture."""
    merged = {a: dict(v) for a, v in (config.get("arch_defaults") or {}).items()}
    for arch, values in (config["synthsae"].get("arch_defaults") or {}).items():
        merged.setdefault(arch, {}).update(values)
    return merged


def replication_scale():
    """n, m, k of the paper-scale replication's teacher (configs/replication_synthetic.yaml)."""
    with open(Path(workflow.basedir) / "configs" / "replication_synthetic.yaml") as f:
        syn = yaml.safe_load(f)["synthetic"]
    return {key: syn[key] for key in ("n", "m", "k")}
