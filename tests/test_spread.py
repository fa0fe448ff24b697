"""The seed / teacher spread of a family's selected configuration (aenbench.synthetic.spread):
selection, replicates, their leaderboard rows and the mean [min, max] of the closest-to-k table."""

import json
from pathlib import Path

import pandas as pd
import torch
import pytest

from aenbench import leaderboard
from aenbench.configcheck import spread_problems
from aenbench.sweeps import replicate_of
from aenbench.tables import grid_rows, replicates_of

STEPS = 300


@pytest.fixture(scope="module")
def spread_run(tmp_path_factory):
    from test_faults import job_args

    from aenbench.synthetic.spread import SpreadFamily, spread_families
    from aenbench.synthetic.track import make_teacher, train_family

    root = tmp_path_factory.mktemp("spread")
    args = job_args(root, steps=STEPS, every=0, engine="stacked")
    # the family is L1: its runs go to runs/L1 (the leaderboard refuses a record under another family's folder)
    args["out_dir"] = str(root / "results" / "synthetic" / "rho0.5" / "runs" / "L1")
    spec = args["spec"]
    teachers = {}
    for dseed in (0, 1):
        path = root / f"dict-d{dseed}.safetensors"
        make_teacher({**spec, "dictionary_seed": dseed}, path, path.with_suffix(".json"))
        teachers[dseed] = path
    family = {"architecture": "aen", "fixed": {"adaptive": False, "l2_coefficient": 0.0}}
    runs = [(f"l1_coefficient~{l1}_seed~0", {"l1_coefficient": l1, "seed": 0}) for l1 in (0.2, 0.05, 0.01, 0.002)]
    spec = {k: v for k, v in spec.items() if k != "n_diagnostic_supports"}
    kw = dict(dataset="rho0.5", family_name="L1", family=family, runs=runs, spec=spec, train=args["train"],
              arch_defaults=args["arch_defaults"], device="cpu")
    grid = train_family(dictionary_path=teachers[0], out_dir=args["out_dir"], **kw)
    out = root / "results" / "synthetic" / "rho0.5" / "spread" / "L1"
    spread_kw = dict(families=[SpreadFamily("L1", args["out_dir"], family, runs, args["arch_defaults"])],
                     dictionary_path=teachers[0], teacher_paths={1: teachers[1]}, out_dir=out.parent, dataset="rho0.5",
                     spec=spec, evaluation={"eval_samples": 256, "eval_seed": 123}, seeds=[1, 2], device="cpu",
                     train={k: v for k, v in args["train"].items() if k not in ("eval_samples", "eval_seed", "seeds")})
    selection = spread_families(**spread_kw)["L1"]
    return {"grid": grid, "selection": selection, "out": out, "runs_dir": Path(args["out_dir"]), "kw": spread_kw,
            "teachers": teachers, "args": args, "spec": spec}


def _flat(record):
    return {k: v for group in record["eval_result_metrics"].values() for k, v in group.items()}


def test_the_selected_configuration_is_the_grid_run_closest_to_k(spread_run):
    k = 1
    l0 = {r["sae_lens_id"]: _flat(r)["L0"] for r in spread_run["grid"]}
    assert len(set(l0.values())) == len(l0)  # no tie to break in this grid
    want = min(l0, key=lambda run: abs(l0[run] - k))
    assert spread_run["selection"]["run_id"] == want
    assert spread_run["selection"]["L0"] == pytest.approx(l0[want])
    saved = json.loads((spread_run["out"] / "selection.json").read_text())
    assert saved["run_id"] == want and len(saved["candidates"]) == 4


def test_the_replicates_are_other_seeds_and_another_teacher(spread_run):
    out, sel = spread_run["out"], spread_run["selection"]
    seed_runs = sorted(p.name for p in (out / "seed" / "runs").iterdir() if (p / "metrics.json").exists())
    assert seed_runs == sorted(sel["run_id"][:-len("seed~0")] + f"seed~{s}" for s in (1, 2))
    records = {p.parent.name + "/" + p.parent.parent.parent.name: json.loads(p.read_text())
               for p in out.glob("*/runs/*/metrics.json")}
    assert len(records) == 3
    seeds = sorted((r["run"]["seed"], r["run"]["teacher"]["dictionary_seed"]) for r in records.values())
    assert seeds == [(0, 1), (1, 0), (2, 0)]
    grid_record = next(r for r in spread_run["grid"] if r["sae_lens_id"] == sel["run_id"])
    params = {r["run"]["hyperparameters"]["l1_coefficient"] for r in records.values()}
    assert params == {grid_record["run"]["hyperparameters"]["l1_coefficient"]}
    # another seed or another teacher gives another SAE: the spread is not a copy of the grid run
    for record in records.values():
        assert record["run"]["weights_sha256"] != grid_record["run"]["weights_sha256"]


def test_a_rerun_trains_nothing(spread_run, caplog):
    from aenbench.synthetic.spread import spread_families

    import shutil
    shutil.rmtree(spread_run["out"])  # Snakemake removes a directory output before it reruns the job
    caplog.set_level("INFO", logger="aenbench.stages")
    spread_families(**spread_run["kw"])
    assert sum("not retrained" in r.getMessage() for r in caplog.records) == 3


def test_families_in_lockstep_share_a_stack_and_train_the_weights_each_gets_alone(spread_run, tmp_path):
    """train_runs_lockstep (the spread's engine): an ℓ1 and an AEN run of one seed go in one stack
    and end bit for bit where train_runs puts each family alone; a TopK run beside them too."""
    from aenbench.synthetic.track import spiked_data, train_runs, train_runs_lockstep

    data = spiked_data(spread_run["teachers"][0], spread_run["spec"], {"eval_samples": 256, "eval_seed": 123})
    train = spread_run["kw"]["train"]
    defaults = spread_run["args"]["arch_defaults"]
    parts = [
        ("L1", {"architecture": "aen", "fixed": {"adaptive": False, "l2_coefficient": 0.0}},
         [("l1_coefficient~0.05_seed~3", {"l1_coefficient": 0.05, "seed": 3})]),
        ("AEN", {"architecture": "aen", "fixed": {"adaptive": True, "l2_coefficient": 0.002}},
         [("l1_coefficient~0.01_seed~3", {"l1_coefficient": 0.01, "seed": 3})]),
        ("TopK", {"architecture": "topk", "fixed": {"aux_loss_coefficient": 0.0}}, [("k~2_seed~3", {"k": 2, "seed": 3})]),
    ]
    together = train_runs_lockstep(
        data=data, dataset="rho0.5", train=train, device="cpu",
        parts=[(tmp_path / "a" / "results" / name / "trained", name, fam, runs, defaults) for name, fam, runs in parts])
    alone = [train_runs(data=data, out_dir=tmp_path / "b" / "results" / name / "trained", dataset="rho0.5",
                        family_name=name, family=fam, runs=runs, train=train, arch_defaults=defaults, device="cpu")
             for name, fam, runs in parts]
    for (name, _, _), (a,), (b,) in zip(parts, together, alone):
        assert a["weights_sha256"] == b["weights_sha256"], name
        assert a["training_state_sha256"] == b["training_state_sha256"], name  # buffers too (AEN's EMA)
    engines = {name: json.loads((tmp_path / "a" / "results" / name / "trained" / runs[0][0] / "training.json")
                                .read_text())["engine"] for name, _, runs in parts}
    assert engines["L1"]["name"] == engines["AEN"]["name"] == "lockstep"
    assert engines["L1"]["member_engine"] == "stacked" and engines["L1"]["member_size"] == 2  # one stack of both
    assert engines["TopK"]["member_engine"] == "per_sae" and engines["TopK"]["lockstep_saes"] == 3


def test_leaderboard_rows_carry_their_replicate(spread_run):
    lb = leaderboard.combine([
        leaderboard.build([spread_run["runs_dir"]], kind="family"),
        leaderboard.build([spread_run["out"].parent], kind="family", replicates=True),
    ])
    assert len(lb) == 4 + 3
    assert sorted(lb["replicate"]) == ["", "", "", "", "seed", "seed", "teacher"]
    assert set(lb.loc[lb["replicate"] == "teacher", "teacher_dictionary_seed"]) == {1}
    assert set(lb.loc[lb["replicate"] != "teacher", "teacher_dictionary_seed"]) == {0}
    assert len(grid_rows(lb)) == 4
    # the written CSV reads back the same split (an empty replicate becomes NaN in a CSV)
    path = spread_run["out"].parent / "lb.csv"
    leaderboard.write(lb, path)
    back = leaderboard.read(path)
    assert len(grid_rows(back)) == 4
    sel = grid_rows(back)[grid_rows(back)["metrics_path"].str.contains(spread_run["selection"]["run_id"])].iloc[0]
    assert len(replicates_of(back, sel)) == 4


def test_closest_to_k_reports_mean_and_range_over_the_replicates(spread_run):
    from aenbench.synthetic.figures import closest_to_k

    lb = leaderboard.combine([
        leaderboard.build([spread_run["runs_dir"]], kind="family"),
        leaderboard.build([spread_run["out"].parent], kind="family", replicates=True),
    ])
    table = closest_to_k(lb, k=1)
    assert len(table) == 1
    row = table.iloc[0]
    runs = lb[lb["params"] == row["config"]]
    assert row["n_replicates"] == 4 and row["replicates"] == "seed seed teacher"
    assert row["dead_pct"] == pytest.approx(runs["dead_pct"].mean())
    assert row["EV_min"] == pytest.approx(runs["EV"].min()) and row["EV_max"] == pytest.approx(runs["EV"].max())
    # without its replicates the same table is the grid run alone
    alone = closest_to_k(grid_rows(lb), k=1).iloc[0]
    assert alone["n_replicates"] == 1 and alone["config"] == row["config"]


def test_replicate_labels_and_config_problems():
    assert replicate_of(("L1", "seed", "runs", "r", "metrics.json")) == "seed"
    assert replicate_of(("L1", "teacher-d3", "runs", "r", "metrics.json")) == "teacher"
    with pytest.raises(ValueError, match="not inside a spread replicate folder"):
        replicate_of(("L1", "runs", "r", "metrics.json"))
    syn = {"families": ["L1"], "dictionary_seed": 0, "train": {"seeds": [0, 1]},
           "spread": {"seeds": [1], "dictionary_seeds": [0], "families": ["AEN"]}}
    problems = spread_problems(syn)
    assert any("needs one grid seed" in p for p in problems)
    assert any("synthetic.spread.seeds lists [1], already grid seeds" in p for p in problems)
    assert any("dictionary_seeds lists 0, the grid's own teacher" in p for p in problems)
    assert any("spread.families lists 'AEN'" in p for p in problems)
    assert spread_problems({"families": ["L1"], "train": {"seeds": [0]},
                            "spread": {"seeds": [1, 2], "dictionary_seeds": [1]}}) == []


def test_the_dead_ev_figure_draws_the_spread_and_flags_coverage(spread_run, tmp_path, monkeypatch):
    from aenbench.synthetic import figures

    lb = leaderboard.combine([
        leaderboard.build([spread_run["runs_dir"]], kind="family"),
        leaderboard.build([spread_run["out"].parent], kind="family", replicates=True),
    ])
    drawn = {}
    real = figures.plt.Axes.errorbar

    def spy(ax, x, y, *args, **kw):
        drawn.setdefault("bars", []).append((x[0], y[0]))
        return real(ax, x, y, *args, **kw)

    monkeypatch.setattr(figures.plt.Axes, "errorbar", spy)
    for k, flagged in ((1, False), (1000, True)):  # no run reaches L0 ≥ 1000: the grid misses that end
        drawn.clear()
        out = tmp_path / f"k{k}.png"
        figures.dead_ev_vs_l0(lb, k, out)
        assert out.stat().st_size > 0
        # k = 1: one diamond per panel for the family's selected run; k = 1000: the run closest to it is
        # another configuration, which has no replicates, so no bars
        assert len(drawn.get("bars", [])) == (0 if flagged else 2)
        table = figures.closest_to_k(lb, k=k)
        assert bool(table.iloc[0]["brackets_k"]) is not flagged
        assert table.iloc[0]["coverage_missing"] == ("above" if flagged else "")


def test_lockstep_on_a_stateless_stream_checkpoints_and_resumes_by_replay(spread_run, tmp_path):
    """The spiked stream has no state_dict: a lockstep checkpoint then saves none, and a resume
    replays the stream to the checkpoint's step; the weights equal an uninterrupted run's."""
    from aenbench.lockstep import train_lockstep
    from aenbench.synthetic.track import spiked_data
    from aenbench.training import build_training_sae

    data = spiked_data(spread_run["teachers"][0], spread_run["spec"], {"eval_samples": 256, "eval_seed": 123})
    defaults = spread_run["args"]["arch_defaults"]["aen"]

    def groups():
        saes = [build_training_sae("aen", data.d_in, data.d_sae, {**defaults, "adaptive": a, "l1_coefficient": 0.02,
                                                                  "l2_coefficient": 0.0}, 5) for a in (False, True)]
        return [("stacked", saes, ["l1", "al"]),
                ("per_sae", [build_training_sae("topk", data.d_in, data.d_sae, {"k": 2}, 5)], ["t"])]

    kw = dict(steps=60, batch_size=32, lr=1e-3, dead_window_steps=10, auxk_dead_window_steps=10, device="cpu",
              max_grad_norm=None)
    full = groups()
    train_lockstep(full, data.make_stream(5, 32), **kw)

    class Killed(Exception):
        pass

    stream = data.make_stream(5, 32)
    assert not hasattr(stream, "state_dict")
    real_next, drawn = type(stream).__next__, []

    def dying(self):
        if len(drawn) == 47:
            raise Killed
        drawn.append(1)
        return real_next(self)

    type(stream).__next__ = dying
    try:
        with pytest.raises(Killed):
            train_lockstep(groups(), stream, checkpoint_dir=tmp_path / "ck", checkpoint_every=20,
                           run_fingerprint="fp", **kw)
    finally:
        type(stream).__next__ = real_next
    assert json.loads((tmp_path / "ck" / "latest" / "checkpoint.json").read_text())["step"] == 40
    resumed = groups()
    res = train_lockstep(resumed, data.make_stream(5, 32), checkpoint_dir=tmp_path / "ck", checkpoint_every=20,
                         run_fingerprint="fp", **kw)
    assert res.resumed_at == 40
    for (_, a, _), (_, b, _) in zip(full, resumed):
        for x, y in zip(a, b):
            for k, v in x.state_dict().items():
                assert torch.equal(v, y.state_dict()[k]), k
