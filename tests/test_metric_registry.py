"""The metric registry describes every leaderboard column: a column that the tracks' own metric
code writes and the registry does not know fails here."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from aenbench import leaderboard as L
from aenbench import metric_registry as R

BENCH = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n1.0\t0:00:01\t100\t1\t1\t1\t0\t0\t50\t0.9\n"


def write_record(root: Path, name: str, record: dict) -> Path:
    folder = root / name / "run"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(record))
    return root / name


def make_record(groups: dict, track: str, dataset: str, family: str, architecture: str, teacher=None) -> dict:
    from aenbench.records import make_record, run_block

    res = SimpleNamespace(steps=10, seconds=1.5)
    run = run_block(track=track, dataset=dataset, family_name=family, family={"architecture": architecture},
                    row={"l1_coefficient": 0.1}, params={"l1_coefficient": 0.1, "adaptive": True}, seed=0, res=res,
                    train={"batch_size": 4, "lr": 1e-3}, device="cpu", **({"teacher": teacher} if teacher else {}))
    return make_record(eval_type_id=f"aenbench_{track}", eval_config={}, eval_id="x", groups=groups,
                       sae_cfg={"d_sae": 16}, run_id="run", run=run)


@pytest.fixture(scope="module")
def real_groups(one_layer_bridge):
    """The metric groups every track writes, from the tracks' own metric code on tiny inputs."""
    import torch

    from aenbench.llm.evaluate import activation_metrics, downstream_metrics
    from aenbench.records import merge_groups, training_metrics
    from aenbench.synthetic import synthsae
    from aenbench.synthetic.spiked import spiked_dictionary
    from aenbench.synthetic.track import evaluate_on_spiked
    from aenbench.training import build_training_sae

    torch.manual_seed(0)
    n, m, k = 8, 16, 2
    aen = build_training_sae("aen", n, m, {"adaptive": True, "l1_coefficient": 1e-3, "l2_coefficient": 1e-4}, seed=0)
    trained = training_metrics(SimpleNamespace(dead_mask_M=torch.zeros(m, dtype=torch.bool), dead_window_steps=5),
                               aen, batch_size=4)
    spiked = evaluate_on_spiked(aen, spiked_dictionary(n, m, 0.5, seed=0), k=k, n_samples=64, seed=0,
                                magnitude=(0.5, 1.5), objective_sae=aen)

    class Splice:
        dtype = torch.float32

        def __call__(self, x):
            return aen.decode(aen.encode(x)).detach()

    llm = activation_metrics(aen, torch.randn(32, n))
    llm["downstream"] = downstream_metrics(one_layer_bridge(n), {"sae": Splice()}, "hook", torch.randint(1, 11, (4, 6)),
                                           separator_id=0, mean_D=torch.zeros(n))["sae"]
    teacher = synthsae.build_synthetic_model({"num_features": 64, "hidden_dim": 16, "hierarchy_root_nodes": 1,
                                              "orthogonalization_steps": 5, "seed": 3})
    topk = build_training_sae("topk", 16, 64, {"k": 4, "aux_loss_coefficient": 0.0}, seed=0)
    synth = synthsae.evaluate(topk, teacher, n_samples=256, seed=1)
    return {"synthetic": merge_groups(spiked, trained), "llm": merge_groups(llm, trained),
            "synthsae": merge_groups({**spiked, **synth}, trained)}


def test_every_leaderboard_column_has_a_registry_entry(real_groups, tmp_path, repo_root):
    dirs = [
        write_record(tmp_path, "AEN", make_record(real_groups["synthetic"], "synthetic", "rho0.5", "AEN", "aen",
                                                  teacher={"n": 8, "m": 16, "k": 2})),
        write_record(tmp_path, "LLM", make_record(real_groups["llm"], "llm", "m:hook", "AEN", "aen")),
        write_record(tmp_path, "SYN", make_record(real_groups["synthsae"], "synthsae", "synthsae", "AEN", "aen")),
    ]
    (tmp_path / "bm.tsv").write_text(BENCH)
    lb = L.combine([L.build(dirs, benchmarks=[tmp_path / "bm.tsv"] * len(dirs)),
                    L.paper_rows(Path(repo_root) / "results" / "reference" / "paper")])
    assert {"ce_recovered_zero", "kl_with_sae", "firing_entropy_norm", "synthetic/mcc", "fista_code_gap_median",
            "pct_w_at_max", "job_wall_s", "EV_min", "hp_adaptive"} <= set(lb.columns)
    assert R.unregistered(lb.columns) == [], "add these columns to aenbench.metric_registry (METRICS or COLUMNS)"


def test_an_unknown_metric_is_caught(tmp_path):
    groups = {"sparsity": {"L0": 1.0, "dead_pct": 0.0}, "mine": {"my_new_metric": 0.5}}
    lb = L.build([write_record(tmp_path, "X", make_record(groups, "synthetic", "rho0.5", "X", "x"))])
    assert R.unregistered(lb.columns) == ["my_new_metric"]


def test_column_lists_and_leaderboard_front_are_registered():
    for name, columns in R.COLUMN_LISTS.items():
        assert R.unregistered(columns) == [], name
        assert all(c in R.METRICS for c in columns), name  # the lists are metric columns
    assert R.unregistered([*L.REQUIRED_COLUMNS, *L.PROVENANCE_COLUMNS]) == []


def test_registry_entries_and_helpers():
    from aenbench.synthetic.synthsae import METRICS as SYNTH

    for name, info in R.METRICS.items():
        assert info.group and info.meaning and info.higher_is_better in (True, False, None), name
    assert {f"{R.SYNTHSAE_PREFIX}{k}" for k in SYNTH} <= set(R.METRICS)
    assert R.directions()["dead_pct"] is False and R.directions()["ce_recovered_zero"] is True
    assert (R.arrow(True), R.arrow(False), R.arrow(None)) == (" ↑", " ↓", "")
    assert R.describe("hp_l1_coefficient") == R.COLUMNS["hp_*"] and R.describe("EV_max").endswith("(EV)")
    assert R.describe("nonsense") is None and R.describe("nonsense_min") is None
