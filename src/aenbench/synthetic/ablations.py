"""Ablations of the AEN recipe (method.md §6): one base SAE, one part changed per arm.

An ablation in the config names a base family (its architecture and fixed values, after the
architecture's ``arch_defaults``), values fixed for every arm (e.g. one λ₁) and its arms, each a
set of overrides::

    ablations:
      warmup:
        base: AEN
        fixed: {l1_coefficient: 0.004, l2_coefficient: 0.0004}
        datasets: [rho0.5, rho0.9]
        arms: {"T_w=0": {warmup_steps: 0}, "T_w=1000": {}}

Every arm is trained through the same path as the families (``synthetic.track.train_family``:
sae-lens's trainer, same teacher data, seeds and budget) and evaluated the same way, so an arm
differs from another only in its overrides. ``snakemake ablation_<name> --cores`` builds one
ablation alone: its SAEs, ``figures/ablations/<name>.{csv,md,png}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from aenbench.io import atomic_dir, write_text, write_with
from aenbench.metric_registry import column_list
from aenbench.tables import markdown_table, seed_summary

SUMMARY_METRICS = column_list("ablation_summary")


def arm_family(ablation: Mapping[str, Any], arm: str, families: Mapping[str, Any]) -> dict[str, Any]:
    """The family definition of one arm: base family's architecture and fixed values, then the
    ablation's ``fixed``, then the arm's overrides (no grid: one SAE per seed)."""
    base = families[ablation["base"]]
    fixed = {**(base.get("fixed") or {}), **(ablation.get("fixed") or {}), **(ablation["arms"][arm] or {})}
    return {"architecture": base["architecture"], "description": f"{ablation['base']} with {arm}", "fixed": fixed}


def train_ablation(
    *, dictionary_path: str | Path, out_dir: str | Path, dataset: str, name: str, ablation: Mapping[str, Any],
    families: Mapping[str, Any], seeds: Sequence[int], spec: dict[str, Any], train: dict[str, Any],
    arch_defaults: dict[str, dict[str, Any]], device: str = "auto",
) -> None:
    """The train stage of every arm of ``ablation`` on one dataset: ``out_dir/<arm>/seed~<s>/``
    (built aside, renamed into place; an arm already in the store is not retrained).
    Checkpoints go next to the families' (``training.checkpoint_root``)."""
    from aenbench.synthetic.track import spiked_data, train_runs
    from aenbench.training import checkpoint_root

    data = spiked_data(dictionary_path, spec, {})
    ckpt = checkpoint_root(out_dir)
    with atomic_dir(out_dir) as tmp:
        for arm in ablation["arms"]:
            train_runs(data=data, out_dir=tmp / arm, dataset=dataset, family_name=f"{name}:{arm}",
                       family=arm_family(ablation, arm, families), runs=[(f"seed~{s}", {"seed": s}) for s in seeds],
                       train=train, arch_defaults=arch_defaults, device=device, checkpoint_dir=ckpt / arm)


def evaluate_ablation(*, dictionary_path: str | Path, trained_dir: str | Path, out_dir: str | Path, dataset: str,
                      arms: Sequence[str], spec: dict[str, Any], evaluation: dict[str, Any],
                      device: str = "auto") -> None:
    """The evaluation stage of an ablation: ``out_dir/<arm>/seed~<s>/{sae/, metrics.json}``."""
    from aenbench.synthetic.track import evaluate_runs, spiked_data

    data = spiked_data(dictionary_path, spec, evaluation)
    with atomic_dir(out_dir) as tmp:
        for arm in arms:
            evaluate_runs(data=data, trained_dir=Path(trained_dir) / arm, out_dir=tmp / arm, dataset=dataset,
                          device=device)


def summary(rows: pd.DataFrame, arms: Sequence[str]) -> pd.DataFrame:
    """Per (dataset, arm): mean over seeds of :data:`SUMMARY_METRICS` (present ones) and the seed count."""
    df = rows.assign(arm=rows["family"].str.split(":", n=1).str[1])
    table = seed_summary(df, SUMMARY_METRICS, ["dataset", "arm"], stats=("mean",))
    table = table.rename(columns={f"{m}_mean": m for m in SUMMARY_METRICS})
    order = {a: i for i, a in enumerate(arms)}
    return table.sort_values(["dataset", "arm"], key=lambda s: s.map(order) if s.name == "arm" else s).reset_index(drop=True)


def write_summary(table: pd.DataFrame, name: str, description: str, out_csv: str | Path, out_md: str | Path,
                  out_png: str | Path, rows: pd.DataFrame | None = None, base_dir: str | Path = ".") -> Any:
    """``<name>.csv`` and ``.md`` (the :func:`summary` table) and ``<name>.png``: one panel per
    metric of ``ablation_plot``, a bar per (arm, dataset) at the seed mean with [min, max] bars over
    the seeds and each seed's value as a dot (from ``rows``, the per-SAE leaderboard rows; the
    summary's means alone without them), the legend beside the last panel and the scale
    (:func:`aenbench.plots.scale_subtitle`) in the subtitle. Returns the (closed) figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from aenbench.metric_registry import METRICS, arrow
    from aenbench.plots import save_figure, scale_subtitle

    write_with(out_csv, lambda tmp: table.to_csv(tmp, index=False))
    cols = [c for c in ["dataset", "arm", *SUMMARY_METRICS, "n_seeds"] if c in table.columns]
    body = markdown_table(cols, ([f"{r[c]:.3g}" if isinstance(r[c], float) else r[c] for c in cols]
                                 for _, r in table.iterrows()))
    write_text(out_md, f"Ablation `{name}`: {description}\n\n{body}\n")
    per_seed = (rows.assign(arm=rows["family"].str.split(":", n=1).str[1]) if rows is not None else table)
    arms = list(dict.fromkeys(table["arm"]))
    metrics = [m for m in column_list("ablation_plot") if m in per_seed.columns]
    n_seeds = int(table["n_seeds"].max()) if "n_seeds" in table else 1
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics) + 1.4, 3.8), squeeze=False)
    for ax in axes[0]:
        ax.set_gid("panel")
    for ax, metric in zip(axes[0], metrics):
        data = per_seed.dropna(subset=[metric])
        sns.barplot(data=data, x="arm", y=metric, hue="dataset", order=arms, estimator="mean",
                    errorbar=("pi", 100) if n_seeds > 1 else None, capsize=0.15, err_kws={"linewidth": 1},
                    ax=ax, legend=ax is axes[0, -1])
        if rows is not None and n_seeds > 1:
            sns.stripplot(data=data, x="arm", y=metric, hue="dataset", order=arms, dodge=True, palette="dark:black",
                          size=3, ax=ax, legend=False)
        ax.tick_params(axis="x", rotation=35, labelsize=8)
        ax.set_xlabel("")
        ax.set_ylabel(metric + arrow(METRICS[metric].higher_is_better) if metric in METRICS else metric)
    legend = axes[0, -1].get_legend()
    if legend is not None:
        handles, labels = axes[0, -1].get_legend_handles_labels()
        legend.remove()
        axes[0, -1].legend(handles[:len(set(per_seed["dataset"]))], labels[:len(set(per_seed["dataset"]))],
                           title="dataset", loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    spread = (f"bars: mean over {n_seeds} seeds, whiskers [min, max], dots the seeds" if n_seeds > 1
              else "one seed per arm: no spread")
    scale = scale_subtitle(rows, base_dir) if rows is not None else ""
    fig.suptitle(f"ablation {name}: {description} ({spread})" + (f"\n{scale}" if scale else ""), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_png, dpi=110)
