"""Reruns: a no-op rerun leaves the leaderboard identical, removed runs leave it, and changing one
family's (or variant's) config reruns only its subgraph. Also `snakemake --report`.

Shares the session's one smoke DAG run (every track) with test_compare.py and
test_workflow_e2e.py (see `smoke_workdir` there); tests that change files work on a copy of it.
"""

import copy
import re

import pandas as pd
import pytest

from test_compare import VARIANT, copy_workdir, smoke_workdir, snakemake, write_config

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def built():
    return smoke_workdir()


# the figures and tables drawn from the leaderboard (they redraw whenever it changes); no
# ablation, teacher or other family's job is among them
LEADERBOARD_VIEWS = {"figure_synthetic_dead_ev_vs_l0", "figure_synthetic_rho", "table_synthetic_closest_to_k",
                     "figure_synthetic_stability", "figure_synthetic_adaptive_trace", "table_synthsae",
                     "table_claims", "figure_llm_dead_ev_vs_l0", "table_llm_target_l0",
                     # the report's HTML renderings of the tables among them, the leaderboard's, the
                     # variant report's and provenance's (workflow/rules/report.smk)
                     "html_leaderboard", "html_synthetic_closest_to_k", "html_synthsae", "html_llm_target_l0",
                     "html_compare", "html_provenance_versions"}


def planned_jobs(text):
    """(rule, wildcards) of every job in a `snakemake -n` listing."""
    jobs, rule = [], None
    for line in text.splitlines():
        m = re.match(r"^(?:local)?rule (\S+):$", line)
        if m:
            rule = m.group(1)
            jobs.append([rule, {}])
            continue
        m = re.match(r"^\s+wildcards: (.*)$", line)
        if m and rule is not None:
            jobs[-1][1] = dict(kv.split("=", 1) for kv in m.group(1).split(", "))
    return [(r, w) for r, w in jobs]


def test_noop_rerun_leaves_the_leaderboard_identical(built, tmp_path):
    workdir, cfg, configfile = built
    work = copy_workdir(workdir, tmp_path / "w")
    outputs = ["results/leaderboard.csv", "results/metrics.yaml", f"results/compare/{VARIANT}.md",
               f"results/compare/{VARIANT}.csv"]
    before = {p: (work / p).read_bytes() for p in outputs}
    proc = snakemake(work, configfile, "-n", "figures/all", "--cores", "1")
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr
    # now really rebuild the derived tables from the same runs
    proc = snakemake(work, configfile, "results/leaderboard.csv", f"results/compare/{VARIANT}.md", "--cores", "2",
                     "--forcerun", "leaderboard", "compare_report")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran = {r for r, _ in planned_jobs(proc.stdout + proc.stderr)}
    assert ran == {"leaderboard", "compare_report"}
    for p in outputs:
        assert (work / p).read_bytes() == before[p], p
    lb = pd.read_csv(work / "results" / "leaderboard.csv")
    # a replicate (seed / teacher) of a selected configuration is its own row
    assert not lb.duplicated(["source", "track", "dataset", "family", "params", "seed", "replicate"]).any()


def test_leaderboard_has_every_row_kind_and_column(built):
    workdir, cfg, _ = built
    lb = pd.read_csv(workdir / "results" / "leaderboard.csv")
    ours = lb[lb["source"] == "ours"]
    assert set(ours.loc[ours["kind"] == "variant", "family"]) == set(cfg["variants"])
    assert set(ours.loc[ours["kind"] == "family", "family"]) == set(cfg["synthetic"]["families"])
    assert (lb["source"] == "paper").sum() > 0
    for column in ("job_wall_s", "job_max_rss_mb", "job_n_saes", "samples_seen", "sae_lens_version", "git_commit",
                   "train_seconds"):
        assert ours[column].notna().all(), column
    assert (ours["job_max_rss_mb"] > 0).all() and (ours["job_wall_s"] >= ours["train_seconds"]).all()
    # the job numbers are those of the family's benchmark file
    # the spiked track's grid rows (replicates come from the spread job; the LLM and synthsae
    # tracks have families of the same names)
    grid = ours[ours["replicate"].isna() & (ours["track"] == "synthetic")]
    row = grid[grid["family"] == "L1"].iloc[0]
    bench = pd.read_csv(workdir / "benchmarks" / "synthetic" / row["dataset"] / "train_L1.tsv", sep="\t")
    assert row["job_wall_s"] == pytest.approx(bench["s"].mean()) and row["job_max_rss_mb"] == pytest.approx(bench["max_rss"].max())
    assert row["job_n_saes"] == (grid[(grid["family"] == "L1") & (grid["dataset"] == row["dataset"])]).shape[0]


def test_changing_one_family_grid_reruns_only_its_subgraph(built, tmp_path):
    workdir, cfg, _ = built
    cfg = copy.deepcopy(cfg)
    cfg["families"]["L1"]["grid"]["l1_coefficient"] = [*cfg["families"]["L1"]["grid"]["l1_coefficient"], 0.005]
    proc = snakemake(workdir, write_config(cfg, tmp_path / "l1.yaml"), "-n", "figures/all", "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = planned_jobs(proc.stdout)
    trained = sorted((w["dataset"], w["family"]) for r, w in jobs if r == "synthetic_train")
    assert trained == sorted((f"rho{rho}", "L1") for rho in cfg["synthetic"]["rhos"])
    # downstream of L1 only: the leaderboard, the variant's report (it compares with L1), the figure,
    # provenance and the manifest, and the spread job of each ρ (L1's selection may move; its store
    # reuses the other families' replicates); no teacher, no other family, no variant training
    assert {r for r, _ in jobs} == {"synthetic_train", "synthetic_eval", "synthetic_spread", "check_records", "leaderboard",
                                    "compare_report",
                                    *LEADERBOARD_VIEWS, "provenance", "figures_all"}


def test_changing_the_variant_grid_reruns_only_the_variant(built, tmp_path):
    workdir, cfg, _ = built
    cfg = copy.deepcopy(cfg)
    cfg["variants"][VARIANT]["grid"]["l1_coefficient"].append(0.64)
    proc = snakemake(workdir, write_config(cfg, tmp_path / "v.yaml"), "-n", "figures/all", "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = planned_jobs(proc.stdout)
    assert sorted(w["dataset"] for r, w in jobs if r == "variant_train") == sorted(f"rho{r}" for r in cfg["synthetic"]["rhos"])
    assert {r for r, _ in jobs} == {"variant_train", "variant_eval", "check_records", "leaderboard", "compare_report",
                                    *LEADERBOARD_VIEWS, "provenance", "figures_all"}


def test_a_family_removed_from_the_config_leaves_the_leaderboard(built, tmp_path):
    workdir, cfg, _ = built
    work = copy_workdir(workdir, tmp_path / "w")
    before = pd.read_csv(work / "results" / "leaderboard.csv")
    cfg = copy.deepcopy(cfg)
    cfg["synthetic"]["families"].remove("TopK-AuxK")
    proc = snakemake(work, write_config(cfg, tmp_path / "less.yaml"), "results/leaderboard.csv", "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {r for r, _ in planned_jobs(proc.stdout + proc.stderr)} == {"check_records", "leaderboard"}  # nothing retrained
    after = pd.read_csv(work / "results" / "leaderboard.csv")
    ours = after[after["source"] == "ours"]
    assert "TopK-AuxK" not in set(ours["family"])
    assert any((work / "results" / "synthetic").glob("*/runs/TopK-AuxK"))  # its folders are still on disk
    kept = before[~((before["source"] == "ours") & (before["family"] == "TopK-AuxK"))].reset_index(drop=True)
    pd.testing.assert_frame_equal(after, kept[after.columns])


def test_a_deleted_run_folder_leaves_the_leaderboard(built, tmp_path):
    workdir, cfg, configfile = built
    work = copy_workdir(workdir, tmp_path / "w")
    before = pd.read_csv(work / "results" / "leaderboard.csv")
    victim = sorted((work / "results" / "synthetic").glob("*/runs/L1/*/metrics.json"))[0]
    victim_rel = str(victim.relative_to(work))
    assert victim_rel in set(before["metrics_path"])
    import shutil

    shutil.rmtree(victim.parent)
    # Snakemake does not notice a file deleted inside a finished directory output; rebuild the table
    proc = snakemake(work, configfile, "results/leaderboard.csv", "--cores", "1", "--forcerun", "leaderboard")
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = pd.read_csv(work / "results" / "leaderboard.csv")
    assert victim_rel not in set(after["metrics_path"])
    assert len(after) == len(before) - 1


def test_report_html_bundles_figures_tables_config_and_versions(built, tmp_path):
    workdir, cfg, configfile = built
    work = copy_workdir(workdir, tmp_path / "w")
    proc = snakemake(work, configfile, "--report", "report.html")
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (work / "report.html").read_text()
    # tables as HTML (shown inside the report), not as CSV downloads
    for name in ("synthetic_dead_ev_vs_l0.png", "leaderboard.html", "metrics.yaml", f"{VARIANT}_pareto.png",
                 f"{VARIANT}.md", "versions.html", "provenance/config.yaml", "synthetic_teacher_diagnostics.html"):
        assert name in html, name
    versions = pd.read_csv(work / "results" / "provenance" / "versions.csv")
    assert "sae-lens" in set(versions["name"]) and "snakemake" in set(versions["name"])
