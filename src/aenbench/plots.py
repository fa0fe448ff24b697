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
