"""The leaderboard builder: our rows, job benchmarks, the paper's rows, the metrics dictionary."""

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aenbench import leaderboard as L
from aenbench.metric_registry import METRICS


def record(family, params, seed, l0, dead, hp, dataset="rho0.5"):
    return {
        "eval_type_id": "aenbench_synthetic_spiked",
        "eval_config": {"dead_window_tokens": 64},
        "eval_result_metrics": {"sparsity": {"L0": l0, "dead_pct": dead}, "reconstruction": {"EV": 0.5, "MSE": 0.1}},
        "sae_lens_version": "6.54.12",
        "sae_cfg_dict": {"d_sae": 8},
        "run": {
            "track": "synthetic", "dataset": dataset, "family": family, "architecture": "aen", "params": params,
            "hyperparameters": hp, "seed": seed, "steps": 10, "batch_size": 4, "samples_seen": 40,
            "train_seconds": 1.5, "device": "cpu", "teacher": {"n": 4, "m": 8, "k": 1},
            "git_commit": "abc", "versions": {"torch": "2.x", "sae_lens": "6.54.12"},
        },
    }


def write_family(root, family, runs):
    for run_id, rec in runs.items():
        d = root / family / run_id
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(rec))
    return root / family


BENCH = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n{s}\t0:00:12\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n"


@pytest.fixture
def runs(tmp_path):
    a = write_family(tmp_path / "runs", "AEN", {
        "l1~0.1_seed~0": record("AEN", "l1=0.1", 0, 3.0, 10.0, {"l1_coefficient": 0.1, "adaptive": True}),
        "l1~0.2_seed~0": record("AEN", "l1=0.2", 0, 1.0, 20.0, {"l1_coefficient": 0.2, "adaptive": True}),
    })
    t = write_family(tmp_path / "runs", "TopK", {"k~2_seed~0": record("TopK", "k=2", 0, 2.0, 50.0, {"k": 2})})
    (tmp_path / "bm").mkdir()
    (tmp_path / "bm" / "AEN.tsv").write_text(BENCH.format(s=12.5, rss=600.25, cpu=11.0))
    (tmp_path / "bm" / "TopK.tsv").write_text(BENCH.format(s=7.0, rss=512.0, cpu=6.5))
    return [a, t], [tmp_path / "bm" / "AEN.tsv", tmp_path / "bm" / "TopK.tsv"]


def test_rows_hyperparameters_and_job_benchmarks(runs):
    dirs, bms = runs
    df = L.build(dirs, benchmarks=bms)
    assert len(df) == 3
    assert set(df["source"]) == {"ours"} and set(df["kind"]) == {"family"}
    aen = df[df["family"] == "AEN"].set_index("params")
    assert aen.loc["l1=0.2", "hp_l1_coefficient"] == 0.2 and bool(aen.loc["l1=0.2", "hp_adaptive"])
    assert aen.loc["l1=0.1", "L0"] == 3.0 and aen.loc["l1=0.1", "dead_pct"] == 10.0
    # one benchmark covers the whole family job: same job numbers on both AEN rows, job_n_saes = 2
    assert list(aen["job_wall_s"]) == [12.5, 12.5] and list(aen["job_max_rss_mb"]) == [600.25, 600.25]
    assert list(aen["job_n_saes"]) == [2, 2] and list(aen["job_cpu_s"]) == [11.0, 11.0]
    topk = df[df["family"] == "TopK"].iloc[0]
    assert (topk["job_wall_s"], topk["job_max_rss_mb"], topk["job_n_saes"], topk["hp_k"]) == (7.0, 512.0, 1, 2)
    assert pd.isna(topk["hp_l1_coefficient"])
    for column in ("samples_seen", "train_seconds", "sae_lens_version", "git_commit", "teacher_n"):
        assert df[column].notna().all(), column
    with pytest.raises(ValueError, match="one per folder"):
        L.build(dirs, benchmarks=bms[:1])


def test_variant_kind_and_duplicates(runs, tmp_path):
    dirs, _ = runs
    v = write_family(tmp_path / "variants", "V", {"a~1_seed~0": record("V", "a=1", 0, 2.0, 5.0, {"a": 1})})
    df = L.combine([L.build(dirs), L.build([v], kind="variant")])
    assert df.set_index("family").loc["V", "kind"] == "variant"
    with pytest.raises(ValueError, match="same run"):
        L.combine([L.build(dirs), L.build(dirs)])


def test_a_removed_run_folder_disappears_on_rebuild(runs):
    dirs, bms = runs
    before = L.build(dirs, benchmarks=bms)
    shutil.rmtree(dirs[0] / "l1~0.1_seed~0")
    after = L.build(dirs, benchmarks=bms)
    assert len(after) == len(before) - 1
    assert "l1=0.1" not in set(after["params"])
    assert list(after.loc[after["family"] == "AEN", "job_n_saes"]) == [1]


def test_paper_rows_are_the_reference_tables(repo_root):
    ref = Path(repo_root) / "results" / "reference" / "paper"
    df = L.paper_rows(ref)
    assert set(df["source"]) == {"paper"}
    with open(ref / "reference_synthetic_v1.csv") as f:
        syn = list(csv.DictReader(f))
    with open(ref / "reference_pythia70m.csv") as f:
        llm = list(csv.DictReader(f))
    assert len(df) == len(syn) + len(llm)
    s = df[df["track"] == "synthetic"]
    assert len(s) == len(syn)
    for line in syn:  # every number of the table is on its row
        row = s[(s["dataset"] == f"rho{float(line['rho'])}") & (s["family"] == line["model"])]
        assert len(row) == 1
        row = row.iloc[0]
        for column in ("L0", "dead_pct", "EV", "shrinkage"):
            assert row[column] == pytest.approx(float(line[column]))
        assert row["params"] == line["config"]
        assert row["teacher_n"] == 256 and row["steps"] == 50000 and row["samples_seen"] == 50000 * 256
    aen = s[(s["dataset"] == "rho0.0") & (s["family"] == "AEN")].iloc[0]
    assert (aen["hp_l1_coefficient"], aen["hp_l2_coefficient"], aen["hp_beta"]) == (1e-3, 5e-4, 0.999)
    topk = s[(s["dataset"] == "rho0.0") & (s["family"] == "TopK")].iloc[0]
    assert topk["hp_k"] == 16 and topk["hp_aux_loss_coefficient"] == 0.0
    m = df[df["track"] == "llm"]
    for line in llm:
        row = m[(m["target_L0"] == float(line["target_L0"])) & (m["family"] == line["model"])].iloc[0]
        assert row["L0"] == pytest.approx(float(line["L0_mean"]))
        assert (row["EV_min"], row["EV_max"]) == (pytest.approx(float(line["EV_min"])), pytest.approx(float(line["EV_max"])))
        assert row["n_seeds"] == 3 and pd.isna(row["seed"])


def test_metrics_yaml_is_the_code_dictionary(tmp_path):
    path = tmp_path / "metrics.yaml"
    L.write_metrics_yaml(path)
    data = yaml.safe_load(path.read_text())
    assert list(data["metrics"]) == list(METRICS)
    for name, info in METRICS.items():
        entry = data["metrics"][name]
        assert entry["meaning"] == info.meaning and entry["higher_is_better"] == info.higher_is_better
        assert entry["direction"] == {True: "↑", False: "↓", None: "—"}[info.higher_is_better]
    assert L.read_directions(path) == {n: i.higher_is_better for n, i in METRICS.items()}
    assert "job_max_rss_mb" in data["columns"]


def test_unfinished_atomic_folders_are_never_read(tmp_path):
    run = tmp_path / "runs" / "L1"
    (run / ".L1.abc.tmp" / "r1").mkdir(parents=True)
    (run / ".L1.abc.tmp" / "r1" / "metrics.json").write_text("{not json")
    assert L.find_metric_files([tmp_path / "runs"]) == []
    (run / "r1").mkdir()
    (run / "r1" / "metrics.json").write_text(json.dumps({}))
    assert L.find_metric_files([tmp_path / "runs"]) == [run / "r1" / "metrics.json"]


def test_l0_coverage_flags_a_family_that_does_not_bracket_k():
    from aenbench.tables import l0_coverage

    rows = pd.DataFrame([
        # rho0.5: L1 brackets k = 4 (3.0 ≤ 4 ≤ 6.5); AEN stays below (collapsed); TopK touches k exactly
        {"dataset": "rho0.5", "family": "L1", "teacher_k": 4, "L0": 3.0},
        {"dataset": "rho0.5", "family": "L1", "teacher_k": 4, "L0": 6.5},
        {"dataset": "rho0.5", "family": "AEN", "teacher_k": 4, "L0": 0.6},
        {"dataset": "rho0.5", "family": "AEN", "teacher_k": 4, "L0": 2.8},
        {"dataset": "rho0.5", "family": "TopK", "teacher_k": 4, "L0": 4.0},
        # rho0.9: L1 only denser than k; AEN without an L0
        {"dataset": "rho0.9", "family": "L1", "teacher_k": 4, "L0": 5.0},
        {"dataset": "rho0.9", "family": "L1", "teacher_k": 4, "L0": 9.0},
        {"dataset": "rho0.9", "family": "AEN", "teacher_k": 4, "L0": float("nan")},
    ])
    cov = l0_coverage(rows).set_index(["dataset", "family"])
    assert cov.loc[("rho0.5", "L1"), "brackets"] and cov.loc[("rho0.5", "L1"), "missing"] == ""
    assert cov.loc[("rho0.5", "TopK"), "brackets"]  # L0 = k is at or below and at or above
    assert cov.loc[("rho0.5", "AEN"), "missing"] == "above" and not cov.loc[("rho0.5", "AEN"), "brackets"]
    assert cov.loc[("rho0.9", "L1"), "missing"] == "below"
    assert cov.loc[("rho0.9", "AEN"), "missing"] == "no L0"
    assert cov.loc[("rho0.5", "L1"), ["L0_min", "L0_max", "n_runs"]].tolist() == [3.0, 6.5, 2]
    with pytest.raises(ValueError, match="expected one teacher_k"):
        l0_coverage(pd.concat([rows, pd.DataFrame([{"dataset": "rho0.5", "family": "L1", "teacher_k": 8,
                                                     "L0": 1.0}])]))


def test_params_label_names_every_hyperparameter_that_tells_runs_apart():
    from aenbench.leaderboard import params_label

    aen = {"adaptive": True, "l1_coefficient": 0.04, "l2_coefficient": 0.002, "gamma": 1.0, "beta": 0.9, "p": 0.05,
           "w_max": 10.0, "warmup_steps": 60}
    l1 = {**aen, "adaptive": False, "l2_coefficient": 0.0}
    assert params_label(aen, "l1=0.04") == "l1=0.04 l2=0.002 gamma=1 beta=0.9 p=0.05"
    assert params_label({**aen, "l2_coefficient": 0.0}, "l1=0.04") == "l1=0.04 gamma=1 beta=0.9 p=0.05"  # AL
    assert params_label({**l1, "l2_coefficient": 0.002}, "l1=0.04") == "l1=0.04 l2=0.002"  # EN
    assert params_label(l1, "l1=0.04") == "l1=0.04"  # ℓ1
    assert params_label(l1, "l1=0.04 warmup_steps=60") == "l1=0.04 warmup_steps=60"  # a swept key is always named
    assert params_label({"k": 4, "aux_loss_coefficient": 0.0}, "k=4") == "k=4 aux=0"


def test_scale_label_per_track():
    from aenbench.leaderboard import scale_label

    assert scale_label("synthetic", "rho0.5", {"n": 16, "m": 64, "k": 1}, 300, 64) == "n=16 m=64 k=1; 300×64"
    assert scale_label("synthsae", "s", {"num_features": 128, "hidden_dim": 16}, 200, 64) == "F=128 d=16; 200×64"
    assert scale_label("llm", "smollm2-135m:blocks.3.hook_resid_post", None, 40, 256) == "smollm2-135m; 10,240 tokens"
