"""Figures and tables drawn from the leaderboard (pandas + matplotlib; seaborn, which pulls in
scipy.stats, is imported only by the figure that draws with it)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import pandas as pd  # noqa: E402

from aenbench.io import write_text, write_with  # noqa: E402
from aenbench.metric_registry import column_list  # noqa: E402
from aenbench.tables import closest_row, markdown_table, mean_range, seed_summary  # noqa: E402

FAMILY_ORDER = ["AEN", "AL", "EN", "L1", "TopK", "TopK-AuxK", "Gated", "JumpReLU", "BatchTopK"]


def family_palette(families: list[str]) -> dict[str, tuple[float, float, float]]:
    """A colour per family, in :data:`FAMILY_ORDER`: matplotlib's tab10, cycled (the colours of
    ``seaborn.color_palette("tab10")``)."""
    ordered = [f for f in FAMILY_ORDER if f in families] + sorted(f for f in families if f not in FAMILY_ORDER)
    tab10 = matplotlib.colormaps["tab10"].colors
    return {f: tuple(float(c) for c in tab10[i % len(tab10)][:3]) for i, f in enumerate(ordered)}


#: y-axis labels of the dead/EV-vs-L0 panels (metric_registry list ``dead_ev``)
AXIS_LABELS = {"dead_pct": "dead latents (%)", "EV": "explained variance"}


def dataset_title(dataset: str) -> str:
    return f"ρ = {dataset[3:]}" if dataset.startswith("rho") else dataset


def synthetic_dead_ev_vs_l0(leaderboard: pd.DataFrame, out_path: str | Path) -> None:
    """Two panels per dataset (rows): dead % vs L0 and EV vs L0, one colour per family."""
    import seaborn as sns

    df = leaderboard[leaderboard["track"] == "synthetic"]
    datasets = sorted(df["dataset"].unique())
    if not datasets:
        raise ValueError("the leaderboard has no synthetic rows to plot")
    palette = family_palette(sorted(df["family"].unique()))
    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.2 * len(datasets)), squeeze=False)
    for row, dataset in enumerate(datasets):
        sub = df[df["dataset"] == dataset]
        for col, metric in enumerate(column_list("dead_ev")):
            label = AXIS_LABELS[metric]
            ax = axes[row, col]
            sns.scatterplot(data=sub, x="L0", y=metric, hue="family", palette=palette, ax=ax,
                            s=40, legend=(row == 0 and col == 1))
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_ylabel(label)
            ax.set_title(f"{dataset_title(dataset)}: {label} vs L0", fontsize=10)
            if metric == "dead_pct":
                ax.set_ylim(-3, 103)
    if axes[0, 1].get_legend() is not None:
        sns.move_legend(axes[0, 1], "upper left", bbox_to_anchor=(1.02, 1), title="family")
    fig.tight_layout()
    write_with(out_path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def teacher_table(diagnostics: list[dict], out_path: str | Path) -> pd.DataFrame:
    """Per-dataset teacher diagnostics (mean/max |Gram|, E λ_min, E cond, IRC)."""
    rows = [{"dataset": d["dataset"], "rho": d["spec"]["rho"], "n": d["spec"]["n"], "m": d["spec"]["m"],
             "k": d["spec"]["k"], **d["diagnostics"]} for d in diagnostics]
    df = pd.DataFrame(rows).sort_values("rho").reset_index(drop=True)
    write_with(out_path, lambda tmp: df.to_csv(tmp, index=False))
    return df


# --------------------------------------------------------------------------- LLM track

LLM_TABLE_METRICS = column_list("llm_target_l0")
SEED_KEYS = ["dataset", "family", "params"]  # a config of the LLM track


def llm_dead_ev_vs_l0(leaderboard: pd.DataFrame, out_path: str | Path) -> None:
    """Dead % and EV vs L0 on LLM activations: one point per config at its seed mean,
    with [min, max] over seeds as error bars, one colour per family."""
    df = leaderboard[(leaderboard["track"] == "llm") & (leaderboard.get("source", "ours") == "ours")]
    if df.empty:
        raise ValueError("the leaderboard has no LLM rows to plot")
    summ = seed_summary(df, ["L0", *column_list("dead_ev")], SEED_KEYS)
    palette = family_palette(sorted(summ["family"].unique()))
    datasets = sorted(summ["dataset"].unique())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.4 * len(datasets)), squeeze=False)
    for row, dataset in enumerate(datasets):
        sub = summ[summ["dataset"] == dataset]
        for col, metric in enumerate(column_list("dead_ev")):
            label = AXIS_LABELS[metric]
            ax = axes[row, col]
            for family, fam in sub.groupby("family"):
                ax.errorbar(
                    fam["L0_mean"], fam[f"{metric}_mean"],
                    xerr=[fam["L0_mean"] - fam["L0_min"], fam["L0_max"] - fam["L0_mean"]],
                    yerr=[fam[f"{metric}_mean"] - fam[f"{metric}_min"], fam[f"{metric}_max"] - fam[f"{metric}_mean"]],
                    fmt="o", color=palette[family], label=family, capsize=3, ms=5,
                )
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_xlabel("L0 (seed mean)")
            ax.set_ylabel(label)
            ax.set_title(f"{dataset}", fontsize=9)
    axes[0, 1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), title="family")
    fig.tight_layout()
    write_with(out_path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def llm_target_l0_table(
    leaderboard: pd.DataFrame, paper: pd.DataFrame | None, targets: list[int], out_csv: str | Path, out_md: str | Path
) -> pd.DataFrame:
    """At each target L0, per family the config whose seed-mean L0 is closest; mean [min, max]
    over seeds. The paper's Pythia-70M rows (``paper``) are listed beside ours."""
    df = leaderboard[(leaderboard["track"] == "llm") & (leaderboard.get("source", "ours") == "ours")]
    summ = seed_summary(df, LLM_TABLE_METRICS, SEED_KEYS)
    rows = []
    for target in targets:
        for (dataset, family), fam in summ.groupby(["dataset", "family"]):
            best = closest_row(fam, "L0_mean", target)
            row = {"target_L0": target, "source": "ours", "dataset": dataset, "family": family,
                   "config": best["params"], "n_seeds": int(best["n_seeds"])}
            for m in LLM_TABLE_METRICS:
                if f"{m}_mean" in best:
                    row[m] = best[f"{m}_mean"]
                    row[f"{m}_min"], row[f"{m}_max"] = best[f"{m}_min"], best[f"{m}_max"]
            rows.append(row)
    ours = pd.DataFrame(rows)
    table = ours
    if paper is not None and not paper.empty:
        # the paper's X_mean columns are X, as in its leaderboard rows
        p = paper.rename(columns={"model": "family", **{c: c[: -len("_mean")] for c in paper.columns
                                                       if c.endswith("_mean")}})
        p["source"], p["dataset"] = "paper", "pythia-70m-deduped:blocks.3.hook_resid_post"
        table = pd.concat([ours, p], ignore_index=True, sort=False)
    write_with(out_csv, lambda tmp: table.to_csv(tmp, index=False))
    body = []
    for _, r in table.iterrows():
        spread = r["source"] == "paper" or (r.get("n_seeds", 1) or 1) > 1
        cells = [mean_range(r.get(m, float("nan")), r.get(f"{m}_min", float("nan")), r.get(f"{m}_max", float("nan")),
                            spread) for m in LLM_TABLE_METRICS]
        body.append([r["target_L0"], r["source"], r["dataset"], r["family"], r["config"], *cells])
    header = ["target L0", "source", "dataset", "family", "config", *LLM_TABLE_METRICS]
    write_text(out_md, markdown_table(header, body) + "\n")
    return table
