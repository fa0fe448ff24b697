"""The report's tables (issue 18): each table CSV is attached to `snakemake --report` as an HTML
rendering (aenbench.report_tables, workflow/rules/report.smk) with the metric directions of
aenbench.metric_registry in its header, and figures/all depends on every one of them."""

import re
from pathlib import Path

import pandas as pd
import pytest

from aenbench.metric_registry import METRICS
from aenbench.report_tables import display_frame, format_cell, header, markdown_html, metric_of, write_table_html

REPO = Path(__file__).resolve().parents[1]

ROWS = pd.DataFrame({
    "family": ["AEN", "L1", "TopK<b>"],
    "config": ["l1=0.04", "l1=0.08", "k=16"],
    "n_seeds": [3, 1, 1],
    "L0": [15.06, 20.5727, 16.0], "L0_min": [14.62, 20.5727, 15.99999], "L0_max": [15.29, 20.5727, 16.0],
    "dead_pct": [0.0, 1.8229, 78.3854],
    "EV": [0.5, 0.6943, float("nan")], "EV_min": [0.4, 0.6943, float("nan")], "EV_max": [0.6, 0.6943, float("nan")],
    "shrinkage": [0.41587, 0.63297, 0.64209],
    "MCC_delta": [0.0569, -0.0307, 0.1],
    "L0_matched": [True, False, True],
    "hp_unused": [float("nan")] * 3,
})


@pytest.fixture
def page(tmp_path):
    csv = tmp_path / "small.csv"
    ROWS.to_csv(csv, index=False)
    write_table_html(csv, tmp_path / "small.html", "A small table")
    return (tmp_path / "small.html").read_text()


def headers(page: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th>(.*?)</th>", page)]


def body_rows(page: str) -> list[list[str]]:
    body = page[page.index("<tbody>"):page.index("</tbody>")]
    return [re.findall(r"<td>(.*?)</td>", tr, re.S) for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_the_page_is_one_table_with_the_metric_directions_in_its_header(page):
    assert page.startswith("<!DOCTYPE html>") and page.count("<table") == 1
    assert "<caption>" in page and "A small table" in page and "3 rows from small.csv" in page
    shown = headers(page)
    # ↑ / ↓ from the registry; none for a metric without a direction (L0, shrinkage) or a non-metric
    assert METRICS["EV"].higher_is_better and not METRICS["dead_pct"].higher_is_better
    assert shown == ["family", "config", "n_seeds", "L0", "dead_pct ↓", "EV ↑", "shrinkage", "MCC_delta ↑",
                     "L0_matched"]
    assert 'title="explained variance' in page  # the meaning as a tooltip
    assert "hp_unused" in page.split("<table")[1].split("</caption>")[0]  # named as left out, not shown


def test_every_row_is_there_with_its_numbers_formatted(page):
    rows = body_rows(page)
    assert len(rows) == len(ROWS)
    assert [r[0] for r in rows] == ["AEN", "L1", "TopK&lt;b&gt;"]  # cells are escaped
    aen, l1, topk = rows
    assert aen[3] == "15.1 [14.6, 15.3]" and aen[5] == "0.5 [0.4, 0.6]"  # mean [min, max] over seeds
    assert l1[3] == "20.6" and topk[3] == "16"  # min = max (as shown): the mean alone
    assert topk[5] == ""  # NaN
    assert [r[2] for r in rows] == ["3", "1", "1"] and aen[4] == "0"  # whole numbers in full
    assert l1[7] == "-0.0307" and [r[8] for r in rows] == ["yes", "no", "yes"]


def test_derived_columns_take_their_metric_direction():
    assert metric_of("dead_pct_family_min") == "dead_pct" and metric_of("EV_saelens_delta") == "EV_saelens"
    assert metric_of("synthetic/mcc_max") == "synthetic/mcc" and metric_of("family_L0") == "L0"
    assert metric_of("pct_w_at_max") == "pct_w_at_max"  # a metric of its own, not pct_w_at's max
    assert metric_of("dead_pct_eval_variant") == "dead_pct_eval"
    assert metric_of("dead_pct_verdict") is None and metric_of("L0_rel_gap") is None and metric_of("irc_max") is None
    assert header("EV_paper") == "EV_paper ↑" and header("MSE_family") == "MSE_family ↓" and header("L0") == "L0"
    assert format_cell(10240.0) == "10240" and format_cell(1e-5) == "1e-05" and format_cell(0.123456) == "0.123"
    shown, done = display_frame(pd.DataFrame({"L0_ours": [1.0], "L0_min": [0.5], "L0_max": [2.0]}))
    assert list(shown.columns) == ["L0_ours"] and shown.iloc[0, 0] == "1 [0.5, 2]" and done["spread"] == ["L0_ours"]


def test_the_report_holds_the_tables_as_html_and_figures_all_needs_them(tmp_path):
    """The smoke config's workflow, parsed (no DAG run): every report-wrapped table is an HTML
    file, in its table's category, and figures/all depends on all of them."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    with SnakemakeApi() as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1),
                                config_settings=ConfigSettings(configfiles=[REPO / "configs" / "smoke.yaml"]),
                                snakefile=REPO / "Snakefile", workdir=tmp_path)._workflow
        reported = {re.sub(r"\{(\w+),[^}]*\}", r"{\1}", str(f)): (rule.name, f.flags["report"])
                    for rule in workflow.rules for f in rule.output if f.flags.get("report")}
        needed = {str(f) for f in workflow.get_rule("figures_all").input}
    assert not [path for path in reported if path.endswith((".csv", ".md"))]  # downloads, not shown
    tables = {path: info for path, info in reported.items() if path.endswith(".html")}
    expected = {
        "results/leaderboard.html": ("Leaderboard", None),
        "results/provenance/versions.html": ("Provenance", None),
        "figures/tables/synthetic_teacher_diagnostics.html": ("Synthetic", None),
        "figures/tables/synthetic/{dataset}_closest_to_k.html": ("Synthetic", "{dataset}"),
        "figures/tables/synthetic_replication.html": ("Synthetic", None),
        "figures/tables/synthsae_closest_to_true_l0.html": ("SynthSAEBench-style", None),
        "figures/tables/llm_target_l0.html": ("LLM", None),
        "results/compare/{variant}.html": ("Variants", "{variant}"),
        "results/compare/{variant}_report.html": ("Variants", "{variant}"),  # the markdown report, rendered
    }
    assert {path: (obj.category, obj.subcategory) for path, (_, obj) in tables.items()} == expected
    assert all(rule.startswith("html_") for path, (rule, _) in tables.items() if not path.endswith("_report.html"))
    assert tables["results/compare/{variant}_report.html"][0] == "compare_report"
    built = {p.format(dataset=d, variant="L1-resample") for p in expected for d in ("rho0.0", "rho0.9")}
    assert built - {"results/compare/L1-resample_report.html"} <= needed and len(built) == 10


def test_a_markdown_report_renders_its_tables_and_inlines_its_figure(tmp_path):
    import base64

    png = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "p.png").write_bytes(png)
    text = "# Variant `V`\n\n![front](figs/p.png)\n\n| family | EV ↑ |\n|---|---|\n| L1 | 0.5 (Δ +0.1, better) |\n"
    page = markdown_html(text, "V", base_dir=tmp_path)
    assert '<table class="aenbench">' in page and "<td>L1</td>" in page and "<th>EV ↑</th>" in page
    assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}"' in page
    assert "figs/p.png" not in page
    with pytest.raises(FileNotFoundError, match="figs/q.png"):
        markdown_html("![x](figs/q.png)", "V", base_dir=tmp_path)


def test_a_wide_table_shows_the_named_columns_and_says_where_the_rest_are(tmp_path):
    csv = tmp_path / "wide.csv"
    ROWS.to_csv(csv, index=False)
    write_table_html(csv, tmp_path / "wide.html", "Wide", columns=["config", "family", "EV", "EV_min", "EV_max", "nope"])
    page = (tmp_path / "wide.html").read_text()
    assert headers(page) == ["config", "family", "EV ↑"]  # in the order asked, EV with its spread, unknown dropped
    assert "5 of its 14 columns shown; the other 9" in page and "wide.csv" in page
