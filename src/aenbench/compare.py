"""Comparing a variant (or a family) with the leaderboard families at matched L0.

The unit of comparison is a *config*: one point of a family's grid, summarised over its seeds
(mean, min, max of every metric). For every config of the variant and every family compared
with, the family config whose seed-mean L0 is closest to the variant config's is its match.
Per metric with a direction (``aenbench.metrics.METRICS``: ↑ or ↓), the verdict is:

* ``within seed spread`` when the variant's seed mean lies inside the matched family config's
  [min, max] over seeds;
* otherwise ``better`` or ``worse``, by the metric's direction.

With one seed the spread is a single value, so any difference is better or worse: the verdicts
are a reading aid, not a significance test. Metrics without a direction get no verdict, and a
match whose L0 is more than ``l0_tolerance`` (relative, default 25 %) away from the variant's gets
``L0 not matched`` instead: a family with no config near that L0 is not beaten or beating.

Imports nothing heavy at module level (pandas); plotting and sae-lens are imported on use.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import re
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

BETTER = "better"
WORSE = "worse"
WITHIN = "within seed spread"
NO_DIRECTION = "—"
MISSING = "n/a"
NOT_MATCHED = "L0 not matched"
VERDICTS = (BETTER, WORSE, WITHIN, NOT_MATCHED)

# metrics shown in the markdown report unless the variant's `compare.metrics` says otherwise
DEFAULT_REPORT_METRICS = ("dead_pct", "EV", "MSE", "MCC", "support_f1")
CONFIG_KEYS = ["track", "dataset", "family", "params"]
L0_TOLERANCE = 0.25  # relative L0 gap above which a match gets no verdict


# --------------------------------------------------------------------------- plugins


class PluginError(RuntimeError):
    """A user's SAE plugin file could not be imported or did not register its architecture."""


def resolve_plugin(path: str | Path, search: Sequence[str | Path] = ()) -> Path:
    """``path`` as given when absolute or present from the working directory; otherwise the
    first of ``search`` (e.g. the aenbench checkout) that holds it."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    for base in search:
        candidate = Path(base) / p
        if candidate.exists():
            return candidate
    return p


def load_plugin(path: str | Path, architecture: str | None = None) -> ModuleType:
    """Import the user's Python file at ``path`` (which registers an architecture with
    sae-lens) and check that ``architecture`` is now registered for training and loading."""
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"SAE plugin file {str(path)!r} not found (named by a variant's `plugin:` in the config)")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    name = f"aenbench_plugin_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"SAE plugin {str(path)!r} is not a Python file that can be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file runs
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            del sys.modules[name]
            raise PluginError(
                f"importing the SAE plugin {str(path)!r} failed:\n{traceback.format_exc()}"
            ) from err
    if architecture is not None:
        from sae_lens.registry import SAE_CLASS_REGISTRY, SAE_TRAINING_CLASS_REGISTRY

        problems = []
        if architecture not in SAE_TRAINING_CLASS_REGISTRY:
            problems.append("sae_lens.register_sae_training_class (to train it)")
        if architecture not in SAE_CLASS_REGISTRY:
            problems.append("sae_lens.register_sae_class (to load the saved SAE)")
        if problems:
            raise PluginError(
                f"the SAE plugin {str(path)!r} was imported but did not register architecture "
                f"{architecture!r} with " + " or ".join(problems) + ". Registered for training: "
                + ", ".join(sorted(SAE_TRAINING_CLASS_REGISTRY))
            )
    return module


# --------------------------------------------------------------------------- verdicts


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
    """One row per (track, dataset, family, params): mean/min/max over seeds of each metric."""
    metrics = list(dict.fromkeys(["L0", *metrics]))
    grouped = rows.groupby(CONFIG_KEYS, sort=True, dropna=False)
    stats = grouped[metrics].agg(["mean", "min", "max"])
    stats.columns = [f"{m}_{s}" for m, s in stats.columns]
    stats["n_seeds"] = grouped["seed"].nunique(dropna=True)
    stats["seeds"] = grouped["seed"].apply(lambda s: ",".join(str(int(v)) for v in sorted(s.dropna().unique())))
    return stats.reset_index()


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
            gap = (cands["L0_mean"] - v["L0_mean"]).abs()
            ref = cands.loc[gap.idxmin()]  # first of equally close configs (sorted by params)
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


# --------------------------------------------------------------------------- Pareto plot


def pareto_front(points: pd.DataFrame, y: str, higher_is_better: bool, x: str = "L0") -> pd.DataFrame:
    """Points not dominated by one with lower-or-equal L0 and an at-least-as-good ``y``."""
    pts = points.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, not higher_is_better])
    keep, best = [], -math.inf
    for idx, value in pts[y].items():
        score = value if higher_is_better else -value
        if score > best:
            keep.append(idx)
            best = score
    return pts.loc[keep]


def pareto_plot(
    rows: pd.DataFrame,
    name: str,
    against: Sequence[str],
    out_path: str | Path,
    directions: Mapping[str, bool | None],
    metrics: Sequence[str] = ("dead_pct", "EV"),
) -> None:
    """One row of panels per dataset, one panel per metric vs L0: every SAE of the compared
    families (a colour each, its Pareto front as a line) with ``name`` overlaid in black."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aenbench.io import write_with
    from aenbench.plots import family_palette

    rows = comparable_rows(rows)
    rows = rows[rows["family"].isin([name, *against])]
    datasets = sorted(rows.loc[rows["family"] == name, "dataset"].unique())
    if not datasets:
        raise ValueError(f"no rows of {name!r} to plot")
    palette = family_palette(list(against))
    log_x = bool((rows["L0"] > 0).all())
    fig, axes = plt.subplots(len(datasets), len(metrics), figsize=(5 * len(metrics), 3.4 * len(datasets)), squeeze=False)
    for r, dataset in enumerate(datasets):
        sub = rows[rows["dataset"] == dataset]
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            hib = bool(directions.get(metric))
            for family in [*against, name]:
                pts = sub[sub["family"] == family]
                if pts.empty:
                    continue
                front = pareto_front(pts, metric, hib)
                is_variant = family == name
                color = "black" if is_variant else palette[family]
                ax.scatter(pts["L0"], pts[metric], color=color, marker="*" if is_variant else "o",
                           s=110 if is_variant else 28, alpha=1.0 if is_variant else 0.6, zorder=3 if is_variant else 2,
                           label=f"{family} (variant)" if is_variant else family)
                ax.plot(front["L0"], front[metric], color=color, lw=2.0 if is_variant else 1.0,
                        ls="-" if is_variant else "--", zorder=3 if is_variant else 1)
            if log_x:
                ax.set_xscale("log")
            arrow = {True: "↑", False: "↓"}.get(directions.get(metric), "")
            ax.set_xlabel("L0")
            ax.set_ylabel(f"{metric} {arrow}")
            title = f"ρ = {dataset[3:]}" if dataset.startswith("rho") else dataset
            ax.set_title(f"{title}: {metric} vs L0", fontsize=10)
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, title="lines: Pareto fronts")
    fig.tight_layout()
    write_with(out_path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


# --------------------------------------------------------------------------- text output


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _delta(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:+.3g}"


def _arrow(directions: Mapping[str, bool | None], m: str) -> str:
    return {True: " ↑", False: " ↓"}.get(directions.get(m), "")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_markdown(table: pd.DataFrame, metrics: Sequence[str], directions: Mapping[str, bool | None]) -> str:
    counts = verdict_counts(table, metrics)
    header = ["family", *[f"{m}{_arrow(directions, m)}" for m in metrics]]
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
            header = ["family", "matched config", "L0", *[f"{m}{_arrow(directions, m)}" for m in metrics]]
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
        "`aenbench.metrics.METRICS`): *better* or *worse* when the variant's mean lies outside the "
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
    lines += [f"- `{m}`{_arrow(directions, m)}: {meanings.get(m, '')}" for m in metrics]
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
            row[f"{m}{_arrow(directions, m)}"] = (
                f"{_num(r[f'{m}_variant'])} vs {_num(r[f'{m}_family'])} {short[r[f'{m}_verdict']]}".rstrip()
            )
        shown.append(row)
    return pd.DataFrame(shown).to_string(index=False)
