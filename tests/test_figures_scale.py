"""What a researcher sees in the figures (issue 18): the scale in the subtitle, a legend of what is
drawn, runs beyond the axes at their edge, distinguishable coincident families, labelled log axes,
the stability panels and the adaptive trace over the whole run. Small hand-made leaderboards."""

import json

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from aenbench.plots import (
    FAMILY_ORDER, dodge_factors, family_style, llm_dead_ev_vs_l0, log_ticks, readable_log_axis, scale_subtitle,
)
from aenbench.synthetic.figures import adaptive_trace_figure, adaptive_traces, dead_ev_vs_l0, l0_window, stability_vs_rho

SCALE = {"track": "synthetic", "steps": 300, "batch_size": 64, "samples_seen": 19200, "teacher_n": 16,
         "teacher_m": 64, "teacher_k": 4, "teacher_dictionary_seed": 0}


def synthetic_rows(records):
    base = {"dataset": "rho0.5", "seed": 0, "params": "p", "dead_pct": 10.0, "EV": 0.5, **SCALE}
    return pd.DataFrame([{**base, **r} for r in records])


def legend_families(ax, candidates):
    """The families of ``candidates`` the legend of ``ax`` lists (a label may add a note: "L1 (…)")."""
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    return {f for f in candidates if any(t == f or t.startswith(f + " ") for t in texts)}


def drawn(ax, kind):
    """{family: offsets} of the scatters whose gid is "<family>|<kind>" with at least one point."""
    out = {}
    for c in ax.collections:
        gid = c.get_gid() or ""
        if gid.endswith(f"|{kind}") and len(c.get_offsets()):
            out[gid.split("|")[0]] = c.get_offsets()
    return out


def test_log_ticks_label_a_narrow_span():
    assert log_ticks(16, 53)[0] == [20, 30, 40, 50]
    assert log_ticks(0.36, 5.2)[0] == [0.5, 1, 2, 5]
    fig, ax = plt.subplots()
    ax.plot([16, 53], [0, 1])
    ax.set_xlim(16, 53)
    readable_log_axis(ax, "x")
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    plt.close(fig)
    assert labels == ["20", "30", "40", "50"]


def test_family_style_is_the_same_in_every_figure_and_unique():
    everything = family_style([*FAMILY_ORDER, "L1-resample", "w:a"])
    assert family_style(["TopK"])["TopK"] == everything["TopK"]
    assert len({(s.color, s.marker) for s in everything.values()}) == len(everything)
    assert len({s.marker for f, s in everything.items() if f in FAMILY_ORDER}) == len(FAMILY_ORDER)


def test_dodge_spreads_only_coincident_points():
    f = dodge_factors([2.0, 2.0, 8.0], [0.41, 0.41, 0.41], y_span=1.0)
    assert f[0] < 1 < f[1] and f[2] == 1.0


def test_scale_subtitle_names_teacher_steps_batch_seeds_and_replicates():
    rows = synthetic_rows([{"family": "AEN"}, {"family": "AEN", "seed": 1, "replicate": "seed"},
                           {"family": "AEN", "teacher_dictionary_seed": 1, "replicate": "teacher"}])
    s = scale_subtitle(rows)
    for part in ("n = 16", "m = 64", "k = 4", "300 steps × batch 64", "1 grid runs, seed 0, dictionary seed 0",
                 "+ 2 seed / teacher replicates, seeds 0, 1, dictionary seeds 0, 1"):
        assert part in s


def test_rho_figure_legend_edge_markers_dodge_and_subtitle(tmp_path):
    k = 4
    lo, hi = l0_window(k)
    rows = synthetic_rows([
        {"family": "TopK", "params": "k=4", "L0": 4.0, "EV": 0.41},
        {"family": "TopK-AuxK", "params": "k=4", "L0": 4.0, "EV": 0.41},  # under TopK without a dodge
        {"family": "L1", "params": "a", "L0": 50.0},  # beyond the axes (hi · 1.3 ≈ 21)
        {"family": "Gated", "params": "g", "L0": float("nan")},  # nothing to draw
    ])
    fig = dead_ev_vs_l0(rows, k, tmp_path / "f.png", families=["L1", "Gated", "TopK", "TopK-AuxK"])
    assert (tmp_path / "f.png").stat().st_size > 0
    dead_ax, ev_ax = fig.axes[:2]
    # Gated is not drawn, so not listed; L1 is, at the edge
    assert legend_families(ev_ax, ["L1", "Gated", "TopK", "TopK-AuxK"]) == {"L1", "TopK", "TopK-AuxK"}
    for ax in (dead_ax, ev_ax):
        edge = drawn(ax, "edge")
        assert set(edge) == {"L1"} and edge["L1"][0][0] == pytest.approx(ax.get_xlim()[1]) == pytest.approx(hi * 1.3)
        assert any(t.get_text() == "L1 50" for t in ax.texts)
        runs = drawn(ax, "run")
        assert runs["TopK"][0][0] != runs["TopK-AuxK"][0][0]  # spread apart
        assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    title = fig._suptitle.get_text()
    assert "n = 16, m = 64, k = 4" in title and "300 steps × batch 64" in title


def test_stability_one_line_per_family_per_panel_and_names_the_missing(tmp_path):
    table = pd.DataFrame([
        {"rho": rho, "family": fam, "lipschitz_median": 0.2 + rho, "lipschitz_p99": 0.5 + rho,
         "support_flip_rate": 0.01, "fista_code_gap_median": 0.1 if fam == "AEN" else float("nan"),
         "fista_objective_gap_median": 0.01 if fam == "AEN" else float("nan"), "n_replicates": 1}
        for rho in (0.0, 0.9) for fam in ("AEN", "TopK", "Gated")])
    fig = stability_vs_rho(table, tmp_path / "s.png", ["AEN", "TopK", "Gated"], scale="scale: teacher n = 16")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 5
    for ax in panels:
        labels = [c.get_label() for c in ax.containers]
        assert len(labels) == len(set(labels))  # one line per family
        if "gap" in ax.get_title():
            assert labels == ["AEN"] and "no value: TopK, Gated" in ax.get_xlabel()
        else:
            assert labels == ["AEN", "TopK", "Gated"] and "no value" not in ax.get_xlabel()
    legend = next(ax.get_legend() for ax in fig.axes if ax.get_legend())
    assert [t.get_text() for t in legend.get_texts()] == ["AEN", "TopK", "Gated"]
    assert "n = 16" in fig._suptitle.get_text()


def test_adaptive_trace_runs_to_the_end_of_training(tmp_path):
    record = {"adaptive_trace": [{"step": s, "pct_w_at_max": s / 3, "ema_median": 1 / (1 + s)} for s in (0, 100, 200)],
              "eval_result_metrics": {"adaptive": {"pct_w_at_max": 90.0, "ema_median": 1e-3}}, "run": {"steps": 300}}
    (tmp_path / "m.json").write_text(json.dumps(record))
    rows = synthetic_rows([{"family": "AEN", "L0": 4.0, "hp_adaptive": True, "metrics_path": "m.json"}])
    trace = adaptive_traces(rows, 4, base_dir=tmp_path)
    assert list(trace["step"]) == [0, 100, 200, 300] and list(trace["source"]) == ["trace"] * 3 + ["final"]
    fig = adaptive_trace_figure(trace, tmp_path / "a.png", scale=scale_subtitle(rows))
    assert all(ax.get_xlim()[1] == 300 for ax in fig.axes[:2])
    assert "$a_j$" in fig.axes[1].get_ylabel()
    assert "300 steps" in fig._suptitle.get_text()


def test_llm_figure_ticks_titles_legend_and_scale(tmp_path):
    base = {"track": "llm", "source": "ours", "dataset": "smollm2-135m:blocks.3.hook_resid_post", "steps": 40,
            "batch_size": 256, "samples_seen": 10240}
    lb = pd.DataFrame([{**base, "family": f, "params": "p", "seed": s, "L0": l0 + s, "dead_pct": 50.0, "EV": 0.2}
                       for f, l0, seeds in (("TopK", 16.0, (0,)), ("AEN", 24.0, (0, 1)), ("L1", 52.0, (0,)))
                       for s in seeds])
    fig = llm_dead_ev_vs_l0(lb, tmp_path / "l.png")
    dead_ax, ev_ax = fig.axes[:2]
    assert dead_ax.get_title() != ev_ax.get_title()
    for ax in (dead_ax, ev_ax):
        assert len([t for t in ax.get_xticklabels() if t.get_text()]) >= 2
    assert [t.get_text() for t in ev_ax.get_legend().get_texts()] == ["AEN", "L1", "TopK"]
    title = fig._suptitle.get_text()
    assert "smollm2-135m" in title and "10,240 training tokens" in title and "over up to 2 seeds" in title


def test_ablation_figure_shows_seed_spread_legend_beside_and_scale(tmp_path):
    from aenbench.synthetic.ablations import summary, write_summary

    rows = synthetic_rows([{"family": f"warmup:{arm}", "seed": s, "L0": 3.0 + s + i, "dead_pct": 10.0 * (s + 1),
                            "EV": 0.5, "pct_w_at_max": 50.0}
                           for i, arm in enumerate(("T_w=0", "T_w=60")) for s in (0, 1, 2)])
    table = summary(rows, ["T_w=0", "T_w=60"])
    fig = write_summary(table, "warmup", "the warm-up", tmp_path / "a.csv", tmp_path / "a.md", tmp_path / "a.png",
                        rows=rows)
    panels = [ax for ax in fig.axes if ax.get_gid() == "panel"]
    dead = next(ax for ax in panels if ax.get_ylabel().startswith("dead_pct"))
    assert dead.get_ylabel() == "dead_pct ↓"
    # the [min, max] whisker of an arm spans its seeds' 10 … 30
    import numpy as np

    whiskers = [np.asarray(line.get_ydata(), dtype=float) for line in dead.lines]
    assert whiskers and all((np.nanmin(y), np.nanmax(y)) == pytest.approx((10.0, 30.0)) for y in whiskers)
    # the legend sits outside the last panel (anchored right of it), not over its bars
    legend = panels[-1].get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 > panels[-1].get_window_extent().x1 - 1
    title = fig._suptitle.get_text()
    assert "mean over 3 seeds" in title and "n = 16, m = 64, k = 4" in title and "300 steps × batch 64" in title


def test_pareto_plot_styles_log_ticks_and_scale(tmp_path):
    from aenbench.compare.report import pareto_plot

    rows = synthetic_rows([{"family": f, "params": str(l0), "L0": l0, "EV": ev, "source": "ours"}
                           for f, pts in (("L1", ((3.0, 0.4), (12.0, 0.7))), ("TopK", ((4.0, 0.5), (8.0, 0.6))),
                                          ("V", ((5.0, 0.65),)))
                           for l0, ev in pts])
    fig = pareto_plot(rows, "V", ["L1", "TopK", "Gated"], tmp_path / "p.png", {"EV": True, "dead_pct": False})
    dead_ax, ev_ax = fig.axes[:2]
    markers = {f: c.get_paths()[0].vertices.round(3).tobytes() for f, c in
               ((c.get_gid().split("|")[0], c) for c in ev_ax.collections if c.get_gid())}
    assert len(set(markers.values())) == 3  # L1, TopK and the variant each their own marker
    assert len([t for t in ev_ax.get_xticklabels() if t.get_text()]) >= 3  # 3 … 12 labelled, not only 10⁰/10¹
    assert [t.get_text() for t in ev_ax.get_legend().get_texts()] == ["L1", "TopK", "V (variant)"]  # no Gated
    assert "n = 16, m = 64, k = 4" in fig._suptitle.get_text()


def test_llm_target_l0_table_flags_rows_that_match_no_target(tmp_path):
    from aenbench.plots import llm_target_l0_table

    base = {"track": "llm", "source": "ours", "dataset": "m:h", "seed": 0, "dead_pct": 1.0, "EV": 0.5}
    lb = pd.DataFrame([{**base, "family": "AEN", "params": f"l1={l1}", "L0": l0} for l1, l0 in ((1, 10.0), (2, 177.0))]
                      + [{**base, "family": "TopK", "params": "k=32", "L0": 32.0}])
    table = llm_target_l0_table(lb, None, [16, 32, 128], tmp_path / "t.csv", tmp_path / "t.md")
    matched = {(r.target_L0, r.family): r.L0_matched for r in table.itertuples()}
    # AEN: 10 is 37.5 % from 16, 177 is 38 % from 128; TopK's 32 matches 32 only
    assert matched == {(16, "AEN"): False, (32, "AEN"): False, (128, "AEN"): False,
                       (16, "TopK"): False, (32, "TopK"): True, (128, "TopK"): False}
    md = (tmp_path / "t.md").read_text()
    assert md.count("⚠ no") == 5 and "⚠ 5 of our 6 rows" in md
    # the L0 coverage rule at each target: AEN's 10 … 177 brackets all three, TopK's lone 32 only 32
    brackets = {(r.target_L0, r.family): r.brackets_target for r in table.itertuples()}
    assert brackets == {(16, "AEN"): True, (32, "AEN"): True, (128, "AEN"): True,
                        (16, "TopK"): False, (32, "TopK"): True, (128, "TopK"): False}
    assert "not met: TopK at 16 (no config ≤ 16); TopK at 128 (no config ≥ 128)." in md
