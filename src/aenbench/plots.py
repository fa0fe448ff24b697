"""Figures and tables drawn from the leaderboard (pandas + matplotlib), and the helpers every
figure shares:

* :func:`family_style`: one colour and one marker per family, the same in every figure;
* :func:`readable_log_axis`: a log axis labelled however narrow its span (16–53 shows 20 … 50);
* :func:`dodge_factors`: coincident points of different families spread slightly along a log x;
* :func:`scale_subtitle`: the scale (teacher n, m, k; model and tokens; steps × batch; seeds) the
  figure's runs were made at, read from their leaderboard rows and records.

Every figure function returns its (closed) matplotlib figure, for the tests to inspect."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import pandas as pd  # noqa: E402

from aenbench.io import write_text, write_with  # noqa: E402
from aenbench.metric_registry import METRICS, arrow, column_list  # noqa: E402
from aenbench.tables import (  # noqa: E402
    closest_row, grid_rows, markdown_table, mean_range, replicates_of, seed_summary,
)

FAMILY_ORDER = ["AEN", "AL", "EN", "L1", "TopK", "TopK-AuxK", "Gated", "JumpReLU", "BatchTopK", "TopK-paper"]
#: a family's marker, by its place in :data:`FAMILY_ORDER` ("D" marks a replicate mean, "<" / ">"
#: a run beyond the axes: neither is a family's)
FAMILY_MARKERS = ["o", "s", "^", "v", "P", "X", "p", "h", "d", "*"]


class FamilyStyle(NamedTuple):
    color: tuple[float, float, float]
    marker: str


def family_style(families: Sequence[str]) -> dict[str, FamilyStyle]:
    """A colour and a marker per family, the same in every figure: family i of
    :data:`FAMILY_ORDER` gets tab10 colour i and marker i; any other family (a variant, an ablation
    arm) comes after them in sorted order, colours cycling with the marker shifted so no two
    families share both."""
    tab10 = matplotlib.colormaps["tab10"].colors
    others = sorted(f for f in dict.fromkeys(families) if f not in FAMILY_ORDER)
    out = {}
    for f in dict.fromkeys(families):
        i = FAMILY_ORDER.index(f) if f in FAMILY_ORDER else len(FAMILY_ORDER) + others.index(f)
        marker = FAMILY_MARKERS[(i + 3 * (i // len(tab10))) % len(FAMILY_MARKERS)]
        out[f] = FamilyStyle(tuple(float(c) for c in tab10[i % len(tab10)][:3]), marker)
    return out


def family_palette(families: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """The colour of :func:`family_style` per family (matplotlib's tab10, by :data:`FAMILY_ORDER`)."""
    return {f: s.color for f, s in family_style(families).items()}


#: y-axis labels of the dead/EV-vs-L0 panels (metric_registry list ``dead_ev``)
AXIS_LABELS = {"dead_pct": "dead latents (%)", "EV": "explained variance"}


def dataset_title(dataset: str) -> str:
    return f"ρ = {dataset[3:]}" if dataset.startswith("rho") else dataset


# --------------------------------------------------------------------------- shared drawing helpers


def log_ticks(lo: float, hi: float) -> tuple[list[float], bool]:
    """Major ticks of a log axis spanning [lo, hi] (lo > 0): the powers of ten if at least three fall
    inside, else 1, 2, 5 × 10^e, else 1, …, 9 × 10^e (at least two), else four evenly spaced values.
    The flag says the span exceeds three decades (label as 10^e rather than plain numbers)."""
    e_lo, e_hi = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for subs in ((1,), (1, 2, 5), tuple(range(1, 10))):
        ticks = [s * 10.0**e for e in range(e_lo, e_hi + 1) for s in subs if lo <= s * 10.0**e <= hi]
        if len(ticks) >= (3 if subs != tuple(range(1, 10)) else 2):
            return ticks, hi / lo > 1e3 and subs == (1,)
    return [t for t in ticker.MaxNLocator(nbins=4).tick_values(lo, hi) if lo <= t <= hi and t > 0], False


def readable_log_axis(ax: Any, axis: str = "x") -> None:
    """A log scale whose major ticks are labelled however narrow the span (:func:`log_ticks`: a
    16–53 span gets 20, 30, 40, 50), minor ticks unlabelled. Call it after drawing: it freezes the
    current limits."""
    getattr(ax, f"set_{axis}scale")("log")
    lo, hi = getattr(ax, f"get_{axis}lim")()
    getattr(ax, f"set_{axis}lim")(lo, hi)
    ticks, powers = log_ticks(lo, hi)
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(ticker.FixedLocator(ticks))
    target.set_major_formatter(ticker.LogFormatterMathtext() if powers
                               else ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_locator(ticker.LogLocator(base=10, subs=tuple(range(2, 10)), numticks=100))
    target.set_minor_formatter(ticker.NullFormatter())


def dodge_factors(x_N: Sequence[float], y_N: Sequence[float], y_span: float, step: float = 0.03,
                  tol: float = 0.015) -> list[float]:
    """Multiplicative offsets of log-axis x values that spread coincident points: points within
    ``tol`` decades in x and ``tol · y_span`` in y form a group (single linkage); the j-th of a group
    of g is moved by 10^(step · (j − (g − 1)/2)), in their given order. Others keep 1."""
    n = len(x_N)
    lx_N = [math.log10(x) if x > 0 else float("nan") for x in x_N]
    group_N = list(range(n))

    def root(i: int) -> int:
        while group_N[i] != i:
            i = group_N[i]
        return i

    for i in range(n):
        for j in range(i):
            if (abs(lx_N[i] - lx_N[j]) <= tol and abs(y_N[i] - y_N[j]) <= tol * max(y_span, 1e-12)):
                group_N[root(i)] = root(j)
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(root(i), []).append(i)
    out = [1.0] * n
    for idx in members.values():
        for j, i in enumerate(idx):
            out[i] = 10.0 ** (step * (j - (len(idx) - 1) / 2))
    return out


def _values(series: pd.Series) -> list[Any]:
    vals = pd.to_numeric(series, errors="coerce").dropna().unique()
    return sorted(int(v) if float(v).is_integer() else float(v) for v in vals)


def _join(vals: Sequence[Any]) -> str:
    return ", ".join(f"{v:,}" if isinstance(v, int) else f"{v:g}" for v in vals) if len(vals) else "?"


def first_record(rows: pd.DataFrame, base_dir: str | Path = ".") -> dict:
    """The first readable per-SAE record (``metrics_path``, relative to ``base_dir``) of ``rows``; {}
    when none is."""
    import json

    for path in rows.get("metrics_path", pd.Series(dtype=object)).dropna():
        try:
            with open(Path(base_dir) / str(path)) as f:
                return json.load(f)
        except (OSError, ValueError):
            continue
    return {}


def scale_subtitle(rows: pd.DataFrame, base_dir: str | Path = ".") -> str:
    """The scale the figure's runs were made at, from their leaderboard rows (and one per-SAE
    record for what the leaderboard lacks): the synthetic teacher's n, m, k (``teacher_*``), the
    SynthSAEBench teacher's features / dims, an LLM run's model, hook and token counts; the SAE
    width; steps × batch; the grid runs' count, seeds and teacher dictionary seeds, and those of the
    seed / teacher replicates (``replicate``). A smoke figure (n = 16, 300 steps) is then told
    from a paper-scale one."""
    parts = []
    record = first_record(rows, base_dir)
    run = record.get("run", {})
    cfg = record.get("sae_cfg_dict", {})
    teacher = run.get("teacher") or {}
    tracks = set(rows.get("track", pd.Series(dtype=object)).dropna())
    if "teacher_n" in rows and rows["teacher_n"].notna().any():
        parts.append(f"teacher n = {_join(_values(rows['teacher_n']))}, m = {_join(_values(rows['teacher_m']))}, "
                     f"k = {_join(_values(rows['teacher_k']))}")
    elif "num_features" in teacher:
        parts.append(f"teacher {teacher['num_features']:,} features in {teacher.get('hidden_dim', '?')} dims")
    if "llm" in tracks:
        models = sorted({str(d).split(":")[0] for d in rows["dataset"].dropna()})
        hooks = sorted({str(d).split(":", 1)[1] for d in rows["dataset"].dropna() if ":" in str(d)})
        parts.append(f"model {', '.join(models)}" + (f" @ {', '.join(hooks)}" if hooks else ""))
    if cfg.get("d_sae"):
        parts.append(f"SAE width {cfg['d_sae']:,}" + (f" (d_in {cfg['d_in']:,})" if cfg.get("d_in") else ""))
    steps, batch = _values(rows.get("steps", pd.Series(dtype=float))), _values(rows.get("batch_size", pd.Series(dtype=float)))
    if steps or batch:
        if "llm" in tracks:
            seen = _values(rows.get("samples_seen", pd.Series(dtype=float)))
            harvested = (run.get("acts_manifest") or {}).get("count", {}).get("train")
            parts.append(f"{_join(steps)} steps × {_join(batch)} tokens = {_join(seen)} training tokens"
                         + (f" (from {harvested:,} harvested)" if harvested else ""))
        else:
            parts.append(f"{_join(steps)} steps × batch {_join(batch)}")
    grid = grid_rows(rows)
    reps = rows.drop(grid.index)

    def seeds(df: pd.DataFrame) -> str:
        out = []
        for col, name in (("seed", "seed"), ("teacher_dictionary_seed", "dictionary seed")):
            vals = _values(df[col]) if col in df else []
            if vals:
                out.append(f"{name}{'s' if len(vals) > 1 else ''} {_join(vals)}")
        return ", ".join(out)

    parts.append(f"{len(grid)} grid runs, " + seeds(grid))
    if len(reps):
        parts.append(f"+ {len(reps)} seed / teacher replicates, " + seeds(reps))
    return "scale: " + "; ".join(parts)


def legend_handle(style: FamilyStyle, label: str, line: bool = False) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color=style.color, marker=style.marker, ls="-" if line else "none", lw=1.3, ms=6,
                  mec="black", mew=0.4, label=label)


def save_figure(fig: Any, out_path: str | Path, dpi: int = 120) -> Any:
    write_with(out_path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight"))
    plt.close(fig)
    return fig


def synthetic_dead_ev_vs_l0(leaderboard: pd.DataFrame, out_path: str | Path, base_dir: str | Path = ".") -> Any:
    """Two panels per dataset (rows): dead % vs L0 and EV vs L0, every grid run a point in its
    family's colour and marker (coincident points dodged in L0, :func:`dodge_factors`); a config
    with seed / teacher replicates also gets a diamond at their mean with [min, max] bars. The
    subtitle gives the scale (:func:`scale_subtitle`). Returns the (closed) figure."""
    df = leaderboard[leaderboard["track"] == "synthetic"]
    datasets = sorted(df["dataset"].unique())
    if not datasets:
        raise ValueError("the leaderboard has no synthetic rows to plot")
    grid = grid_rows(df)
    fams = [f for f in FAMILY_ORDER if f in set(grid["family"])] + sorted(set(grid["family"]) - set(FAMILY_ORDER))
    style = family_style(fams)
    drawn: set[str] = set()
    n_dodged = n_spread = 0
    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.2 * len(datasets)), squeeze=False)
    for row, dataset in enumerate(datasets):
        sub = grid[grid["dataset"] == dataset]
        for col, metric in enumerate(column_list("dead_ev")):
            label = AXIS_LABELS[metric]
            ax = axes[row, col]
            pts = sub.dropna(subset=["L0", metric])
            pts = pts[pts["L0"] > 0]
            pts = pts.iloc[sorted(range(len(pts)), key=lambda i: fams.index(pts["family"].iloc[i]))]
            span = 100.0 if metric == "dead_pct" else float(pts[metric].max() - pts[metric].min()) if len(pts) else 1.0
            factor = dodge_factors(list(pts["L0"]), list(pts[metric]), span)
            n_dodged += sum(f != 1.0 for f in factor)
            pts = pts.assign(_x=pts["L0"].to_numpy() * factor)
            for family, fam in pts.groupby("family", sort=False):
                st = style[family]
                ax.scatter(fam["_x"], fam[metric], color=st.color, marker=st.marker, s=36, edgecolors="black",
                           linewidths=0.4, zorder=3, gid=f"{family}|run")
                drawn.add(family)
                for _, run in fam.iterrows():
                    runs = replicates_of(df, run)
                    if len(runs) > 1:
                        n_spread = max(n_spread, len(runs))
                        xs, ys = (pd.to_numeric(runs[c], errors="coerce") for c in ("L0", metric))
                        ax.errorbar([xs.mean()], [ys.mean()], xerr=[[xs.mean() - xs.min()], [xs.max() - xs.mean()]],
                                    yerr=[[ys.mean() - ys.min()], [ys.max() - ys.mean()]], fmt="D", ms=5,
                                    color=st.color, mec="black", mew=0.6, capsize=3, lw=1, zorder=4)
            if metric == "dead_pct":
                ax.set_ylim(-3, 103)
            readable_log_axis(ax, "x")
            ax.set_xlabel("L0")
            ax.set_ylabel(label + arrow(METRICS[metric].higher_is_better))
            ax.set_title(f"{dataset_title(dataset)}: {label} vs L0", fontsize=10)
    handles = [legend_handle(style[f], f) for f in fams if f in drawn]
    if n_spread:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="grey", marker="D", mec="black", ls="none",
                              label=f"replicate mean,\n[min, max] bars ({n_spread} runs)"))
    axes[0, 1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), title="family", fontsize=8)
    notes = "every grid run a point" + ("; coincident points spread slightly in L0" if n_dodged else "")
    fig.suptitle(f"F-syn, all ρ: {notes}\n{scale_subtitle(df, base_dir)}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_path)


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


def llm_dead_ev_vs_l0(leaderboard: pd.DataFrame, out_path: str | Path, base_dir: str | Path = ".") -> Any:
    """Dead % and EV vs L0 on LLM activations: one point per config at its seed mean, in its
    family's colour and marker, with [min, max] over seeds as error bars where a config has more
    than one seed. Panels are titled by metric, the dataset (model:hook) and the scale
    (:func:`scale_subtitle`: model, steps × tokens, seeds) head the figure. Returns the (closed)
    figure."""
    df = leaderboard[(leaderboard["track"] == "llm") & (leaderboard.get("source", "ours") == "ours")]
    if df.empty:
        raise ValueError("the leaderboard has no LLM rows to plot")
    summ = seed_summary(df, ["L0", *column_list("dead_ev")], SEED_KEYS)
    present = set(summ["family"])
    fams = [f for f in FAMILY_ORDER if f in present] + sorted(present - set(FAMILY_ORDER))
    style = family_style(fams)
    datasets = sorted(summ["dataset"].unique())
    drawn: set[str] = set()
    max_seeds = int(summ["n_seeds"].max())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.6 * len(datasets)), squeeze=False)
    for row, dataset in enumerate(datasets):
        sub = summ[summ["dataset"] == dataset]
        for col, metric in enumerate(column_list("dead_ev")):
            label = AXIS_LABELS[metric]
            ax = axes[row, col]
            for family in fams:
                fam = sub[(sub["family"] == family) & sub["L0_mean"].notna() & sub[f"{metric}_mean"].notna()]
                if fam.empty:
                    continue
                st = style[family]
                bars = fam["n_seeds"] > 1
                ax.errorbar(
                    fam["L0_mean"], fam[f"{metric}_mean"],
                    xerr=[(fam["L0_mean"] - fam["L0_min"]).where(bars, 0), (fam["L0_max"] - fam["L0_mean"]).where(bars, 0)],
                    yerr=[(fam[f"{metric}_mean"] - fam[f"{metric}_min"]).where(bars, 0),
                          (fam[f"{metric}_max"] - fam[f"{metric}_mean"]).where(bars, 0)],
                    fmt=st.marker, color=st.color, mec="black", mew=0.4, capsize=3, ms=7, ls="none", label=family,
                )
                drawn.add(family)
            readable_log_axis(ax, "x")
            ax.set_xlabel("L0 (seed mean)" if max_seeds > 1 else "L0")
            ax.set_ylabel(label + arrow(METRICS[metric].higher_is_better))
            ax.set_title(f"{label} vs L0" + (f" ({dataset})" if len(datasets) > 1 else ""), fontsize=10)
    axes[0, 1].legend(handles=[legend_handle(style[f], f) for f in fams if f in drawn], loc="upper left",
                      bbox_to_anchor=(1.02, 1), title="family", fontsize=8)
    bars = f"; bars: [min, max] over up to {max_seeds} seeds" if max_seeds > 1 else "; one seed per config (no bars)"
    fig.suptitle(f"LLM track, {', '.join(datasets)}{bars}\n{scale_subtitle(df, base_dir)}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_path)


def llm_target_l0_table(
    leaderboard: pd.DataFrame, paper: pd.DataFrame | None, targets: list[int], out_csv: str | Path, out_md: str | Path
) -> pd.DataFrame:
    """At each target L0, per family the config whose seed-mean L0 is closest; mean [min, max]
    over seeds. ``L0_matched``: that L0 lies within ± :data:`~aenbench.metric_registry.L0_TOLERANCE`
    (relative) of the target; an unmatched row is the family's closest config, not a config at
    that L0, and the markdown flags it ⚠. ``brackets_target``: the synthetic track's L0 coverage
    rule (:func:`aenbench.tables.l0_coverage`) at the target, i.e. the family has a config at or
    below it and one at or above it; the markdown lists the families that do not. The paper's
    Pythia-70M rows (``paper``) are listed beside ours."""
    from aenbench.metric_registry import L0_TOLERANCE
    from aenbench.tables import l0_coverage

    df = leaderboard[(leaderboard["track"] == "llm") & (leaderboard.get("source", "ours") == "ours")]
    summ = seed_summary(df, LLM_TABLE_METRICS, SEED_KEYS)
    rows = []
    not_bracketed = []
    for target in targets:
        cov = l0_coverage(summ.assign(target_L0=target), target="target_L0", l0="L0_mean").set_index(
            ["dataset", "family"])
        for (dataset, family), fam in summ.groupby(["dataset", "family"]):
            best = closest_row(fam, "L0_mean", target)
            brackets = bool(cov.loc[(dataset, family), "brackets"])
            if not brackets:
                not_bracketed.append(f"{family} at {target} (no config {'≤' if cov.loc[(dataset, family), 'missing'] == 'below' else '≥'} {target})")
            row = {"target_L0": target, "source": "ours", "dataset": dataset, "family": family,
                   "config": best["params"], "n_seeds": int(best["n_seeds"]),
                   "L0_matched": bool(abs(best["L0_mean"] - target) <= L0_TOLERANCE * target),
                   "brackets_target": brackets}
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
        matched = r.get("L0_matched")
        flag = "" if r["source"] == "paper" or pd.isna(matched) else "yes" if matched else "⚠ no"
        body.append([r["target_L0"], r["source"], r["dataset"], r["family"], r["config"], flag, *cells])
    header = ["target L0", "source", "dataset", "family", "config", "L0 matched", *LLM_TABLE_METRICS]
    n_unmatched = int((ours["L0_matched"] == False).sum()) if "L0_matched" in ours else 0  # noqa: E712
    note = (f"\n⚠ {n_unmatched} of our {len(ours)} rows: the family has no config within ±{L0_TOLERANCE:.0%} of the "
            "target L0; the row is its closest config, not a match at that L0.\n" if n_unmatched else "")
    if not_bracketed:
        note += ("\nL0 coverage rule (a config at or below and one at or above each target) not met: "
                 + "; ".join(not_bracketed) + ".\n")
    write_text(out_md, markdown_table(header, body) + "\n" + note)
    return table
