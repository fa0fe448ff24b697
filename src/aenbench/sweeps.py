"""Sweep tables: a family's grid × seeds as a pandas DataFrame, one row per SAE run.

The Snakefile wraps each table in a ``snakemake.utils.Paramspace`` whose instance patterns
(``l1_coefficient~0.005_seed~0``) name the run folders; this module holds the parts that do not
need Snakemake so the library and its tests can use them too.
"""

from __future__ import annotations

import itertools
from typing import Any

import pandas as pd


def grid_combinations(family: dict[str, Any]) -> list[dict[str, Any]]:
    """The swept combinations of a family: the Cartesian product of ``family['grid']`` (in the
    listed order), or, with ``half_fraction: [a, b, c, …]``, the half of it that a two-level
    fractional factorial 2^(q−1) keeps over those q axes (each with exactly two grid values).

    Code each listed axis's first value as 0 and its second as 1; the kept half holds the
    combinations whose codes sum to an even number (defining relation I = AB…, in ±1 coding the
    product of the q factors is +1 for q even and −1 for q odd; for the 2³ over γ, β, p: the
    (first, first, first) corner and the three with two second values). Every value of every
    axis is kept and appears equally often; the main effects of the listed axes stay estimable,
    their interactions are aliased with each other. Other axes are crossed in full."""
    grid: dict[str, list[Any]] = family.get("grid", {}) or {}
    names = list(grid)
    half = list(family.get("half_fraction") or [])
    rows = []
    for values in itertools.product(*(grid[n] for n in names)):
        row = dict(zip(names, values))
        if half and sum(grid[a].index(row[a]) for a in half) % 2:
            continue
        rows.append(row)
    return rows


def family_table(family: dict[str, Any], seeds: list[int]) -> pd.DataFrame:
    """The family's combinations (:func:`grid_combinations`) × ``seeds``, one row per run."""
    names = list(family.get("grid", {}) or {})
    rows = [{**combo, "seed": seed} for combo in grid_combinations(family) for seed in seeds]
    return pd.DataFrame(rows, columns=[*names, "seed"])


# The keys of a track's `train` section that only the evaluation stage reads; the training stage
# reads the rest but for the seeds (each run carries its own). One place for both: the rules
# (workflow/rules/common.smk) give each stage its part, aenbench.stages fingerprints it.
EVAL_KEYS = ("eval_samples", "eval_seed")


def train_settings(section: dict[str, Any]) -> dict[str, Any]:
    """What a training job reads of a `train` section: all but the evaluation keys and the seeds."""
    return {k: v for k, v in section.items() if k not in (*EVAL_KEYS, "seeds")}


def eval_settings(section: dict[str, Any]) -> dict[str, Any]:
    """What an evaluation job reads of a `train` section."""
    return {k: section[k] for k in EVAL_KEYS if k in section}


def run_hyperparameters(
    family: dict[str, Any], row: dict[str, Any], arch_defaults: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Architecture defaults, then the family's fixed values, then the row's swept values."""
    params = dict(arch_defaults.get(family["architecture"], {}))
    params.update(family.get("fixed", {}) or {})
    params.update({k: _plain(v) for k, v in row.items() if k != "seed"})
    return params


def params_label(row: dict[str, Any]) -> str:
    """Short human label of the swept values, e.g. ``l1=0.005 l2=0.0001``."""
    short = {"l1_coefficient": "l1", "l2_coefficient": "l2", "aux_loss_coefficient": "aux"}
    return " ".join(f"{short.get(k, k)}={_plain(v)}" for k, v in row.items() if k != "seed")


def _plain(v: Any) -> Any:
    """numpy scalars from a DataFrame row → plain Python values (JSON-able, dataclass-friendly)."""
    return v.item() if hasattr(v, "item") else v


# The seed / teacher spread of a family's selected configuration (aenbench.synthetic.spread):
# its replicates' folders, and the leaderboard's ``replicate`` label of a row read from one.
SPREAD_SEED_DIR = "seed"
SPREAD_TEACHER_PREFIX = "teacher-d"


def spread_teacher_dir(dictionary_seed: int) -> str:
    """The folder of the replicate on the teacher drawn with ``dictionary_seed``."""
    return f"{SPREAD_TEACHER_PREFIX}{int(dictionary_seed)}"


def replicate_of(parts: tuple[str, ...] | list[str]) -> str:
    """The replicate a metrics JSON of a spread folder belongs to, from its path's parts below
    that folder (``<family>/seed/runs/<run>/metrics.json``): ``seed`` under a seed replicate's
    folder, ``teacher`` under a teacher replicate's."""
    for folder in parts:
        if folder == SPREAD_SEED_DIR:
            return "seed"
        if folder.startswith(SPREAD_TEACHER_PREFIX) and folder[len(SPREAD_TEACHER_PREFIX):].isdigit():
            return "teacher"
    raise ValueError(f"{'/'.join(parts)}: not inside a spread replicate folder ({SPREAD_SEED_DIR!r} or "
                     f"{SPREAD_TEACHER_PREFIX}<N>)")
