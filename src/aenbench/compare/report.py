"""The comparison's outputs: ``results/compare/<variant>.md`` (:func:`render_report`), the CLI's
fixed-width table (:func:`terminal_table`) and ``figures/compare/<variant>_pareto.png``
(:func:`pareto_plot`), from a table of :func:`aenbench.compare.matching.matched_l0`.

pandas only at import; matplotlib is imported by :func:`pareto_plot`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from aenbench.compare.matching import (
    BETTER, MISSING, NO_DIRECTION, NOT_MATCHED, WITHIN, WORSE, comparable_rows, verdict_counts,
)
from aenbench.metric_registry import COLUMN_LISTS, L0_TOLERANCE, arrow
from aenbench.tables import markdown_table, pareto_front


def pareto_plot(
    rows: pd.DataFrame,
    name: str,
    against: Sequence[str],
    out_path: str | Path,
    directions: Mapping[str, bool | None],
    metrics: Sequence[str] = COLUMN_LISTS["dead_ev"],
    base_dir: str | Path = ".",
) -> Any:
    """One row of panels per dataset, one panel per metric vs L0: every SAE of the compared
    families in its family's colour and marker (:func:`aenbench.plots.family_style`, the same as in
    every figure), its Pareto front dashed, with ``name`` overlaid as black stars and a solid front.
    The L0 axis is a labelled log axis (:func:`aenbench.plots.readable_log_axis`) when every L0 is
    positive; the legend lists the families drawn; the subtitle gives the scale
    (:func:`aenbench.plots.scale_subtitle`). Returns the (closed) figure."""
    from aenbench.plots import (
        dataset_title, family_style, legend_handle, readable_log_axis, save_figure, scale_subtitle,
    )
    import matplotlib.pyplot as plt

    rows = comparable_rows(rows)
    rows = rows[rows["family"].isin([name, *against])]
    datasets = sorted(rows.loc[rows["family"] == name, "dataset"].unique())
    if not datasets:
        raise ValueError(f"no rows of {name!r} to plot")
    style = family_style(list(against))
    log_x = bool((rows["L0"] > 0).all())
    drawn: list[str] = []
    fig, axes = plt.subplots(len(datasets), len(metrics), figsize=(5 * len(metrics), 3.4 * len(datasets)), squeeze=False)
    for r, dataset in enumerate(datasets):
        sub = rows[rows["dataset"] == dataset]
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            hib = bool(directions.get(metric))
            for family in [*against, name]:
                pts = sub[sub["family"] == family].dropna(subset=["L0", metric])
                if pts.empty:
                    continue
                front = pareto_front(pts, metric, hib)
                is_variant = family == name
                if family not in drawn:
                    drawn.append(family)
                if is_variant:
                    ax.scatter(pts["L0"], pts[metric], color="black", marker="*", s=120, zorder=4,
                               gid=f"{family}|variant")
                    ax.plot(front["L0"], front[metric], color="black", lw=2.0, zorder=4)
                else:
                    st = style[family]
                    ax.scatter(pts["L0"], pts[metric], color=st.color, marker=st.marker, s=34, alpha=0.8,
                               edgecolors="black", linewidths=0.4, zorder=2, gid=f"{family}|run")
                    ax.plot(front["L0"], front[metric], color=st.color, lw=1.0, ls="--", zorder=1)
            if log_x:
                readable_log_axis(ax, "x")
            ax.set_xlabel("L0")
            ax.set_ylabel(f"{metric}{arrow(directions.get(metric))}")
            ax.set_title(f"{dataset_title(dataset)}: {metric} vs L0", fontsize=10)
    from matplotlib.lines import Line2D

    handles = [legend_handle(style[f], f, line=True) for f in against if f in drawn]
    for h in handles:
        h.set_linestyle("--")
    handles.append(Line2D([], [], color="black", marker="*", ms=10, lw=2.0, label=f"{name} (variant)"))
    axes[0, -1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8,
                       title="lines: Pareto fronts")
    fig.suptitle(f"{name} against {', '.join(f for f in against if f in drawn)}: every SAE a point\n"
                 f"{scale_subtitle(rows, base_dir)}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_path, dpi=110)


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _delta(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:+.3g}"


def summary_markdown(table: pd.DataFrame, metrics: Sequence[str], directions: Mapping[str, bool | None]) -> str:
    counts = verdict_counts(table, metrics)
    header = ["family", *[f"{m}{arrow(directions.get(m))}" for m in metrics]]
    body = []
    for family, sub in counts.groupby("family", sort=False):
        cells = []
        for m in metrics:
            c = sub[sub["metric"] == m].iloc[0]
            cell = f"{c[BETTER]} better · {c[WORSE]} worse · {c[WITHIN]} within"
            cells.append(cell + (f" ({c[NOT_MATCHED]} L0 not matched)" if c[NOT_MATCHED] else ""))
        body.append([family, *cells])
    return markdown_table(header, body)


def detail_markdown(table: pd.DataFrame, metrics: Sequence[str], directions: Mapping[str, bool | None]) -> str:
    """Per dataset and variant config: the variant's row, then each family's matched config."""
    parts = []
    for dataset, by_dataset in table.groupby("dataset", sort=True):
        parts.append(f"## {dataset}\n")
        for params, sub in by_dataset.groupby("variant_params", sort=True):
            first = sub.iloc[0]
            parts.append(
                f"### `{first['variant']}` {params} — L0 {_num(first['variant_L0'])} "
                f"(mean of {first['variant_n_seeds']} seed(s))\n"
            )
            header = ["family", "matched config", "L0", *[f"{m}{arrow(directions.get(m))}" for m in metrics]]
            body = [[f"**{first['variant']}**", params, _num(first["variant_L0"]),
                     *[_num(first[f"{m}_variant"]) for m in metrics]]]
            for r in sub.to_dict("records"):
                flag = "" if r["L0_matched"] else " ⚠"
                cells = [
                    f"{_num(r[f'{m}_family'])} (Δ {_delta(r[f'{m}_delta'])}, {r[f'{m}_verdict']})" for m in metrics
                ]
                body.append([r["family"], r["family_params"], f"{_num(r['family_L0'])}{flag}", *cells])
            parts.append(markdown_table(header, body) + "\n")
    return "\n".join(parts)


def render_report(
    name: str,
    table: pd.DataFrame,
    directions: Mapping[str, bool | None],
    meanings: Mapping[str, str],
    *,
    metrics: Sequence[str],
    variant: Mapping[str, Any],
    against: Sequence[str],
    datasets: Sequence[str],
    budget: Mapping[str, Any],
    figure: str | None = None,
    csv: str | None = None,
    l0_tolerance: float = L0_TOLERANCE,
) -> str:
    """The markdown report of ``results/compare/<name>.md``."""
    fixed = ", ".join(f"{k}={v}" for k, v in (variant.get("fixed") or {}).items()) or "—"
    grid = "; ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in (variant.get("grid") or {}).items()) or "—"
    plugin = f" (plugin `{variant['plugin']}`)" if variant.get("plugin") else " (sae-lens built-in)"
    meta = [
        ["architecture", f"`{variant['architecture']}`{plugin}"],
        ["fixed", fixed],
        ["grid", grid],
        ["compared with", ", ".join(against) + f" (track {budget['track']}, source = ours)"],
        ["datasets", ", ".join(datasets)],
        ["seeds", budget["seeds"]],
        ["budget per SAE", f"{budget['steps']:,} steps × {budget['batch_size']:,} = {budget['samples_seen']:,} samples, "
                           "the same for every row compared (checked)"],
    ]
    lines = [f"# Variant `{name}` against the leaderboard", ""]
    if variant.get("description"):
        lines += [variant["description"].strip(), ""]
    lines += [markdown_table(["", ""], meta), ""]
    lines += [
        "**How to read this.** For every config of the variant (its seed mean) and every family, the "
        "family config whose seed-mean L0 is closest is the match. Δ = variant − family (seed means). "
        "Verdicts follow each metric's direction (↑ higher is better, ↓ lower is better; "
        "`aenbench.metric_registry.METRICS`): *better* or *worse* when the variant's mean lies outside the "
        "family config's [min, max] over seeds, *within seed spread* when inside it. "
        + ("With one seed that spread is a single value, so any difference counts as better or worse: "
           "the verdicts are not significance tests. " if int(budget["n_seeds"]) == 1 else "")
        + f"⚠ marks matches whose L0 differs from the variant's by more than {l0_tolerance:.0%}: "
        "the family has no config near that L0, so those rows get no verdict (*L0 not matched*).",
        "",
    ]
    if figure:
        lines += [f"![Pareto fronts: {name} over the families]({figure})", ""]
    lines += ["## Verdicts", "", "Counts over datasets and variant configs.", "",
              summary_markdown(table, metrics, directions), ""]
    lines += ["Metrics:", ""]
    lines += [f"- `{m}`{arrow(directions.get(m))}: {meanings.get(m, '')}" for m in metrics]
    lines += [""]
    if csv:
        lines += [f"Every metric with a direction, with the family's min/max over seeds: `{csv}`.", ""]
    lines += [detail_markdown(table, metrics, directions)]
    return "\n".join(lines).rstrip() + "\n"


def terminal_table(table: pd.DataFrame, metrics: Sequence[str], directions: Mapping[str, bool | None]) -> str:
    """The matched-L0 table as fixed-width text (for the CLI)."""
    shown = []
    for r in table.to_dict("records"):
        row = {
            "dataset": r["dataset"],
            r["variant"]: r["variant_params"],
            "L0": _num(r["variant_L0"]),
            "vs family": r["family"],
            "config": r["family_params"],
            "L0 ": _num(r["family_L0"]) + ("" if r["L0_matched"] else " ⚠"),
        }
        for m in metrics:
            short = {BETTER: "better", WORSE: "worse", WITHIN: "within", NO_DIRECTION: "", MISSING: "n/a",
                     NOT_MATCHED: "(L0 not matched)"}
            row[f"{m}{arrow(directions.get(m))}"] = (
                f"{_num(r[f'{m}_variant'])} vs {_num(r[f'{m}_family'])} {short[r[f'{m}_verdict']]}".rstrip()
            )
        shown.append(row)
    return pd.DataFrame(shown).to_string(index=False)
