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
import pandas as pd  # noqa: E402

from aenbench.io import write_text, write_with  # noqa: E402
from aenbench.metric_registry import L0_TOLERANCE, METRICS, arrow, column_list  # noqa: E402
from aenbench.plots import (  # noqa: E402
    AXIS_LABELS, dataset_title, dodge_factors, family_style, legend_handle, readable_log_axis, save_figure,
    scale_subtitle,
)
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


def dead_ev_vs_l0(rows: pd.DataFrame, k: int, out_path: str | Path, families: Sequence[str] | None = None,
                  base_dir: str | Path = ".") -> Any:
    """Dead % vs L0 and EV vs L0 for one dataset: every run a point in its family's colour and
    marker (:func:`aenbench.plots.family_style`); each family's Pareto front (no run with
    lower-or-equal L0 is at least as good: lower dead %, higher EV) a line, over the runs inside
    :func:`l0_window`. The axes span the window × [1/1.3, 1.3]: a run between the window and the
    axes' edge is drawn faint, a run beyond the edge as a triangle (◀ / ▶) at that edge, its L0
    written beside it. Coincident points are spread slightly in L0
    (:func:`aenbench.plots.dodge_factors`). Where ``rows`` hold seed / teacher replicates
    (``replicate``), each family's selected run (L0 closest to k) is a diamond at the mean over it
    and its replicates, with [min, max] bars on both axes. A family whose grid fails the L0
    coverage rule (:func:`aenbench.tables.l0_coverage`) says so in the legend, which lists only the
    families drawn. The subtitle gives the scale (:func:`aenbench.plots.scale_subtitle`). Returns
    the (closed) figure."""
    from matplotlib.lines import Line2D

    if rows.empty:
        raise ValueError("no runs to plot")
    lo, hi = l0_window(k)
    x_lo, x_hi = lo / 1.3, hi * 1.3
    grid = grid_rows(rows)
    fams = _families(grid, families)
    style = family_style(fams)
    coverage = l0_coverage(grid.assign(_k=float(k)), target="_k", keys=("family",)).set_index("family")["missing"]
    drawn: dict[str, bool] = {}  # family -> has a front line
    n_spread = n_faint = n_edge = n_dodged = 0
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.4), squeeze=False)
    for col, metric in enumerate(column_list("dead_ev")):
        ax = axes[0, col]
        hib = bool(METRICS[metric].higher_is_better)
        pts = grid[grid["family"].isin(fams)].dropna(subset=["L0", metric])
        pts = pts[pts["L0"] > 0]
        pts = pts.iloc[sorted(range(len(pts)), key=lambda i: fams.index(pts["family"].iloc[i]))]
        x_N = pts["L0"].clip(x_lo, x_hi).to_numpy()  # beyond the axes: at their edge
        span = 100.0 if metric == "dead_pct" else float(pts[metric].max() - pts[metric].min()) if len(pts) else 1.0
        factor_N = dodge_factors(list(x_N), list(pts[metric]), span)
        n_dodged += sum(f != 1.0 for f in factor_N)
        pts = pts.assign(_x=x_N * factor_N)
        edge_labels: list[tuple[bool, float, str, Any]] = []  # (left edge, y, text, colour) of runs beyond the axes
        for family in fams:
            fam = pts[pts["family"] == family]
            if fam.empty:
                continue
            st = style[family]
            inside = fam[(fam["L0"] >= lo) & (fam["L0"] <= hi)]
            beyond = fam[(fam["L0"] < x_lo) | (fam["L0"] > x_hi)]
            faint = fam.drop(inside.index).drop(beyond.index)
            # gid "<family>|run" / "|faint" / "|edge": what a test looks the drawn runs up by
            ax.scatter(inside["_x"], inside[metric], color=st.color, marker=st.marker, s=38, edgecolors="black",
                       linewidths=0.4, zorder=3, gid=f"{family}|run")
            ax.scatter(faint["_x"], faint[metric], color=st.color, marker=st.marker, s=22, alpha=0.3, zorder=2,
                       gid=f"{family}|faint")
            n_faint += len(faint)
            for _, run in beyond.iterrows():
                left = run["L0"] < x_lo
                ax.scatter([x_lo if left else x_hi], [run[metric]], color=st.color, marker="<" if left else ">",
                           s=55, edgecolors="black", linewidths=0.4, clip_on=False, zorder=5, gid=f"{family}|edge")
                edge_labels.append((left, float(run[metric]), f"{family} {run['L0']:.3g}", st.color))
                n_edge += 1
            front = pareto_front(inside, metric, hib)
            if len(front) > 1:
                ax.plot(front["L0"], front[metric], color=st.color, lw=1.3, zorder=2)
            drawn[family] = drawn.get(family, False) or len(front) > 1
            runs = replicates_of(rows, closest_row(grid[grid["family"] == family], "L0", k, tiebreak=["dead_pct"]))
            xs, ys = (pd.to_numeric(runs[c], errors="coerce") for c in ("L0", metric))
            if len(runs) > 1 and xs.notna().all() and ys.notna().all():
                n_spread = max(n_spread, len(runs))
                x_mean = min(max(xs.mean(), x_lo), x_hi)  # beyond the axes: at their edge, y bars only
                xerr = ([[xs.mean() - xs.min()], [xs.max() - xs.mean()]] if x_mean == xs.mean() else None)
                ax.errorbar([x_mean], [ys.mean()], xerr=xerr, yerr=[[ys.mean() - ys.min()], [ys.max() - ys.mean()]],
                            fmt="D", ms=6, color=st.color, mec="black", mew=0.6, capsize=3, lw=1, zorder=4,
                            clip_on=x_mean == xs.mean())
        ax.axvline(k, color="grey", lw=0.8, ls=":")
        if metric == "dead_pct":
            ax.set_ylim(-3, 103)
        _edge_labels(ax, edge_labels)
        for edge in (lo, hi):
            ax.axvline(edge, color="grey", lw=0.6, ls="--", alpha=0.5)
        ax.set_xlim(x_lo, x_hi)
        readable_log_axis(ax, "x")
        ax.set_xlabel(f"L0 (dashed: window {lo:.3g}–{hi:.3g}; dotted: k = {k})")
        ax.set_ylabel(AXIS_LABELS[metric] + arrow(METRICS[metric].higher_is_better))
        ax.set_title(f"{AXIS_LABELS[metric]} vs L0", fontsize=10)
    handles = []
    for family in fams:
        if family in drawn:
            missing = coverage.get(family, "")
            note = f" (no L0 {'≤' if missing == 'below' else '≥'} k)" if missing in ("below", "above") else ""
            handles.append(legend_handle(style[family], family + note, line=drawn[family]))
    key = []
    if n_faint:
        key.append(Line2D([], [], color="grey", marker="o", alpha=0.3, ls="none", label="outside the L0 window"))
    if n_edge:
        key.append(Line2D([], [], color="grey", marker=">", mec="black", ls="none",
                          label="beyond the axes (L0 beside)"))
    if n_spread:
        key.append(Line2D([], [], color="grey", marker="D", mec="black", ls="none",
                          label=f"closest-to-k run: mean,\n[min, max] over {n_spread} replicates"))
    axes[0, 1].legend(handles=handles + key, loc="upper left", bbox_to_anchor=(1.02, 1), title="family", fontsize=8)
    dataset = str(rows["dataset"].iloc[0])
    notes = "lines: Pareto fronts in the L0 window" + ("; coincident points spread slightly in L0" if n_dodged else "")
    fig.suptitle(f"{dataset_title(dataset)}: dead % and EV vs L0, every grid run a point; {notes}\n"
                 f"{scale_subtitle(rows, base_dir)}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_path, dpi=110)


def _edge_labels(ax: Any, labels: list[tuple[bool, float, str, Any]], gap: float = 0.05) -> None:
    """Write "family L0" beside each run drawn at the left / right edge of ``ax``, inside the axes,
    the labels of one edge pushed apart to at least ``gap`` (axes fraction) in y (bottom up, then
    top down below 0.97). Call it once the y limits are final."""
    y0, y1 = ax.get_ylim()
    for left in (True, False):
        edge = sorted((lab for lab in labels if lab[0] == left), key=lambda lab: lab[1])
        placed: list[float] = []
        for _, y, text, colour in edge:
            frac = (y - y0) / (y1 - y0)
            frac = max(frac, placed[-1] + gap) if placed else frac
            placed.append(frac)
        for i in reversed(range(len(placed))):  # then top down, keeping the top label inside
            placed[i] = min(placed[i], 0.97 if i == len(placed) - 1 else placed[i + 1] - gap)
        for (_, y, text, colour), frac in zip(edge, placed):
            ax.annotate(text, (0.0 if left else 1.0, frac), xycoords="axes fraction", fontsize=6.5,
                        color=colour, xytext=(8 if left else -8, 0), textcoords="offset points", va="center",
                        ha="left" if left else "right", zorder=5,
                        bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})


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


#: the panel title of each stability metric (metric_registry list ``stability``)
STABILITY_LABELS = {
    "lipschitz_median": "Lipschitz ratio ‖h(x+δ) − h(x)‖/‖δ‖: median",
    "lipschitz_p99": "Lipschitz ratio ‖h(x+δ) − h(x)‖/‖δ‖: p99",
    "support_flip_rate": "support-flip rate under δ",
    "fista_code_gap_median": "code gap ‖h − h*‖/‖h*‖ (median), h* = FISTA",
    "fista_objective_gap_median": "objective gap (F(h) − F(h*))/|F(h*)| (median)",
}


def stability_vs_rho(table: pd.DataFrame, out_path: str | Path, families: Sequence[str] | None = None,
                     scale: str = "") -> Any:
    """The closest-to-k run's stability metrics against ρ (:func:`closest_to_k`'s table): one panel
    per metric of :data:`STABILITY_COLUMNS`, one line per family in its colour and marker
    (:func:`aenbench.plots.family_style`), [min, max] bars over the run and its replicates where
    it has some (``n_replicates`` > 1). The families are offset by up to ±2 % of the ρ range so
    coincident points stay apart. A family without a value for a metric (no convex objective:
    no FISTA gap) is named under that panel ("no value: …", in its x label), not dropped
    silently; the legend lists the families drawn in some panel. ``scale`` (:func:`aenbench.plots.scale_subtitle`) heads the
    figure. Returns the (closed) figure."""
    from textwrap import fill

    fams = _families(table, families)
    style = family_style(fams)
    metrics = [m for m in STABILITY_COLUMNS if m in table.columns] or list(STABILITY_COLUMNS)
    n_cols = 3
    n_rows = -(-(len(metrics) + 1) // n_cols)  # one more cell for the legend
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.6 * n_cols, 3.5 * n_rows), squeeze=False)
    rhos = sorted(table["rho"].dropna().unique()) if "rho" in table else []
    rho_span = (max(rhos) - min(rhos)) if len(rhos) > 1 else 1.0
    drawn: set[str] = set()
    any_bars = False
    for c, metric in enumerate(metrics):
        ax = axes.flat[c]
        values = pd.to_numeric(table.get(metric, pd.Series(dtype=float)), errors="coerce")
        have = [f for f in fams if values[table["family"] == f].notna().any()]
        for j, family in enumerate(have):
            sub = table[(table["family"] == family) & values.notna()].sort_values("rho")
            y = pd.to_numeric(sub[metric], errors="coerce")
            x = sub["rho"] + (j - (len(have) - 1) / 2) * 0.04 * rho_span / max(1, len(have) - 1)
            st = style[family]
            bars = (sub.get("n_replicates", pd.Series(1, index=sub.index)) > 1) & (f"{metric}_min" in sub)
            if bars.any():
                any_bars = True
                lo_, hi_ = (pd.to_numeric(sub[f"{metric}_{b}"], errors="coerce") for b in ("min", "max"))
                yerr = [(y - lo_).where(bars, 0).clip(lower=0), (hi_ - y).where(bars, 0).clip(lower=0)]
            else:
                yerr = None
            ax.errorbar(x, y, yerr=yerr, fmt=st.marker + "-", color=st.color, mec="black", mew=0.4, ms=6, lw=1.2,
                        capsize=3, label=family)
            drawn.add(family)
        if len(values.dropna()) and (values.dropna() > 0).all() and values.max() / values[values > 0].min() > 20:
            readable_log_axis(ax, "y")
        missing = [f for f in fams if f not in have]
        ax.set_xticks(rhos)
        ax.set_xticklabels([f"{r:g}" for r in rhos])
        ax.set_xlabel("ρ" + ("\n" + fill("no value: " + ", ".join(missing), 60) if missing else ""),
                      fontsize=9)
        ax.set_title(STABILITY_LABELS.get(metric, metric) + arrow(METRICS[metric].higher_is_better)
                     if metric in METRICS else STABILITY_LABELS.get(metric, metric), fontsize=9)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    legend_ax = axes.flat[len(metrics)]
    legend_ax.legend(handles=[legend_handle(style[f], f, line=True) for f in fams if f in drawn], title="family",
                     fontsize=8, loc="upper left", ncol=2 if len(drawn) > 8 else 1)
    bars = "; bars: [min, max] over the run and its seed / teacher replicates" if any_bars else ""
    fig.suptitle("Stability of each family's closest-to-k run vs ρ (families offset slightly in ρ)" + bars
                 + (f"\n{scale}" if scale else ""), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_path, dpi=110)


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
    pinned at w_max / w_min, median EMA activity, mean w̃, every ``aen.TRACE_EVERY`` steps, from
    step 0) of the closest-to-k run of every adaptive family (``hp_adaptive`` true) on every
    dataset, ``source`` "trace". The trace is sampled at t = 0, TRACE_EVERY, … < T, so the state at
    the end of training (step T = the run's ``steps``: the record's ``adaptive`` metrics, taken
    after the last step) is appended as a last point with ``source`` "final"."""
    import json

    adaptive = rows[rows.get("hp_adaptive", pd.Series(False, index=rows.index)).astype(str) == "True"]
    if adaptive.empty:
        return pd.DataFrame()
    picked = closest_to_k(adaptive, k)
    # an ablation arm has no swept values: "" (read back as NaN)
    params = adaptive["params"].astype(object).where(adaptive["params"].notna(), "")
    out = []
    for _, r in picked.iterrows():
        config = "" if pd.isna(r["config"]) else r["config"]
        src = adaptive[(adaptive["dataset"] == r["dataset"]) & (adaptive["family"] == r["family"])
                       & (params == config) & (adaptive["seed"] == r["seed"])].iloc[0]
        with open(Path(base_dir) / src["metrics_path"]) as f:
            record = json.load(f)
        trace = [{**point, "source": "trace"} for point in record.get("adaptive_trace") or []]
        final = (record.get("eval_result_metrics") or {}).get("adaptive") or {}
        steps = record.get("run", {}).get("steps", src.get("steps"))
        if final and steps is not None and not pd.isna(steps) and (not trace or trace[-1]["step"] < int(steps)):
            trace.append({"step": int(steps), **final, "source": "final"})
        out += [{"dataset": r["dataset"], "rho": r["rho"], "family": r["family"], "config": r["config"],
                 "final_L0": r.get("L0_selected", r["L0"]), **point} for point in trace]
    return pd.DataFrame(out)


def adaptive_trace_figure(trace: pd.DataFrame, out_path: str | Path, scale: str = "") -> Any:
    """% raw adaptive weights pinned at w_max and the median EMA activity a_j against the step,
    a panel row per family, a line per ρ (the closest-to-k run), over the full training length
    (:func:`adaptive_traces`' last point is the end-of-training state; the x axis ends at the
    longest run's step count). ``scale`` (:func:`aenbench.plots.scale_subtitle`) heads the figure.
    Returns the (closed) figure."""
    families = sorted(trace["family"].unique()) if not trace.empty else []
    fig, axes = plt.subplots(max(1, len(families)), 2, figsize=(11, 3.2 * max(1, len(families))), squeeze=False)
    cmap = matplotlib.colormaps["viridis"]
    rhos = sorted(trace["rho"].dropna().unique()) if not trace.empty else []
    for i, family in enumerate(families):
        sub = trace[trace["family"] == family]
        for dataset, grp in sub.groupby("dataset"):
            grp = grp.sort_values("step")
            rho = grp["rho"].iloc[0]
            colour = cmap(0.85 * rhos.index(rho) / max(1, len(rhos) - 1)) if rho in rhos else None
            label = f"{dataset_title(dataset)} ({grp['config'].iloc[0]}, final L0 {grp['final_L0'].iloc[0]:.2g})"
            for ax, col in ((axes[i, 0], "pct_w_at_max"), (axes[i, 1], "ema_median")):
                ax.plot(grp["step"], grp[col], "o-", ms=3.5, color=colour, label=label)
        axes[i, 0].set_ylabel(f"{family}: % raw $w_j$ at $w_{{\\max}}$")
        axes[i, 1].set_ylabel(f"{family}: median EMA $a_j$")
        if (sub["ema_median"] > 0).all():
            readable_log_axis(axes[i, 1], "y")
        axes[i, 1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
        for ax in axes[i]:
            ax.set_xlim(0, float(trace["step"].max()))
    for ax in axes[-1]:
        ax.set_xlabel("training step (last point: end of training)")
    if not families:
        axes[0, 0].text(0.5, 0.5, "no adaptive family in this run", ha="center", va="center")
    fig.suptitle("adaptive weights over training (closest-to-k run per ρ)" + (f"\n{scale}" if scale else ""),
                 fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_path, dpi=110)
