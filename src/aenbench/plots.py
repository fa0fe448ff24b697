"""Figures and tables drawn from the leaderboard (pandas + seaborn/matplotlib)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from aenbench.io import write_with  # noqa: E402

FAMILY_ORDER = ["AEN", "AL", "EN", "L1", "TopK", "TopK-AuxK", "Gated", "JumpReLU", "BatchTopK"]


def family_palette(families: list[str]) -> dict[str, tuple[float, float, float]]:
    ordered = [f for f in FAMILY_ORDER if f in families] + sorted(f for f in families if f not in FAMILY_ORDER)
    return dict(zip(ordered, sns.color_palette("tab10", n_colors=max(len(ordered), 1))))


def _dataset_title(dataset: str) -> str:
    return f"ρ = {dataset[3:]}" if dataset.startswith("rho") else dataset


def synthetic_dead_ev_vs_l0(leaderboard: pd.DataFrame, out_path: str | Path) -> None:
    """Two panels per dataset (rows): dead % vs L0 and EV vs L0, one colour per family."""
    df = leaderboard[leaderboard["track"] == "synthetic"]
    datasets = sorted(df["dataset"].unique())
    if not datasets:
        raise ValueError("the leaderboard has no synthetic rows to plot")
    palette = family_palette(sorted(df["family"].unique()))
    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.2 * len(datasets)), squeeze=False)
    for row, dataset in enumerate(datasets):
        sub = df[df["dataset"] == dataset]
        for col, (metric, label) in enumerate([("dead_pct", "dead latents (%)"), ("EV", "explained variance")]):
            ax = axes[row, col]
            sns.scatterplot(data=sub, x="L0", y=metric, hue="family", palette=palette, ax=ax,
                            s=40, legend=(row == 0 and col == 1))
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_ylabel(label)
            ax.set_title(f"{_dataset_title(dataset)}: {label} vs L0", fontsize=10)
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

LLM_TABLE_METRICS = ["L0", "dead_pct", "EV", "coherence_p50", "shrinkage", "firing_entropy_norm",
                     "ce_recovered_zero", "ce_recovered_mean", "kl_with_sae"]


def seed_summary(df: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Per (dataset, family, params): mean, min and max over seeds of each metric."""
    present = [m for m in metrics if m in df.columns]
    g = df.groupby(["dataset", "family", "params"])[present]
    out = g.agg(["mean", "min", "max"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    out["n_seeds"] = df.groupby(["dataset", "family", "params"])["seed"].nunique()
    return out.reset_index()


def llm_dead_ev_vs_l0(leaderboard: pd.DataFrame, out_path: str | Path) -> None:
    """Dead % and EV vs L0 on LLM activations: one point per config at its seed mean,
    with [min, max] over seeds as error bars, one colour per family."""
    df = leaderboard[(leaderboard["track"] == "llm") & (leaderboard.get("source", "ours") == "ours")]
    if df.empty:
        raise ValueError("the leaderboard has no LLM rows to plot")
    summ = seed_summary(df, ["L0", "dead_pct", "EV"])
    palette = family_palette(sorted(summ["family"].unique()))
    datasets = sorted(summ["dataset"].unique())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.4 * len(datasets)), squeeze=False)
    for row, dataset in enumerate(datasets):
        sub = summ[summ["dataset"] == dataset]
        for col, (metric, label) in enumerate([("dead_pct", "dead latents (%)"), ("EV", "explained variance")]):
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
    summ = seed_summary(df, LLM_TABLE_METRICS)
    rows = []
    for target in targets:
        for (dataset, family), fam in summ.groupby(["dataset", "family"]):
            best = fam.iloc[(fam["L0_mean"] - target).abs().argsort().iloc[0]]
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
        p = paper.rename(columns={"model": "family", "L0_mean": "L0", "dead_pct_mean": "dead_pct", "EV_mean": "EV",
                                  "shrinkage_mean": "shrinkage"})
        p["source"], p["dataset"] = "paper", "pythia-70m-deduped:blocks.3.hook_resid_post"
        table = pd.concat([ours, p], ignore_index=True, sort=False)
    write_with(out_csv, lambda tmp: table.to_csv(tmp, index=False))
    lines = ["| target L0 | source | dataset | family | config | " + " | ".join(LLM_TABLE_METRICS) + " |",
             "|" + "---|" * (5 + len(LLM_TABLE_METRICS))]
    for _, r in table.iterrows():
        spread = r["source"] == "paper" or (r.get("n_seeds", 1) or 1) > 1
        cells = []
        for m in LLM_TABLE_METRICS:
            mean, lo, hi = r.get(m, float("nan")), r.get(f"{m}_min", float("nan")), r.get(f"{m}_max", float("nan"))
            if pd.isna(mean):
                cells.append("")
            elif spread and not pd.isna(lo):
                cells.append(f"{mean:.3g} [{lo:.3g}, {hi:.3g}]")
            else:
                cells.append(f"{mean:.3g}")
        lines.append(f"| {r['target_L0']} | {r['source']} | {r['dataset']} | {r['family']} | {r['config']} | "
                     + " | ".join(cells) + " |")
    from aenbench.io import write_text

    write_text(out_md, "\n".join(lines) + "\n")
    return table
