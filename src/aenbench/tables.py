"""The helpers every table, figure and report is built with (pandas only):

* :func:`seed_summary`: one row per config, mean / min / max over its seeds of each metric;
* :func:`closest_row`: the row whose value (L0) is closest to a target: the matched-L0 and
  closest-to-k picks;
* :func:`pareto_front`: the runs no other run dominates at lower-or-equal L0;
* :func:`markdown_table` and :func:`mean_range`: the markdown tables and their "mean [min, max]"
  cells;
* :func:`l0_coverage`: whether each family's grid brackets L0 = k on each dataset;
* :func:`grid_rows` / :func:`replicates_of`: a leaderboard's grid runs, and the seed / teacher
  replicates of one of them (``replicate`` column, :mod:`aenbench.synthetic.spread`).

A pick farther than ``aenbench.metric_registry.L0_TOLERANCE`` from its target is flagged as
not matched by its callers.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import pandas as pd

def seed_summary(rows: pd.DataFrame, metrics: Sequence[str], keys: Sequence[str], *,
                 stats: Sequence[str] = ("mean", "min", "max"), dropna: bool = True,
                 seeds_sep: str | None = None) -> pd.DataFrame:
    """One row per ``keys`` group (a config): ``<metric>_<stat>`` over its seeds for every metric of
    ``metrics`` present in ``rows``, ``n_seeds`` and, with ``seeds_sep``, ``seeds``: the sorted seed
    list joined by it. Groups are sorted by ``keys``; ``dropna=False`` keeps groups with a NaN key."""
    present = [m for m in dict.fromkeys(metrics) if m in rows.columns]
    grouped = rows.groupby(list(keys), sort=True, dropna=dropna)
    out = grouped[present].agg(list(stats))
    out.columns = [f"{m}_{s}" for m, s in out.columns]
    out["n_seeds"] = grouped["seed"].nunique(dropna=True)
    if seeds_sep is not None:
        out["seeds"] = grouped["seed"].apply(lambda s: seeds_sep.join(str(int(v)) for v in sorted(s.dropna().unique())))
    return out.reset_index()


def closest_row(rows: pd.DataFrame, column: str, target: float, tiebreak: Sequence[str] = ()) -> pd.Series:
    """The row of ``rows`` whose ``column`` is closest to ``target``; equally close rows go by
    ``tiebreak`` (ascending), then by their order in ``rows``. NaN values are picked last."""
    if rows.empty:
        raise ValueError(f"no rows to pick the {column} closest to {target} from")
    key = pd.DataFrame({"_dist": (rows[column] - target).abs().to_numpy(),
                        **{c: rows[c].to_numpy() for c in tiebreak}})  # positional index
    first = key.sort_values(["_dist", *tiebreak], kind="stable", na_position="last").index[0]
    return rows.iloc[first]


def pareto_front(points: pd.DataFrame, y: str, higher_is_better: bool, x: str = "L0") -> pd.DataFrame:
    """Points not dominated by one with lower-or-equal ``x`` and an at-least-as-good ``y``."""
    pts = points.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, not higher_is_better])
    keep, best = [], -math.inf
    for idx, value in pts[y].items():
        score = value if higher_is_better else -value
        if score > best:
            keep.append(idx)
            best = score
    return pts.loc[keep]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table (cells as given, ``|`` escaped)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_range(mean: float, lo: float, hi: float, spread: bool = True, fmt: str = ".3g") -> str:
    """``"mean [min, max]"`` (``"mean"`` alone without ``spread`` or a min); empty for a NaN mean."""
    if pd.isna(mean):
        return ""
    if spread and not pd.isna(lo):
        return f"{mean:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"
    return f"{mean:{fmt}}"


def l0_coverage(rows: pd.DataFrame, target: str = "teacher_k", keys: Sequence[str] = ("dataset", "family"),
                l0: str = "L0") -> pd.DataFrame:
    """The L0 coverage rule: a family's grid brackets L0 = k on a dataset when at least one of its
    runs has L0 ≤ k and at least one has L0 ≥ k (k: the ``target`` column, the teacher's k).

    One row per ``keys`` group: ``k``, ``L0_min``, ``L0_max``, ``n_runs``, ``brackets`` and
    ``missing``: ``""`` when it brackets, ``"below"`` when no run reaches L0 ≤ k (the grid needs a
    sparser end: larger λ₁, smaller TopK k), ``"above"`` when none reaches L0 ≥ k (a denser end),
    ``"no L0"`` when no run has an L0. Groups are sorted by ``keys``."""
    out = []
    for key, group in rows.groupby(list(keys), sort=True):
        k_values = group[target].dropna().unique()
        if len(k_values) != 1:
            raise ValueError(f"{dict(zip(keys, key if isinstance(key, tuple) else (key,)))}: expected one {target}, "
                             f"got {sorted(k_values)}")
        k = float(k_values[0])
        values = group[l0].dropna()
        below, above = bool((values <= k).any()), bool((values >= k).any())
        missing = "no L0" if values.empty else "" if below and above else "below" if not below else "above"
        out.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))), "k": k,
                    "L0_min": values.min() if len(values) else math.nan,
                    "L0_max": values.max() if len(values) else math.nan, "n_runs": len(group),
                    "brackets": missing == "", "missing": missing})
    return pd.DataFrame(out, columns=[*keys, "k", "L0_min", "L0_max", "n_runs", "brackets", "missing"])


def grid_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The grid's own runs: rows whose ``replicate`` is empty (all rows without that column)."""
    if "replicate" not in rows.columns:
        return rows
    return rows[replicate_labels(rows) == ""]


def replicates_of(rows: pd.DataFrame, run: pd.Series, keys: Sequence[str] = ("dataset", "family", "params")) -> pd.DataFrame:
    """``run`` (a grid row) with its seed / teacher replicates among ``rows``: the rows sharing its
    ``keys`` whose ``replicate`` is not empty; ``run`` comes first."""
    if "replicate" not in rows.columns:
        return run.to_frame().T
    same = pd.Series(True, index=rows.index)
    for key in keys:
        same &= rows[key].astype(str) == str(run[key])
    reps = rows[same & (replicate_labels(rows) != "")]
    return pd.concat([run.to_frame().T, reps], ignore_index=True)


def replicate_labels(rows: pd.DataFrame) -> pd.Series:
    """The ``replicate`` column as strings, "" for a grid run (a CSV reads an empty one back as NaN)."""
    if "replicate" not in rows.columns:
        return pd.Series("", index=rows.index)
    col = rows["replicate"]
    return col.astype(object).where(col.notna(), "").astype(str)
