"""A store entry is shared by every run with its fingerprint (the same weights), but each run's
folders name that run: the default main job failed when sae-lens TopK k = 4 on ρ 0.9 reused the
training of the `topk_init` ablation's base arm (same settings), and its folder came out as
``seed~0`` (the ablation's run name) instead of ``k~4_seed~0``."""

import json

import pytest

from aenbench.stages import StoreError, trained_runs

STEPS = 60


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    from test_faults import job_args

    from aenbench.synthetic.track import make_teacher, train_family

    root = tmp_path_factory.mktemp("identity")
    args = job_args(root, steps=STEPS, every=0, engine="per_sae")
    spec = {k: v for k, v in args["spec"].items() if k != "n_diagnostic_supports"}
    make_teacher(args["spec"], args["dictionary"], root / "dict.json")
    family = {"architecture": "aen", "fixed": {"adaptive": False, "l2_coefficient": 0.0}}
    base = root / "results" / "synthetic" / "rho0.5"
    kw = dict(dictionary_path=args["dictionary"], dataset="rho0.5", spec=spec, train=args["train"],
              arch_defaults=args["arch_defaults"], device="cpu")
    # the "ablation" trains first, under its own run name and family; the family's grid point has
    # the same settings and seed, so the same fingerprint
    first = train_family(out_dir=base / "ablations" / "abl", family_name="abl", family=family,
                         runs=[("seed~0", {"seed": 0, "l1_coefficient": 0.02})], **kw)
    second = train_family(out_dir=base / "runs" / "L1", family_name="L1", family=family,
                          runs=[(f"l1_coefficient~{l1}_seed~0", {"l1_coefficient": l1, "seed": 0}) for l1 in (0.02, 0.01)],
                          **kw)
    return {"base": base, "first": first, "second": second}


def test_a_reused_training_is_laid_out_under_this_runs_name(shared):
    runs = shared["base"] / "runs" / "L1"
    assert sorted(p.name for p in runs.iterdir() if p.is_dir()) == ["l1_coefficient~0.01_seed~0",
                                                                     "l1_coefficient~0.02_seed~0"]
    trained = json.loads((shared["base"] / "trained" / "L1" / "l1_coefficient~0.02_seed~0" / "training.json").read_text())
    assert trained["run_id"] == "l1_coefficient~0.02_seed~0" and trained["family"] == "L1"
    assert trained["row"] == {"l1_coefficient": 0.02, "seed": 0}


def test_the_shared_weights_are_the_same_and_the_records_name_their_own_run(shared):
    abl = shared["first"][0]
    grid = next(r for r in shared["second"] if r["sae_lens_id"] == "l1_coefficient~0.02_seed~0")
    assert grid["run"]["weights_sha256"] == abl["run"]["weights_sha256"]  # trained once
    assert grid["run"]["family"] == "L1" and abl["run"]["family"] == "abl"
    assert grid["eval_id"] == "rho0.5/L1/l1_coefficient~0.02_seed~0"
    # the store's own entry still names the run that trained it: laying out never wrote through the link
    store = shared["base"].parent.parent / "store" / "trained"
    names = {json.loads(p.read_text())["run_id"] for p in store.glob("*/training.json")}
    assert "seed~0" in names


def test_a_folder_that_names_another_run_is_refused(shared, tmp_path):
    import shutil

    bad = tmp_path / "trained"
    shutil.copytree(shared["base"] / "trained" / "L1", bad)
    path = bad / "l1_coefficient~0.01_seed~0" / "training.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "run_id": "seed~0"}))
    with pytest.raises(StoreError, match="names run 'seed~0'"):
        trained_runs(bad)
