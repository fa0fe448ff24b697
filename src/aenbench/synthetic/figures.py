"""The synthetic track's figures and tables (method.md §6: F-syn, T-syn; issue 8's stability,
replication and teacher artefacts), drawn from the leaderboard with pandas + matplotlib.

* ``dead_ev_vs_l0`` (F-syn, one figure per ρ): dead % vs L0 and EV vs L0, every run a point,
  each family's Pareto front a line, in the L0 window of the paper scaled to the teacher's k:
  the paper plots 7.5 ≤ L0 ≤ 64.5 at k = 16, i.e. [0.47k, 4.03k] (:func:`l0_window`).
* ``closest_to_k`` (T-syn, one table per ρ): per family the run whose L0 is closest to k.
* ``stability_vs_rho``: the stability metrics of those closest-to-k runs against ρ.
* ``replication_table``: our paper-scale runs at the reference configurations beside the
  authors' numbers, with our seed spread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import pandas as pd  # noqa: E402

from aenbench.io import write_text, write_with  # noqa: E402
from aenbench.metric_registry import L0_TOLERANCE, METRICS, arrow, column_list  # noqa: E402
from aenbench.plots import AXIS_LABELS, dataset_title, family_palette  # noqa: E402
from aenbench.tables import (  # noqa: E402
    closest_row, grid_rows, l0_coverage, markdown_table, mean_range, pareto_front, replicate_labels, replicates_of,
    seed_summary,
)

PAPER_K, PAPER_L0_WINDOW = 16, (7.5, 64.5)
CLOSEST_COLUMNS = column_list("closest_to_k")
STABILITY_COLUMNS = column_list("stability")
REPLICATION_METRICS = column_list("replication")


def l0_window(k: int) -> tuple[float, float]:
    """The paper's plotted L0 range [7.5, 64.5] at k = 16, scaled to the teacher's k."""
    return PAPER_L0_WINDOW[0] * k / PAPER_K, PAPER_L0_WINDOW[1] * k / PAPER_K


def _families(df: pd.DataFrame, order: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(df["family"]))
    if order:
        return [f for f in order if f in present] + [f for f in present if f not in order]
    return sorted(present)


def _save(fig: Any, out_path: str | Path) -> None:
    write_with(out_path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def dead_ev_vs_l0(rows: pd.DataFrame, k: int, out_path: str | Path, families: Sequence[str] | None = None) -> None:
    """Dead % vs L0 and EV vs L0 for one dataset: every run a point; each family's Pareto front
    (no run with lower-or-equal L0 is at least as good: lower dead %, higher EV) a line. Runs
    outside :func:`l0_window` are drawn faint, fronts use the runs inside it. Where ``rows`` hold
    seed / teacher replicates (``replicate``), each family's selected run (L0 closest to k) is a
    diamond at the mean over it and its replicates, with [min, max] bars on both axes. A family
    whose grid fails the L0 coverage rule (:func:`aenbench.tables.l0_coverage`) says so in the
    legend."""
    if rows.empty:
        raise ValueError("no runs to plot")
    lo, hi = l0_window(k)
    grid = grid_rows(rows)
    fams = _families(grid, families)
    palette = family_palette(fams)
    coverage = l0_coverage(grid.assign(_k=float(k)), target="_k", keys=("family",)).set_index("family")["missing"]
    n_spread = 0
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), squeeze=False)
    for col, metric in enumerate(column_list("dead_ev")):
        ax = axes[0, col]
        hib = bool(METRICS[metric].higher_is_better)
        for family in fams:
            pts = grid[grid["family"] == family]
            inside = pts[(pts["L0"] >= lo) & (pts["L0"] <= hi)]
            outside = pts.drop(inside.index)
            missing = coverage.get(family, "")
            label = family + (f" (grid has no L0 {'≤' if missing == 'below' else '≥'} k)" if missing in ("below", "above")
                              else "")
            ax.scatter(inside["L0"], inside[metric], color=palette[family], s=30, label=label, zorder=3)
            runs = replicates_of(rows, closest_row(pts, "L0", k, tiebreak=["dead_pct"]))
            if len(runs) > 1:
                n_spread = max(n_spread, len(runs))
                xs, ys = (pd.to_numeric(runs[c], errors="coerce") for c in ("L0", metric))
                ax.errorbar([xs.mean()], [ys.mean()], xerr=[[xs.mean() - xs.min()], [xs.max() - xs.mean()]],
                            yerr=[[ys.mean() - ys.min()], [ys.max() - ys.mean()]], fmt="D", ms=6, color=palette[family],
                            mec="black", mew=0.6, capsize=3, lw=1, zorder=4)
            ax.scatter(outside["L0"], outside[metric], color=palette[family], s=14, alpha=0.25, zorder=2)
            front = pareto_front(inside, metric, hib)
            ax.plot(front["L0"], front[metric], color=palette[family], lw=1.3, zorder=2)
        ax.axvline(k, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlim(lo / 1.3, hi * 1.3)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel(f"L0 (window {lo:.3g}–{hi:.3g}; dotted: k = {k})")
        ax.set_ylabel(AXIS_LABELS[metric] + arrow(METRICS[metric].higher_is_better))
        if metric == "dead_pct":
            ax.set_ylim(-3, 103)
    dataset = str(rows["dataset"].iloc[0])
    spread = (f"; ◆ with bars: each family's run closest to k, mean [min, max] over it and its seed / teacher "
              f"replicates (up to {n_spread} runs)" if n_spread else "")
    fig.suptitle(f"{dataset_title(dataset)}: every grid run a point, lines = Pareto fronts per family{spread}",
                 fontsize=9)
    axes[0, 1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), title="family", fontsize=8)
    fig.tight_layout()
    _save(fig, out_path)


def closest_to_k(rows: pd.DataFrame, k: float, families: Sequence[str] | None = None,
                 extra_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Per (dataset, family): the grid run whose L0 is closest to k (ties: the lower dead %;
    :func:`aenbench.tables.grid_rows`), with the T-syn columns, the stability columns when
    present, the grid run's own ``L0_selected``, an ``L0_matched`` flag (its |L0 − k| ≤ 25 % k,
    :data:`aenbench.metric_registry.L0_TOLERANCE`) and the L0 coverage of the family's grid
    (``brackets_k``, ``coverage_missing``: :func:`aenbench.tables.l0_coverage`).

    With seed / teacher replicates of the selected run in ``rows`` (``replicate``, synthetic.spread)
    each metric is the mean over the run and its replicates, ``<metric>_min`` / ``<metric>_max``
    their range and ``n_replicates`` their count (1: the grid run alone)."""
    out = []
    grid = grid_rows(rows)
    coverage = {(c["dataset"], c["family"]): c for c in
                l0_coverage(grid.assign(_k=float(k)), target="_k").to_dict("records")} if len(grid) else {}
    for (dataset, family), fam in grid.groupby(["dataset", "family"], sort=False):
        best = closest_row(fam, "L0", k, tiebreak=["dead_pct"])
        runs = replicates_of(rows, best)
        row = {"dataset": dataset, "rho": _rho(dataset), "family": family, "config": best["params"],
               "seed": best["seed"], "n_runs": len(fam), "n_replicates": len(runs),
               "replicates": " ".join(sorted(r for r in replicate_labels(runs) if r))}
        for col in [*CLOSEST_COLUMNS, *STABILITY_COLUMNS, "pct_w_at_max", *extra_columns]:
            if col in best.index:
                values = pd.to_numeric(runs[col], errors="coerce")
                row[col] = values.mean() if values.notna().any() else best[col]
                row[f"{col}_min"], row[f"{col}_max"] = values.min(), values.max()
        if "pct_w_at_max" in row and str(best.get("hp_adaptive")) != "True":
            for suffix in ("", "_min", "_max"):  # raw weights are tracked but unused without adaptive w̃
                row[f"pct_w_at_max{suffix}"] = float("nan")
        row["L0_selected"] = float(best["L0"])  # the grid run's own L0 (``L0`` is the mean over its replicates)
        row["L0_matched"] = bool(abs(best["L0"] - k) <= L0_TOLERANCE * k)
        cov = coverage.get((dataset, family), {})
        row["brackets_k"] = bool(cov.get("brackets", False))
        row["coverage_missing"] = cov.get("missing", "no L0")
        out.append(row)
    table = pd.DataFrame(out)
    order = {f: i for i, f in enumerate(_families(rows, families))}
    return table.sort_values(["rho", "family"], key=lambda s: s.map(order) if s.name == "family" else s).reset_index(drop=True)


def _rho(dataset: str) -> float:
    return float(dataset[3:]) if dataset.startswith("rho") else float("nan")


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if isinstance(v, float):
        return "n/a" if pd.isna(v) else f"{v:.3g}"
    return str(v)


def write_table(table: pd.DataFrame, columns: Sequence[str], out_csv: str | Path, out_md: str | Path,
                title: str = "") -> None:
    """CSV with every column; markdown with ``columns`` (direction arrows from METRICS)."""
    write_with(out_csv, lambda tmp: table.to_csv(tmp, index=False))
    cols = [c for c in columns if c in table.columns]
    header = [c + (arrow(METRICS[c].higher_is_better) if c in METRICS else "") for c in cols]

    def cell(r: pd.Series, c: str) -> str:
        # "mean [min, max]" over the selected run and its replicates (closest_to_k), when it has any
        if f"{c}_min" in r.index and r.get("n_replicates", 1) > 1 and not pd.isna(r[c]):
            return mean_range(r[c], r[f"{c}_min"], r[f"{c}_max"])
        return _fmt(r[c])

    body = markdown_table(header, ([cell(r, c) for c in cols] for _, r in table.iterrows()))
    write_text(out_md, (f"{title}\n\n" if title else "") + body + "\n")


def stability_vs_rho(table: pd.DataFrame, out_path: str | Path, families: Sequence[str] | None = None) -> None:
    """The closest-to-k run's stability metrics against ρ, a line per family: Lipschitz ratio
    median (solid) and p99 (dashed), support-flip rate, and the amortisation gap to FISTA's
    exact code (families without a convex objective have none)."""
    fams = _families(table, families)
    palette = family_palette(fams)
    panels = [("lipschitz", "‖h(x+δ) − h(x)‖/‖δ‖: median (—), p99 (--)"),
              ("support_flip_rate", "support-flip rate under δ"),
              ("fista_code_gap_median", "‖h − h*‖/‖h*‖ (median), h* = FISTA")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), squeeze=False)
    for c, (metric, label) in enumerate(panels):
        ax = axes[0, c]
        for family in fams:
            sub = table[table["family"] == family].sort_values("rho")
            if metric == "lipschitz":
                ax.plot(sub["rho"], sub["lipschitz_median"], "o-", color=palette[family], label=family)
                ax.plot(sub["rho"], sub["lipschitz_p99"], "s--", color=palette[family], alpha=0.7, ms=4)
                ax.set_yscale("log")
            elif metric in sub and sub[metric].notna().any():
                ax.plot(sub["rho"], sub[metric], "o-", color=palette[family], label=family)
        ax.set_xlabel("ρ (closest-to-k run of each family)")
        ax.set_title(label, fontsize=9)
    axes[0, -1].legend(*axes[0, 0].get_legend_handles_labels(), fontsize=8, title="family",
                       loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    _save(fig, out_path)


# --------------------------------------------------------------------------- replication


def replication_table(ours: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Our runs at the reference configurations (``ours``: leaderboard rows with a
    ``reference_config`` column naming the reference's config string) beside the reference:
    one row per (ρ, family) with ours as mean [min, max] over seeds, the reference value, and
    ``beyond_spread`` where the reference lies outside our seed range."""
    ours = ours.assign(rho=ours["dataset"].map(_rho))
    summ = seed_summary(ours, REPLICATION_METRICS, ["rho", "model"], seeds_sep=" ")
    configs = ours.groupby(["rho", "model"], sort=True)["reference_config"].first()
    rows = []
    for cfg in summ.to_dict("records"):
        rho, model = cfg["rho"], cfg["model"]
        ref = reference[(reference["rho"].round(6) == round(rho, 6)) & (reference["model"] == model)]
        row: dict[str, Any] = {"rho": rho, "family": model, "config": configs[(rho, model)],
                               "n_seeds": cfg["n_seeds"], "seeds": cfg["seeds"]}
        for m in REPLICATION_METRICS:
            row[f"{m}_ours"], row[f"{m}_min"], row[f"{m}_max"] = cfg[f"{m}_mean"], cfg[f"{m}_min"], cfg[f"{m}_max"]
            row[f"{m}_paper"] = float(ref[m].iloc[0]) if len(ref) else float("nan")
            row[f"{m}_beyond_spread"] = bool(len(ref) and not (row[f"{m}_min"] <= row[f"{m}_paper"] <= row[f"{m}_max"]))
        rows.append(row)
    return pd.DataFrame(rows)


def replication_markdown(table: pd.DataFrame) -> str:
    header = ["ρ", "family", "config (reference)", "seeds",
              *[f"{m} ours" for m in REPLICATION_METRICS], *[f"{m} paper" for m in REPLICATION_METRICS]]
    body = []
    for _, r in table.iterrows():
        ours_cells = [mean_range(r[f"{m}_ours"], r[f"{m}_min"], r[f"{m}_max"], r["n_seeds"] > 1)
                      for m in REPLICATION_METRICS]
        body.append([f"{r['rho']:g}", r["family"], r["config"], r["seeds"], *ours_cells,
                     *[f"{r[f'{m}_paper']:.3g}" for m in REPLICATION_METRICS]])
    return markdown_table(header, body)


# --------------------------------------------------------------------------- adaptive state


def adaptive_traces(rows: pd.DataFrame, k: float, base_dir: str | Path = ".") -> pd.DataFrame:
    """The adaptive-weight state over training (``adaptive_trace`` of each record: % raw weights
    pinned at w_max / w_min, median EMA activity, mean w̃, every ``aen.TRACE_EVERY`` steps) of the
    closest-to-k run of every adaptive family (``hp_adaptive`` true) on every dataset."""
    import json

    adaptive = rows[rows.get("hp_adaptive", pd.Series(False, index=rows.index)).astype(str) == "True"]
    if adaptive.empty:
        return pd.DataFrame()
    picked = closest_to_k(adaptive, k)
    params = adaptive["params"].fillna("")  # an ablation arm has no swept values: "" (read back as NaN)
    out = []
    for _, r in picked.iterrows():
        config = "" if pd.isna(r["config"]) else r["config"]
        src = adaptive[(adaptive["dataset"] == r["dataset"]) & (adaptive["family"] == r["family"])
                       & (params == config) & (adaptive["seed"] == r["seed"])].iloc[0]
        with open(Path(base_dir) / src["metrics_path"]) as f:
            trace = json.load(f).get("adaptive_trace") or []
        out += [{"dataset": r["dataset"], "rho": r["rho"], "family": r["family"], "config": r["config"],
                 "final_L0": r["L0"], **point} for point in trace]
    return pd.DataFrame(out)


def adaptive_trace_figure(trace: pd.DataFrame, out_path: str | Path) -> None:
    """% raw adaptive weights pinned at w_max and the median EMA activity against the step, a
    panel row per family, a line per ρ (the closest-to-k run)."""
    families = sorted(trace["family"].unique()) if not trace.empty else []
    fig, axes = plt.subplots(max(1, len(families)), 2, figsize=(11, 3.2 * max(1, len(families))), squeeze=False)
    for i, family in enumerate(families):
        sub = trace[trace["family"] == family]
        for dataset, grp in sub.groupby("dataset"):
            label = f"{dataset_title(dataset)} ({grp['config'].iloc[0]}, L0 {grp['final_L0'].iloc[0]:.2g})"
            axes[i, 0].plot(grp["step"], grp["pct_w_at_max"], label=label)
            axes[i, 1].plot(grp["step"], grp["ema_median"], label=label)
        axes[i, 0].set_ylabel(f"{family}: % w at w_max")
        axes[i, 1].set_ylabel(f"{family}: median EMA a_j")
        axes[i, 1].set_yscale("log")
        axes[i, 1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    if not families:
        axes[0, 0].text(0.5, 0.5, "no adaptive family in this run", ha="center", va="center")
    fig.suptitle("adaptive weights over training (closest-to-k run per ρ)", fontsize=10)
    fig.tight_layout()
    _save(fig, out_path)
