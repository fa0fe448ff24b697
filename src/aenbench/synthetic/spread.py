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
from pathlib import Path
from typing import Any

import pandas as pd

from aenbench.io import write_json
from aenbench.sweeps import SPREAD_SEED_DIR, spread_teacher_dir
from aenbench.stages import INDEX
from aenbench.synthetic.track import evaluate_runs, spiked_data, trained_dir_of, train_runs
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


def spread_family(*, runs_dir: str | Path, dictionary_path: str | Path, teacher_paths: dict[int, str | Path],
                  out_dir: str | Path, dataset: str, family_name: str, family: dict[str, Any],
                  runs: list[tuple[str, dict[str, Any]]], spec: dict[str, Any], train: dict[str, Any],
                  evaluation: dict[str, Any], arch_defaults: dict[str, dict[str, Any]], seeds: list[int],
                  device: str = "auto") -> dict[str, Any]:
    """Select the family's configuration closest to L0 = k among its evaluated grid runs in
    ``runs_dir``, train and evaluate it again with each of ``seeds`` on the grid's teacher
    (``dictionary_path``) and with the grid seed on each teacher of ``teacher_paths``
    (dictionary seed → dictionary file), into ``out_dir`` (layout in the module docstring).
    Returns the selection record (also written to ``out_dir/selection.json``)."""
    out_dir = Path(out_dir)
    selection = select(runs_dir, spec["k"])
    row_of = dict(runs)
    if selection["run_id"] not in row_of:
        raise ValueError(f"{runs_dir}: the selected run {selection['run_id']} is not in the family's grid "
                         f"({len(runs)} runs); the grid changed since it was evaluated: rerun its train and eval jobs")
    row = row_of[selection["run_id"]]
    grid_seed = int(row["seed"])
    replicates = []
    seed_runs = [(replicate_id(selection["run_id"], grid_seed, s), {**row, "seed": s}) for s in seeds]
    if seed_runs:
        replicates.append((SPREAD_SEED_DIR, dictionary_path, spec, seed_runs))
    for dseed, path in sorted(teacher_paths.items()):
        replicates.append((spread_teacher_dir(dseed), path, {**spec, "dictionary_seed": dseed},
                           [(selection["run_id"], dict(row))]))
    for folder, dict_path, teacher_spec, rep_runs in replicates:
        data = spiked_data(dict_path, teacher_spec, evaluation)
        trained = out_dir / folder / "trained"
        train_runs(data=data, out_dir=trained, dataset=dataset, family_name=family_name, family=family,
                   runs=rep_runs, train=train, arch_defaults=arch_defaults, device=device)
        evaluate_runs(data=data, trained_dir=trained, out_dir=out_dir / folder / "runs", dataset=dataset,
                      device=device)
    selection["replicates"] = {folder: [r for r, _ in rep_runs] for folder, _, _, rep_runs in replicates}
    write_json(out_dir / "selection.json", selection)
    return selection
