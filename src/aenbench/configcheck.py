"""Config validation with errors a researcher can act on.

Every schema violation is reported at once, each as ``<field path>: <bad value> — <what is
allowed>``, before any compute is spent. Imports nothing heavy (the Snakefile loads this module
while planning the DAG).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml


def load_schema(path: str | Path) -> dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f)


def _field(path: Any) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in path]
    return ".".join(parts).replace(".[", "[") or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    v = error.validator
    value = error.validator_value
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        where = _field(error.absolute_path)
        hint = f"allowed keys: {', '.join(allowed)}" if allowed else "no other keys are allowed here"
        return f"{where}: unknown key(s) {', '.join(map(repr, extra))} — {hint}"
    field = _field(error.absolute_path)
    bad = repr(error.instance)
    allowed = {
        "type": f"must be of type {value}",
        "minimum": f"must be ≥ {value}",
        "maximum": f"must be ≤ {value}",
        "exclusiveMinimum": f"must be > {value}",
        "exclusiveMaximum": f"must be < {value}",
        "enum": f"must be one of {value}",
        "required": f"missing required key(s); required: {value}",
        "minItems": f"needs at least {value} item(s)",
        "maxItems": f"needs at most {value} item(s)",
        "uniqueItems": "items must be unique",
        "pattern": f"must match {value}",
        "minProperties": f"needs at least {value} entr(y/ies)",
    }.get(v, error.message)
    if v == "required":
        return f"{field}: {error.message}"
    return f"{field} = {bad}: {allowed}"


def schema_errors(config: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """All violations of ``schema`` in ``config``, as readable one-liners."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    out = []
    for err in errors:
        # for a oneOf/anyOf/$ref the most specific sub-error is the useful one
        best = jsonschema.exceptions.best_match([err]) if err.context else err
        out.append(_describe(best))
    return out


# --- what the schema cannot express: hyperparameter ranges inside families' fixed / grid values,
# cross-field constraints. Checked at DAG start without importing sae-lens.

def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# name -> (test, what is allowed); per architecture, then for every architecture ("*")
HYPERPARAMETER_RANGES: dict[str, dict[str, tuple[Any, str]]] = {
    "aen": {
        "l1_coefficient": (lambda v: _number(v) and v >= 0, "a number ≥ 0 (λ₁)"),
        "l2_coefficient": (lambda v: _number(v) and v >= 0, "a number ≥ 0 (λ₂)"),
        "beta": (lambda v: _number(v) and 0 < v < 1, "a number with 0 < β < 1 (EMA decay)"),
        "p": (lambda v: _number(v) and 0 < v <= 1, "a number with 0 < p ≤ 1 (target activity)"),
        "gamma": (lambda v: _number(v) and v >= 0, "a number ≥ 0 (γ)"),
        "w_min": (lambda v: _number(v) and v > 0, "a number > 0"),
        "w_max": (lambda v: _number(v) and v > 0, "a number > 0"),
        "warmup_steps": (lambda v: _integer(v) and v >= 0, "an integer ≥ 0"),
        "ramp_steps": (lambda v: _integer(v) and v >= 0, "an integer ≥ 0"),
        "adaptive": (lambda v: isinstance(v, bool), "true or false"),
        "decoder_norm": (lambda v: v in ("project", "weight_penalty"), "one of ['project', 'weight_penalty']"),
        "loss_convention": (lambda v: v in ("authors", "sae_lens"), "one of ['authors', 'sae_lens']"),
    },
    "*": {
        "l1_coefficient": (lambda v: _number(v) and v >= 0, "a number ≥ 0"),
        "aux_loss_coefficient": (lambda v: _number(v) and v >= 0, "a number ≥ 0"),
        "l0_coefficient": (lambda v: _number(v) and v >= 0, "a number ≥ 0"),
        "k": (lambda v: _integer(v) and v >= 1, "an integer ≥ 1"),
    },
}


def _candidates(arch_defaults: dict[str, Any], family: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    """hyperparameter -> [(where it is set, value), ...] over arch_defaults, fixed and grid;
    the later source wins, as in ``sweeps.run_hyperparameters``."""
    out: dict[str, list[tuple[str, Any]]] = {}
    for name, value in (arch_defaults.get(family.get("architecture"), {}) or {}).items():
        out[name] = [("arch_defaults", value)]
    for name, value in (family.get("fixed") or {}).items():
        out[name] = [("fixed", value)]
    for name, values in (family.get("grid") or {}).items():
        out[name] = [("grid", v) for v in values]
    return out


def hyperparameter_problems(where: str, family: dict[str, Any], arch_defaults: dict[str, Any],
                            width: int | None = None, width_field: str = "",
                            defaults_field: str = "arch_defaults") -> list[str]:
    """Range errors of one family's (or variant's) hyperparameters, each naming the field."""
    arch = family.get("architecture")
    if not isinstance(arch, str):
        return []
    table = {**HYPERPARAMETER_RANGES["*"], **HYPERPARAMETER_RANGES.get(arch, {})}
    cands = _candidates(arch_defaults, family)
    problems = []

    def field(name: str, src: str) -> str:
        return f"{defaults_field}.{arch}.{name}" if src == "arch_defaults" else f"{where}.{src}.{name}"

    for name, values in cands.items():
        if name in table:
            ok, allowed = table[name]
            for src, v in values:
                if not ok(v):
                    problems.append(f"{field(name, src)} = {v!r}: must be {allowed}")
    if arch == "aen" and "w_min" in cands and "w_max" in cands:
        lo = [(s, v) for s, v in cands["w_min"] if _number(v)]
        hi = [(s, v) for s, v in cands["w_max"] if _number(v)]
        if lo and hi and max(v for _, v in lo) > min(v for _, v in hi):
            (s_lo, v_lo), (s_hi, v_hi) = max(lo, key=lambda t: t[1]), min(hi, key=lambda t: t[1])
            problems.append(f"{field('w_min', s_lo)} = {v_lo!r} exceeds {field('w_max', s_hi)} = {v_hi!r}: "
                            "need w_min ≤ w_max")
    if width is not None and "k" in cands:
        for src, v in cands["k"]:
            if _integer(v) and v > width:
                problems.append(f"{field('k', src)} = {v!r}: must be ≤ {width_field} = {width} (k ≤ width)")
    return problems


def spread_problems(syn: dict[str, Any]) -> list[str]:
    """synthetic.spread against the grid it replicates: its seeds must be new seeds, its
    dictionary seeds new teachers, its families families of the track, and the grid one seed
    per configuration (the spread's replicates are named after the grid run's seed)."""
    spread = syn.get("spread") or {}
    problems = []
    grid_seeds = list(syn["train"].get("seeds", [0]))
    if spread.get("seeds") or spread.get("dictionary_seeds"):
        if len(grid_seeds) != 1:
            problems.append(f"synthetic.spread needs one grid seed, but synthetic.train.seeds = {grid_seeds}: "
                            "use one seed there and the others in synthetic.spread.seeds")
        clash = sorted(set(spread.get("seeds", [])) & set(grid_seeds))
        if clash:
            problems.append(f"synthetic.spread.seeds lists {clash}, already grid seeds (synthetic.train.seeds = "
                            f"{grid_seeds}): list other seeds")
        dseed = syn.get("dictionary_seed", 0)
        if dseed in spread.get("dictionary_seeds", []):
            problems.append(f"synthetic.spread.dictionary_seeds lists {dseed}, the grid's own teacher "
                            f"(synthetic.dictionary_seed = {dseed}): list other seeds")
    for name in spread.get("families") or []:
        if name not in syn["families"]:
            problems.append(f"synthetic.spread.families lists {name!r}, which is not in synthetic.families "
                            f"({', '.join(syn['families'])})")
    return problems


def consistency_problems(cfg: dict[str, Any]) -> list[str]:
    """Everything the schema cannot express, for a config that passed the schema."""
    problems: list[str] = []
    families = cfg.get("families", {}) or {}
    arch_defaults = cfg.get("arch_defaults", {}) or {}
    syn = cfg.get("synthetic")
    if syn is not None:
        for name in syn["families"]:
            if name not in families:
                problems.append(f"synthetic.families lists {name!r}, which is not defined under families "
                                f"(defined: {', '.join(families)})")
        datasets = [f"rho{r}" for r in syn["rhos"]]
        for dataset, names in (syn.get("pairs") or {}).items():
            if dataset not in datasets:
                problems.append(f"synthetic.pairs.{dataset}: not a dataset of synthetic.rhos "
                                f"(datasets: {', '.join(datasets)})")
            for name in names:
                if name not in syn["families"]:
                    problems.append(f"synthetic.pairs.{dataset} lists {name!r}, which is not in synthetic.families")
        train = syn["train"]
        problems += spread_problems(syn)
        if train.get("dead_window_steps", 1000) > train["steps"]:
            problems.append(f"synthetic.train.dead_window_steps = {train.get('dead_window_steps', 1000)} exceeds "
                            f"synthetic.train.steps = {train['steps']}: use a window ≤ steps")
        if syn["k"] > syn["m"]:
            problems.append(f"synthetic.k = {syn['k']} exceeds synthetic.m = {syn['m']}: need k ≤ m")
        lo, hi = syn.get("magnitude", [1.0, 3.0])
        if lo > hi:
            problems.append(f"synthetic.magnitude = {syn.get('magnitude')}: need low ≤ high")
        for name in syn["families"]:
            if name in families:
                problems += hyperparameter_problems(f"families.{name}", families[name], arch_defaults,
                                                    syn["m"], "synthetic.m")
        for name, abl in (cfg.get("ablations") or {}).items():
            if abl["base"] not in families:
                problems.append(f"ablations.{name}.base = {abl['base']!r}: not a family "
                                f"(defined: {', '.join(families)})")
                continue
            for dataset in abl.get("datasets") or []:
                if dataset not in datasets:
                    problems.append(f"ablations.{name}.datasets lists {dataset!r}; known datasets: {', '.join(datasets)}")
            base = families[abl["base"]]
            for arm, overrides in abl["arms"].items():
                merged = {"architecture": base.get("architecture"),
                          "fixed": {**(base.get("fixed") or {}), **(abl.get("fixed") or {}), **(overrides or {})}}
                problems += hyperparameter_problems(f"ablations.{name}.arms.{arm}", merged, arch_defaults,
                                                    syn["m"], "synthetic.m")
        for name, variant in (cfg.get("variants") or {}).items():
            problems += hyperparameter_problems(f"variants.{name}", variant, arch_defaults, syn["m"], "synthetic.m")
    ss = cfg.get("synthsae")
    if ss is not None:
        for name in ss["families"]:
            if name not in families:
                problems.append(f"synthsae.families lists {name!r}, which is not defined under families "
                                f"(defined: {', '.join(families)})")
            else:
                problems += hyperparameter_problems(f"families.{name}", families[name], arch_defaults,
                                                    ss["width"], "synthsae.width")
        if ss["train"].get("dead_window_steps", 1000) > ss["train"]["steps"]:
            problems.append(f"synthsae.train.dead_window_steps = {ss['train'].get('dead_window_steps', 1000)} exceeds "
                            f"synthsae.train.steps = {ss['train']['steps']}: use a window ≤ steps")
    llm = cfg.get("llm")
    if llm is not None:
        train = llm["train"]
        if train.get("dead_window_steps", 1000) > train["steps"]:
            problems.append(f"llm.train.dead_window_steps = {train.get('dead_window_steps', 1000)} exceeds "
                            f"llm.train.steps = {train['steps']}: use a window ≤ steps")
        if llm["eval"]["ce_contexts"] > llm["harvest"]["eval_contexts"]:
            problems.append(f"llm.eval.ce_contexts = {llm['eval']['ce_contexts']} exceeds llm.harvest.eval_contexts = "
                            f"{llm['harvest']['eval_contexts']}: need ce_contexts ≤ eval_contexts")
        for name, fam in llm["families"].items():
            problems += hyperparameter_problems(f"llm.families.{name}", fam, llm.get("arch_defaults", {}) or {},
                                                llm["width"], "llm.width", "llm.arch_defaults")
    return problems
