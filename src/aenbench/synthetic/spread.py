"""Seed and teacher spread of a family's selected configuration (rule synthetic_spread).

The paper's synthetic protocol trains every configuration of a grid once (seed 0, one teacher
dictionary per ρ) and reports, per family and ρ, the configuration whose L0 is closest to k.
A single run carries no spread, so that selected configuration is trained again:

* with each seed of ``spread.seeds`` (default 1 and 2) on the same teacher: the spread of the
  SAE's initialisation and data order;
* with seed 0 on a teacher drawn with each ``spread.dictionary_seeds`` (default 1): the spread
  of the teacher dictionary D itself, which the other seeds share.

Selection (fixed before any result, the paper's rule): the grid run with the L0 closest to k;
equally close runs go by the lower dead %, then by grid order (:func:`aenbench.tables.closest_row`).

Layout of one family's folder ``out_dir`` (``results/synthetic/<ρ>/spread/<family>``; one job
per ρ does every family)::

    selection.json              the selected run, its L0, k and every candidate's L0
    seed/trained/<run>/         the seed replicates (training stage layout)
    seed/runs/<run>/metrics.json
    teacher-d<N>/trained/<run>/ the replicate on teacher dictionary seed N
    teacher-d<N>/runs/<run>/metrics.json

The leaderboard reads ``*/runs`` and labels each row's ``replicate`` by the folder
(:func:`aenbench.sweeps.replicate_of`); the grid's own rows have ``replicate`` empty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from aenbench.io import write_json
from aenbench.sweeps import SPREAD_SEED_DIR, spread_teacher_dir
from aenbench.stages import INDEX
from aenbench.synthetic.track import evaluate_runs, spiked_data, trained_dir_of, train_runs_lockstep
from aenbench.tables import closest_row


def grid_candidates(runs_dir: str | Path) -> pd.DataFrame:
    """One row per evaluated grid run under ``runs_dir``: run_id, L0, dead_pct, in grid order
    (the order of the training stage's index next to it)."""
    runs_dir = Path(runs_dir)
    index_file = trained_dir_of(runs_dir) / INDEX
    index = json.loads(index_file.read_text())["runs"] if index_file.exists() else \
        sorted(p.name for p in runs_dir.iterdir() if (p / "metrics.json").exists())
    rows = []
    for run_id in index:
        path = runs_dir / run_id / "metrics.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: the grid run {run_id} has no metrics.json; rerun its evaluation "
                                    f"(snakemake {runs_dir} --cores all)")
        metrics = json.loads(path.read_text())["eval_result_metrics"]
        flat = {k: v for group in metrics.values() for k, v in group.items()}
        rows.append({"run_id": run_id, "L0": flat.get("L0"), "dead_pct": flat.get("dead_pct")})
    if not rows:
        raise ValueError(f"{runs_dir}: no evaluated grid runs to select from")
    return pd.DataFrame(rows)


def select(runs_dir: str | Path, k: float) -> dict[str, Any]:
    """The selected configuration of a family's grid: the run with L0 closest to ``k``."""
    candidates = grid_candidates(runs_dir)
    best = closest_row(candidates, "L0", k, tiebreak=["dead_pct"])
    return {"rule": "the grid run with L0 closest to k (ties: lower dead %, then grid order)", "k": k,
            "run_id": best["run_id"], "L0": float(best["L0"]), "dead_pct": float(best["dead_pct"]),
            "candidates": candidates.to_dict("records")}


def replicate_id(run_id: str, grid_seed: int, seed: int) -> str:
    """The grid run's folder name with its seed replaced: ``k~4_seed~0`` → ``k~4_seed~1``."""
    suffix = f"seed~{grid_seed}"
    if not run_id.endswith(suffix):
        raise ValueError(f"run {run_id!r} does not end with {suffix!r}; cannot name its seed replicates")
    return run_id[: -len(suffix)] + f"seed~{seed}"


@dataclass
class SpreadFamily:
    """One family of a spread job: its evaluated grid (``runs_dir``), definition and runs."""

    family_name: str
    runs_dir: str | Path
    family: dict[str, Any]
    runs: list[tuple[str, dict[str, Any]]]
    arch_defaults: dict[str, dict[str, Any]]


def spread_families(*, families: list[SpreadFamily], dictionary_path: str | Path, teacher_paths: dict[int, str | Path],
                    out_dir: str | Path, dataset: str, spec: dict[str, Any], train: dict[str, Any],
                    evaluation: dict[str, Any], seeds: list[int], device: str = "auto") -> dict[str, dict[str, Any]]:
    """For each family, select its configuration closest to L0 = k among its evaluated grid runs,
    and train and evaluate it again with each of ``seeds`` on the grid's teacher
    (``dictionary_path``) and with the grid seed on each teacher of ``teacher_paths`` (dictionary
    seed → dictionary file), into ``out_dir/<family>`` (layout in the module docstring).

    Each replicate trains every family's copy in lockstep (:func:`train_runs_lockstep`): per seed
    one stream, and the ℓ1 / EN / AL / AEN copies in one stack instead of a stack of one each.
    Returns the selection record per family (also written to ``<family>/selection.json``)."""
    out_dir = Path(out_dir)
    folders: dict[str, tuple[Path, dict[str, Any]]] = {}
    if seeds:
        folders[SPREAD_SEED_DIR] = (Path(dictionary_path), spec)
    for dseed, path in sorted(teacher_paths.items()):
        folders[spread_teacher_dir(dseed)] = (Path(path), {**spec, "dictionary_seed": dseed})
    selections, replicate_runs = {}, {}
    for fam in families:
        selection = select(fam.runs_dir, spec["k"])
        row_of = dict(fam.runs)
        if selection["run_id"] not in row_of:
            raise ValueError(f"{fam.runs_dir}: the selected run {selection['run_id']} is not in the family's grid "
                             f"({len(fam.runs)} runs); the grid changed since it was evaluated: rerun its train and "
                             "eval jobs")
        row = row_of[selection["run_id"]]
        grid_seed = int(row["seed"])
        reps = {folder: [(selection["run_id"], dict(row))] for folder in folders if folder != SPREAD_SEED_DIR}
        if seeds:
            reps[SPREAD_SEED_DIR] = [(replicate_id(selection["run_id"], grid_seed, s), {**row, "seed": s}) for s in seeds]
        selection["replicates"] = {folder: [r for r, _ in reps[folder]] for folder in folders}
        selections[fam.family_name], replicate_runs[fam.family_name] = selection, reps
    for folder, (dict_path, teacher_spec) in folders.items():
        data = spiked_data(dict_path, teacher_spec, evaluation)
        train_runs_lockstep(
            data=data, dataset=dataset, train=train, device=device,
            parts=[(out_dir / fam.family_name / folder / "trained", fam.family_name, fam.family,
                    replicate_runs[fam.family_name][folder], fam.arch_defaults) for fam in families])
        for fam in families:
            evaluate_runs(data=data, trained_dir=out_dir / fam.family_name / folder / "trained",
                          out_dir=out_dir / fam.family_name / folder / "runs", dataset=dataset, device=device)
    for name, selection in selections.items():
        write_json(out_dir / name / "selection.json", selection)
    return selections
