"""End-to-end: `snakemake figures/all` on the smoke config in a temporary directory."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.e2e


def snakemake(repo_root, workdir, *args, timeout=600, extra_config=None):
    # targets go before --configfile, which takes several values; ``extra_config`` is laid over
    # the smoke config (Snakemake merges config files in order, dicts recursively)
    cmd = [sys.executable, "-m", "snakemake", *args, "-s", os.path.join(repo_root, "Snakefile"), "-d", str(workdir),
           "--configfile", os.path.join(repo_root, "configs", "smoke.yaml"), *([str(extra_config)] if extra_config else [])]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def smoke_run():
    """The session's one smoke DAG run (test_compare.smoke_workdir, built from the same config);
    tests that change files work on a copy."""
    from test_compare import smoke_workdir

    return smoke_workdir()[0]


def expected_rows(repo_root):
    with open(os.path.join(repo_root, "configs", "smoke.yaml")) as f:
        cfg = yaml.safe_load(f)
    syn = cfg["synthetic"]
    per_dataset = 0
    for name in syn["families"]:
        n = len(syn["train"]["seeds"])
        for values in cfg["families"][name].get("grid", {}).values():
            n *= len(values)
        per_dataset += n
    return per_dataset * len(syn["rhos"]), cfg


def test_leaderboard_has_expected_rows_and_sane_metrics(smoke_run, repo_root):
    df = pd.read_csv(smoke_run / "results" / "leaderboard.csv")
    # our synthetic families (paper rows, variants and the LLM track are tested elsewhere)
    df = df[(df["source"] == "ours") & (df["kind"] == "family") & (df["track"] == "synthetic")]
    n_rows, cfg = expected_rows(repo_root)
    # the seed / teacher replicates of the spread families' selected configurations (synthetic.spread)
    spread = cfg["synthetic"]["spread"]
    replicates = df[df["replicate"].notna()]
    n_rep = len(spread["seeds"]) + len(spread["dictionary_seeds"])
    assert len(replicates) == n_rep * len(spread["families"]) * len(cfg["synthetic"]["rhos"])
    assert sorted(set(replicates["replicate"])) == ["seed", "teacher"]
    assert set(replicates["family"]) == set(spread["families"])
    for (dataset, family), reps in replicates.groupby(["dataset", "family"]):
        selection = json.loads((smoke_run / "results" / "synthetic" / dataset / "spread" / family
                                / "selection.json").read_text())
        grid = df[(df["dataset"] == dataset) & (df["family"] == family) & df["replicate"].isna()]
        picked = grid.loc[(grid["L0"] - cfg["synthetic"]["k"]).abs().idxmin()]
        assert selection["run_id"] in picked["metrics_path"]
        assert set(reps["params"]) == {picked["params"]}
    assert set(df["grad_clip"]) == {"none"}  # synthetic.train.max_grad_norm: null
    df = df[df["replicate"].isna()]
    assert len(df) == n_rows
    required = ["track", "dataset", "family", "architecture", "params", "seed", "L0", "dead_pct", "EV", "MSE",
                "shrinkage", "MCC", "support_f1", "train_seconds", "sae_lens_version", "git_commit"]
    assert set(required) <= set(df.columns)
    assert set(df["family"]) == set(cfg["synthetic"]["families"])
    assert set(df["dataset"]) == {f"rho{r}" for r in cfg["synthetic"]["rhos"]}
    for col in ["L0", "dead_pct", "EV", "MSE", "shrinkage", "MCC", "support_f1", "train_seconds"]:
        assert df[col].map(math.isfinite).all(), col
    assert df["dead_pct"].between(0, 100).all()
    assert (df["EV"] <= 1.0).all() and (df["MSE"] >= 0).all()
    assert df["MCC"].between(0, 1).all() and df["support_f1"].between(0, 1).all()
    assert (df["L0"] >= 0).all() and (df["L0"] <= cfg["synthetic"]["m"]).all()
    topk = df[df["architecture"] == "topk"]
    assert (topk["L0"].round(6) == topk["hp_k"]).all()  # TopK fires exactly k latents
    assert (df["sae_lens_version"].astype(str).str.startswith("6.54")).all()
    assert df["samples_seen"].eq(cfg["synthetic"]["train"]["steps"] * cfg["synthetic"]["train"]["batch_size"]).all()


def test_figure_and_manifest_exist(smoke_run):
    png = smoke_run / "figures" / "synthetic_dead_ev_vs_l0.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    manifest = (smoke_run / "figures" / "all").read_text()
    assert "figures/synthetic_dead_ev_vs_l0.png" in manifest and "results/leaderboard.csv" in manifest


def test_per_sae_outputs_are_saebench_shaped_and_loadable(smoke_run):
    import json

    import aenbench.saes  # noqa: F401
    import sae_lens

    metrics = sorted(Path(smoke_run, "results", "synthetic").rglob("metrics.json"))
    assert metrics
    record = json.loads(metrics[0].read_text())
    for key in ("eval_type_id", "eval_config", "eval_result_metrics", "sae_cfg_dict"):
        assert key in record
    assert record["eval_config"]["dead_window_tokens"] > 0
    assert all(isinstance(v, dict) for v in record["eval_result_metrics"].values())
    sae = sae_lens.SAE.load_from_disk(str(metrics[0].parent / "sae"))
    assert sae.cfg.d_sae == record["sae_cfg_dict"]["d_sae"]


def test_no_op_rerun_does_nothing(smoke_run, repo_root):
    before = (smoke_run / "results" / "leaderboard.csv").read_bytes()
    proc = snakemake(repo_root, smoke_run, "-n", "figures/all", "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert (smoke_run / "results" / "leaderboard.csv").read_bytes() == before


def test_lint_is_clean(repo_root, tmp_path):
    proc = snakemake(repo_root, tmp_path, "--lint")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Congratulations" in proc.stdout + proc.stderr


def test_llm_track_outputs(smoke_run, repo_root):
    import json

    _, cfg = expected_rows(repo_root)
    llm = cfg["llm"]
    df = pd.read_csv(smoke_run / "results" / "leaderboard.csv")
    rows = df[(df["track"] == "llm") & (df["source"] == "ours")]
    assert set(rows["family"]) == set(llm["families"])
    assert set(rows["dataset"]) == {f"{llm['model']}:{llm['hook']}"}
    for col in ["L0", "dead_pct", "EV", "MSE", "ce_recovered_zero", "ce_recovered_mean", "kl_with_sae",
                "coherence_p90", "firing_entropy_bits", "top10pct_mass", "l2_ratio", "relative_reconstruction_bias"]:
        assert rows[col].map(math.isfinite).all(), col
    topk = rows[rows["architecture"] == "topk"]
    assert (topk["L0"].round(6) == topk["hp_k"]).all()
    assert (rows["ce_loss_zero_ablation"] > rows["ce_loss_clean"]).all()

    run_dir = smoke_run / "results" / "llm" / llm["model"] / llm["hook"]
    xcheck = json.loads((run_dir / "crosscheck_saelens.json").read_text())
    assert abs(xcheck["ours_ce_loss_score"] - xcheck["sae_lens_ce_loss_score"]) <= 1e-3
    manifest = json.loads((run_dir / "acts" / "manifest.json").read_text())
    assert manifest["count"]["train"] > 0 and len(manifest["shards"]["train"]) >= 1
    assert manifest["excluded_norms"]["position0_over_kept"] > 1.0  # massive first-position norm
    assert all(len(s["sha256"]) == 64 for s in manifest["shards"]["train"])
    corpus = json.loads(Path(repo_root, "resources", "corpus", "manifest.json").read_text())
    assert {s["source"] for s in corpus["sources"]} == {"shakespeare", "brown", "sotu"}
    assert all(s["tokens"] > 100_000 and s["licence"] for s in corpus["sources"])
    assert (smoke_run / "figures" / "llm_dead_ev_vs_l0.png").stat().st_size > 10_000
    table = (smoke_run / "figures" / "tables" / "llm_target_l0.md").read_text()
    assert "| paper |" in table and "| ours |" in table


def test_synthetic_artefacts_of_issue_8(smoke_run, repo_root):
    """Per-ρ F-syn figures and T-syn tables, the stability group, the ablation and the
    replication table are built by figures/all."""
    _, cfg = expected_rows(repo_root)
    syn = cfg["synthetic"]
    manifest = (smoke_run / "figures" / "all").read_text()
    for rho in syn["rhos"]:
        png = smoke_run / "figures" / "synthetic" / f"rho{rho}_dead_ev_vs_l0.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and f"figures/synthetic/rho{rho}_dead_ev_vs_l0.png" in manifest
        table = pd.read_csv(smoke_run / "figures" / "tables" / "synthetic" / f"rho{rho}_closest_to_k.csv")
        assert list(table["family"]) == syn["families"]  # one row per family, in config order
        # judged on the selected grid run's own L0 (``L0`` is the mean over it and its replicates)
        assert (table["L0_matched"] == ((table["L0_selected"] - syn["k"]).abs() <= 0.25 * syn["k"])).all()
        single = table["n_replicates"] == 1
        assert (table.loc[single, "L0"] == table.loc[single, "L0_selected"]).all()
    df = pd.read_csv(smoke_run / "results" / "leaderboard.csv")
    ours = df[(df["source"] == "ours") & (df["track"] == "synthetic")]
    for col in ["lipschitz_median", "lipschitz_p99", "support_flip_rate"]:
        assert ours[col].map(math.isfinite).all(), col
        assert (ours[col] >= 0).all()
    assert (ours["lipschitz_p99"] >= ours["lipschitz_median"]).all()
    aen = ours["architecture"] == "aen"
    assert ours.loc[aen, "fista_code_gap_median"].map(math.isfinite).all()
    assert ours.loc[~aen & (ours["kind"] == "family"), "fista_code_gap_median"].isna().all()
    assert (smoke_run / "figures" / "synthetic_stability_vs_rho.png").stat().st_size > 10_000
    trace = pd.read_csv(smoke_run / "figures" / "tables" / "synthetic_adaptive_trace.csv")
    assert set(trace["family"]) == {"AL", "AEN"}  # the adaptive families of the smoke config
    steps = syn["train"]["steps"]
    # every aen.TRACE_EVERY steps, and the end-of-training state at the last step
    assert set(trace["step"]) == {*range(0, steps, 100), steps}
    assert trace["pct_w_at_max"].between(0, 100).all()
    ablation = pd.read_csv(smoke_run / "figures" / "ablations" / "warmup.csv")
    arms = cfg["ablations"]["warmup"]
    assert set(ablation["arm"]) == set(arms["arms"]) and set(ablation["dataset"]) == set(arms["datasets"])
    # the replication table: one row per (ρ, model) of the committed CSV, the paper's number beside ours
    committed = pd.read_csv(Path(repo_root, "results", "reference", "replication_ours.csv"))
    replication = pd.read_csv(smoke_run / "figures" / "tables" / "synthetic_replication.csv")
    assert len(replication) == committed.groupby(["dataset", "model"]).ngroups > 0
    assert replication["L0_paper"].notna().all() and replication["L0_ours"].notna().all()


def test_an_ablation_reruns_alone(smoke_run, repo_root):
    """`snakemake ablation_warmup` forced to retrain plans only that ablation's jobs."""
    proc = snakemake(repo_root, smoke_run, "-n", "ablation_warmup", "--forcerun", "ablation_train", "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    stats = out[out.index("Job stats"):].split("total")[0]
    planned = {line.split()[0] for line in stats.splitlines()[3:] if line.strip()}
    assert planned == {"ablation_train", "ablation_eval", "ablation_summary", "ablation_warmup"}, planned


# --------------------------------------------------------------------------- the rerun matrix
# Each edit of the smoke config, laid over it as a second config file, against the built smoke
# run: `snakemake -n figures/all` must plan exactly these jobs (rule -> count). Smoke: ρ 0 and
# 0.9, 10 families (the spread of L1 and AEN), the warm-up ablation on ρ 0.9, one variant on both ρ, 2 synthsae families, 3
# LLM families.
from collections import Counter  # noqa: E402

# what reads the leaderboard (every figure and table drawn from it, provenance, the manifest)
LEADERBOARD_VIEWS = Counter({
    "check_records": 1, "leaderboard": 1, "figure_synthetic_dead_ev_vs_l0": 1, "figure_synthetic_rho": 2,
    "table_synthetic_closest_to_k": 2, "figure_synthetic_stability": 1, "figure_synthetic_adaptive_trace": 1,
    "table_synthsae": 1, "figure_llm_dead_ev_vs_l0": 1, "table_llm_target_l0": 1, "provenance": 1,
    "figures_all": 1, "table_claims": 1,
    # the report's HTML renderings of those tables (workflow/rules/report.smk)
    "html_leaderboard": 1, "html_synthetic_closest_to_k": 2, "html_synthsae": 1, "html_llm_target_l0": 1,
    "html_provenance_versions": 1,
})
RERUN_MATRIX = {
    "add a synthetic grid point": (
        {"families": {"L1": {"grid": {"l1_coefficient": [0.08, 0.02, 0.01]}}}},
        # the spread job of each ρ reads L1's evaluated grid (its selection may change)
        Counter({"synthetic_train": 2, "synthetic_eval": 2, "synthetic_spread": 2, "compare_report": 1, "html_compare": 1})
        + LEADERBOARD_VIEWS,
    ),
    "add an LLM grid point": (
        {"llm": {"families": {"TopK": {"grid": {"k": [16, 32]}}}}},
        Counter({"llm_train": 1, "llm_eval": 1}) + LEADERBOARD_VIEWS,
    ),
    "change an evaluation setting": (
        {"synthetic": {"train": {"eval_samples": 1024}}},
        Counter({"synthetic_eval": 20, "synthetic_spread": 2, "variant_eval": 2, "ablation_eval": 1,
                 "ablation_summary": 1, "compare_report": 1, "html_compare": 1}) + LEADERBOARD_VIEWS,
    ),
    "change a figure setting": (
        {"figures": {"llm_target_l0": [16, 64]}},
        # provenance writes the resolved config, so every config edit redoes it
        Counter({"table_llm_target_l0": 1, "html_llm_target_l0": 1, "provenance": 1, "html_provenance_versions": 1,
                 "figures_all": 1}),
    ),
    "change the harvest settings": (
        {"llm": {"harvest": {"train_contexts": 40}}},
        Counter({"llm_harvest": 1, "llm_train": 3, "llm_eval": 3, "llm_crosscheck_saelens": 1}) + LEADERBOARD_VIEWS,
    ),
    "change one ablation arm": (
        {"ablations": {"warmup": {"arms": {"T_w=0": {"warmup_steps": 10}, "T_w=60": {}}}}},
        Counter({"ablation_train": 1, "ablation_eval": 1, "ablation_summary": 1, "provenance": 1,
                 "html_provenance_versions": 1, "figures_all": 1}),
    ),
    "add a variant": (
        {"variants": {"L1-resample-b": {"plugin": "examples/l1_resample.py", "architecture": "l1_resample",
                                        "fixed": {"resample_every": 60, "resample_until": 240},
                                        "grid": {"l1_coefficient": [0.64]}, "compare": {"families": ["L1"]}}}},
        Counter({"variant_train": 2, "variant_eval": 2, "compare_report": 1, "html_compare": 1}) + LEADERBOARD_VIEWS,
    ),
}


def planned_job_counts(text):
    """rule -> number of jobs, from the job-stats table of a `snakemake -n` listing."""
    stats = text[text.index("Job stats"):].split("\ntotal")[0]
    counts = Counter()
    for line in stats.splitlines()[3:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.parametrize("edit", list(RERUN_MATRIX))
def test_rerun_matrix(smoke_run, repo_root, tmp_path, edit):
    override, expected = RERUN_MATRIX[edit]
    extra = tmp_path / "edit.yaml"
    extra.write_text(yaml.safe_dump(override, sort_keys=False, allow_unicode=True))
    proc = snakemake(repo_root, smoke_run, "-n", "figures/all", "--cores", "1", extra_config=extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert planned_job_counts(proc.stdout + proc.stderr) == expected


def test_a_new_grid_point_trains_and_evaluates_that_point_only(smoke_run, repo_root, tmp_path):
    """The real run of the first edit of the matrix on a copy of the smoke run: every other run of
    the family comes from the store, and the leaderboard gains one row per ρ."""
    import shutil

    work = tmp_path / "w"
    shutil.copytree(smoke_run, work, symlinks=True)
    before = pd.read_csv(work / "results" / "leaderboard.csv")
    override, _ = RERUN_MATRIX["add a synthetic grid point"]
    extra = tmp_path / "edit.yaml"
    extra.write_text(yaml.safe_dump(override, sort_keys=False))
    proc = snakemake(repo_root, work, "results/leaderboard.csv", "--cores", "2", extra_config=extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for dataset in ("rho0.0", "rho0.9"):
        train_log = (work / "logs" / "synthetic" / dataset / "train_L1.log").read_text()
        assert "1 SAE(s) trained (stacked), 2 reused from the store" in train_log, train_log[-2000:]
        eval_log = (work / "logs" / "synthetic" / dataset / "eval_L1.log").read_text()
        assert "1 SAE(s) evaluated, 2 reused from the store" in eval_log, eval_log[-2000:]
    after = pd.read_csv(work / "results" / "leaderboard.csv")
    assert len(after) == len(before) + 2
    # the reused runs' rows are the same numbers as before
    key = ["source", "track", "dataset", "family", "params", "seed"]
    old = before[(before["family"] == "L1") & before["replicate"].isna()].set_index(key).sort_index()
    new = after[(after["family"] == "L1") & after["replicate"].isna()].set_index(key).sort_index().loc[old.index]
    pd.testing.assert_series_equal(old["EV"], new["EV"])
    pd.testing.assert_series_equal(old["dead_pct"], new["dead_pct"])
