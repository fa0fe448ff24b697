"""The matched-L0 comparison of a variant (or a family) with the leaderboard families.

The unit of comparison is a *config*: one point of a family's grid, summarised over its seeds
(mean, min, max of every metric). For every config of the variant and every family compared
with, the family config whose seed-mean L0 is closest to the variant config's is its match.
Per metric with a direction (``aenbench.metric_registry.METRICS``: ↑ or ↓), the verdict is:

* ``within seed spread`` when the variant's seed mean lies inside the matched family config's
  [min, max] over seeds;
* otherwise ``better`` or ``worse``, by the metric's direction.

With one seed the spread is a single value, so any difference is better or worse: the verdicts
are a reading aid, not a significance test. Metrics without a direction get no verdict, and a
match whose L0 is more than ``l0_tolerance`` (relative, default 25 %) away from the variant's gets
``L0 not matched`` instead: a family with no config near that L0 is not beaten or beating.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import pandas as pd

from aenbench.metric_registry import L0_TOLERANCE
from aenbench.tables import closest_row, seed_summary

BETTER = "better"
WORSE = "worse"
WITHIN = "within seed spread"
NO_DIRECTION = "—"
MISSING = "n/a"
NOT_MATCHED = "L0 not matched"
VERDICTS = (BETTER, WORSE, WITHIN, NOT_MATCHED)

CONFIG_KEYS = ["track", "dataset", "family", "params"]


def verdict(value: float, ref_min: float, ref_max: float, higher_is_better: bool | None) -> str:
    """better / worse / within seed spread of ``value`` against a reference [min, max]."""
    if higher_is_better is None:
        return NO_DIRECTION
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (value, ref_min, ref_max)):
        return MISSING
    if ref_min <= value <= ref_max:
        return WITHIN
    if higher_is_better:
        return BETTER if value > ref_max else WORSE
    return BETTER if value < ref_min else WORSE


def config_summary(rows: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per (track, dataset, family, params): mean/min/max over seeds of L0 and each metric."""
    return seed_summary(rows, ["L0", *metrics], CONFIG_KEYS, dropna=False, seeds_sep=",")


def default_metrics(lb: pd.DataFrame, directions: Mapping[str, bool | None]) -> list[str]:
    """Every metric with a direction that the leaderboard has values for."""
    return [m for m, d in directions.items() if d is not None and m in lb.columns and lb[m].notna().any()]


def comparable_rows(lb: pd.DataFrame) -> pd.DataFrame:
    """Our own rows only: the paper's rows are at another scale and budget."""
    return lb[lb["source"] == "ours"] if "source" in lb.columns else lb


def matched_l0(
    lb: pd.DataFrame,
    name: str,
    directions: Mapping[str, bool | None],
    *,
    against: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    l0_tolerance: float = L0_TOLERANCE,
) -> pd.DataFrame:
    """For every config of ``name`` and every family of ``against`` (default: every other
    family of the same track), the family config closest in seed-mean L0, with deltas and a
    verdict per metric. Columns ``<metric>_variant``, ``<metric>_family`` (+ ``_min``/``_max``),
    ``<metric>_delta`` and ``<metric>_verdict``; ``L0_matched`` is False (and every verdict
    ``L0 not matched``) when the closest L0 is more than ``l0_tolerance`` away, relatively."""
    ours = comparable_rows(lb)
    mine = ours[ours["family"] == name]
    if mine.empty:
        known = ", ".join(sorted(ours["family"].dropna().unique()))
        raise ValueError(f"{name!r} has no rows of our own in the leaderboard; known: {known}")
    tracks = sorted(mine["track"].unique())
    if len(tracks) != 1:
        raise ValueError(f"{name!r} has rows on several tracks ({', '.join(tracks)}); pick one")
    track = tracks[0]
    pool = ours[(ours["track"] == track) & (ours["family"] != name)]
    if against is None:
        kinds = pool["kind"] if "kind" in pool.columns else pd.Series("family", index=pool.index)
        against = sorted(pool.loc[kinds == "family", "family"].unique())
    unknown = sorted(set(against) - set(pool["family"]))
    if unknown:
        raise ValueError(
            f"no rows to compare with for {', '.join(unknown)} on track {track}; "
            f"known: {', '.join(sorted(pool['family'].unique()))}"
        )
    if datasets is not None:
        missing = sorted(set(datasets) - set(mine["dataset"]))
        if missing:
            raise ValueError(f"{name!r} has no rows on dataset(s) {', '.join(missing)}")
        mine = mine[mine["dataset"].isin(datasets)]
    metrics = list(metrics) if metrics is not None else default_metrics(ours, directions)
    metrics = [m for m in metrics if m != "L0"]
    mine_cfg = config_summary(mine, metrics)
    ref_cfg = config_summary(pool[pool["family"].isin(against)], metrics)

    out = []
    for v in mine_cfg.to_dict("records"):
        for family in against:
            cands = ref_cfg[(ref_cfg["dataset"] == v["dataset"]) & (ref_cfg["family"] == family)]
            if cands.empty:
                continue
            ref = closest_row(cands, "L0_mean", v["L0_mean"])  # first of equally close configs (by params)
            row: dict[str, Any] = {
                "track": track,
                "dataset": v["dataset"],
                "variant": name,
                "variant_params": v["params"],
                "variant_n_seeds": v["n_seeds"],
                "variant_L0": v["L0_mean"],
                "family": family,
                "family_params": ref["params"],
                "family_n_seeds": ref["n_seeds"],
                "family_L0": ref["L0_mean"],
                "family_L0_min": ref["L0_min"],
                "family_L0_max": ref["L0_max"],
                "L0_rel_gap": abs(ref["L0_mean"] - v["L0_mean"]) / max(abs(v["L0_mean"]), 1e-12),
            }
            row["L0_matched"] = bool(row["L0_rel_gap"] <= l0_tolerance)
            for m in metrics:
                value, mean, lo, hi = v[f"{m}_mean"], ref[f"{m}_mean"], ref[f"{m}_min"], ref[f"{m}_max"]
                row[f"{m}_variant"] = value
                row[f"{m}_family"] = mean
                row[f"{m}_family_min"] = lo
                row[f"{m}_family_max"] = hi
                row[f"{m}_delta"] = value - mean
                row[f"{m}_verdict"] = (
                    verdict(value, lo, hi, directions.get(m)) if row["L0_matched"]
                    else (NO_DIRECTION if directions.get(m) is None else NOT_MATCHED)
                )
            out.append(row)
    table = pd.DataFrame(out)
    return table


def table_metrics(table: pd.DataFrame) -> list[str]:
    return [c[: -len("_verdict")] for c in table.columns if c.endswith("_verdict")]


def verdict_counts(table: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Per family and metric: how many matches are better / worse / within seed spread / not
    matched in L0."""
    metrics = list(metrics) if metrics is not None else table_metrics(table)
    rows = []
    for family, sub in table.groupby("family", sort=False):
        for m in metrics:
            counts = sub[f"{m}_verdict"].value_counts()
            rows.append({"family": family, "metric": m, **{v: int(counts.get(v, 0)) for v in VERDICTS}})
    return pd.DataFrame(rows, columns=["family", "metric", *VERDICTS])


def budget_problems(rows: pd.DataFrame) -> list[str]:
    """Ways in which ``rows`` were not trained on the same data, seeds and budget, per dataset."""
    problems = []
    for dataset, sub in comparable_rows(rows).groupby("dataset"):
        for column in ("samples_seen", "steps", "batch_size", "teacher_n", "teacher_m", "teacher_k"):
            if column in sub.columns and sub[column].nunique(dropna=False) > 1:
                values = ", ".join(map(str, sorted(sub[column].dropna().unique())))
                problems.append(f"{dataset}: rows differ in {column} ({values})")
        seeds = sub.groupby(["family", "params"])["seed"].apply(lambda s: tuple(sorted(s.dropna())))
        if seeds.nunique() > 1:
            problems.append(f"{dataset}: configs were trained on different seed sets ({sorted(set(seeds))})")
    return problems
