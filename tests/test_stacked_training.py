"""The stacked engine (aenbench.stacked_training) against the per-SAE path (aenbench.training).

A stack of 16 ``aen`` SAEs — 4 configurations each of ℓ1, EN, AL and AEN, the adaptive ones
crossing T_w = 100 and the ramp R = 50 within 300 steps — is trained both ways from the same
seed and compared: weights and buffers, dead masks, the sae-lens metadata, then the whole
metrics JSON through the train and evaluation stages.
"""

import json
import math
from pathlib import Path

import pytest
import torch

from aenbench.stacked_training import train_stack
from aenbench.synthetic.spiked import SpikedStream, spiked_dictionary
from aenbench.training import build_training_sae, train_sae

N, M, K_TRUE, BATCH, STEPS, SEED = 16, 64, 3, 32, 300, 3
BASE = {"warmup_steps": 100, "ramp_steps": 50, "w_min": 0.01, "w_max": 10.0, "beta": 0.9, "p": 0.05, "gamma": 1.0,
        "decoder_norm": "project", "loss_convention": "authors"}
L1S = (0.04, 0.02, 0.01, 0.004)
# ℓ1, EN, AL, AEN at four λ₁ each; some AL/AEN with another γ, p or β (a stack may vary them all)
CONFIGS = [
    cfg
    for i, l1 in enumerate(L1S)
    for cfg in (
        {**BASE, "adaptive": False, "l1_coefficient": l1, "l2_coefficient": 0.0},
        {**BASE, "adaptive": False, "l1_coefficient": l1, "l2_coefficient": 0.004},
        {**BASE, "adaptive": True, "l1_coefficient": l1, "l2_coefficient": 0.0, "gamma": (1.0, 0.5)[i % 2]},
        {**BASE, "adaptive": True, "l1_coefficient": l1, "l2_coefficient": 0.004, "p": (0.05, 0.01)[i % 2],
         "beta": (0.9, 0.99)[i // 2], "warmup_steps": (100, 150)[i % 2]},
    )
]
REL = 1e-5


def stream():
    return SpikedStream(spiked_dictionary(N, M, 0.5, 0), K_TRUE, BATCH, seed=SEED)


def per_sae(configs, steps=STEPS):
    return [train_sae(build_training_sae("aen", N, M, c, SEED), stream(), steps=steps, batch_size=BATCH, lr=1e-3,
                      dead_window_steps=50) for c in configs]


def stacked(configs, steps=STEPS, **kw):
    saes = [build_training_sae("aen", N, M, c, SEED) for c in configs]
    return train_stack(saes, stream(), names=[f"run{i}" for i in range(len(configs))], steps=steps, batch_size=BATCH,
                       lr=1e-3, dead_window_steps=50, **kw)


def rel_diff(a, b):
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-30)).item()


@pytest.fixture(scope="module")
def both():
    return per_sae(CONFIGS), stacked(CONFIGS)


def test_a_stack_of_sixteen_trains_what_the_per_sae_path_trains(both):
    ref, stack = both
    assert stack.diverged == [] and stack.stack_size == len(CONFIGS)
    adaptive_moved = 0
    for c, a, b in zip(CONFIGS, ref, stack.results):
        sa, sb = a.sae.state_dict(), b.sae.state_dict()
        assert sa.keys() == sb.keys() and {"ema_activity", "adaptive_weights", "weights_step"} <= sa.keys()
        for key in sa:
            assert rel_diff(sb[key], sa[key]) <= REL, (c, key, rel_diff(sb[key], sa[key]))
        assert torch.equal(a.dead_mask_M, b.dead_mask_M), c
        assert torch.equal(a.trainer.n_forward_passes_since_fired, b.trainer.n_forward_passes_since_fired)
        assert a.sae.cfg.metadata.l0 == pytest.approx(b.sae.cfg.metadata.l0, rel=REL)
        assert a.sae.cfg.metadata.num_dead_features == b.sae.cfg.metadata.num_dead_features
        ca, cb = a.sae.cfg.to_dict(), b.sae.cfg.to_dict()
        ca.pop("metadata"), cb.pop("metadata")
        assert ca == cb
        assert [t["step"] for t in a.sae.adaptive_trace] == [t["step"] for t in b.sae.adaptive_trace]
        for ta, tb in zip(a.sae.adaptive_trace, b.sae.adaptive_trace):
            assert tb == pytest.approx(ta, rel=REL, abs=1e-9)
        if c["adaptive"]:  # w̃ has left 1: the test covers the ramp, not only the warm-up
            adaptive_moved += int((a.sae.adaptive_weights - 1).abs().max() > 0.1)
        else:
            assert torch.equal(b.sae.adaptive_weights, torch.ones(M))
    assert adaptive_moved == 8


def test_a_stack_of_one_equals_the_per_sae_path(both):
    ref, _ = both
    for i in (0, 15):
        one = stacked([CONFIGS[i]]).results[0]
        for key, value in ref[i].sae.state_dict().items():
            assert rel_diff(one.sae.state_dict()[key], value) <= REL, key
        assert torch.equal(one.dead_mask_M, ref[i].dead_mask_M)


def test_a_sae_trains_bit_for_bit_the_same_whatever_its_stack_mates(both):
    """On CPU the batched matmuls compute each SAE's slice alone: its weights do not depend on the
    stack's size or on the other SAEs in it (why train.stack_size is not in the fingerprint)."""
    _, stack = both
    for i, mates in ((5, []), (14, CONFIGS[:3]), (0, CONFIGS[8:])):
        got = stacked([CONFIGS[i], *mates]).results[0].sae.state_dict()
        want = stack.results[i].sae.state_dict()
        assert all(torch.equal(got[k], want[k]) for k in want), i


@pytest.mark.parametrize("decoder_norm,loss_convention", [("project", "authors"), ("weight_penalty", "sae_lens")])
def test_the_per_sae_clip_and_both_conventions_match_the_per_sae_path(monkeypatch, decoder_norm, loss_convention):
    """Inputs ×20, so sae-lens's gradient-norm clip at 1.0 bites at every step (counted on the
    per-SAE path), under both decoder normalisations and both MSE conventions."""
    import torch.nn.utils

    d_MN = spiked_dictionary(N, M, 0.5, 0) * 20
    clip, norms = torch.nn.utils.clip_grad_norm_, []

    def counting_clip(params, max_norm, *args, **kwargs):
        total = clip(params, max_norm, *args, **kwargs)
        norms.append(float(total))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", counting_clip)
    configs = [{**BASE, "warmup_steps": 20, "ramp_steps": 10, "decoder_norm": decoder_norm,
                "loss_convention": loss_convention, "adaptive": a, "l1_coefficient": 0.02, "l2_coefficient": l2}
               for a in (False, True) for l2 in (0.0, 0.004)]
    ref = [train_sae(build_training_sae("aen", N, M, c, 1), SpikedStream(d_MN, K_TRUE, BATCH, seed=1), steps=60,
                     batch_size=BATCH, lr=1e-3, dead_window_steps=10) for c in configs]
    assert len(norms) == 4 * 60 and min(norms) > 1.0
    out = train_stack([build_training_sae("aen", N, M, c, 1) for c in configs], SpikedStream(d_MN, K_TRUE, BATCH, seed=1),
                      names=list("abcd"), steps=60, batch_size=BATCH, lr=1e-3, dead_window_steps=10)
    for a, b in zip(ref, out.results):
        for key, value in a.sae.state_dict().items():
            assert rel_diff(b.sae.state_dict()[key], value) <= REL, key


def test_a_diverging_sae_is_frozen_and_named_and_the_others_train_on():
    """Faults injected: 1 SAE whose ℓ1 weights overflow float32 once its adaptive weights ramp in
    (γ = 40, w_max = 3e38): its loss turns inf after T_w, not at the start."""
    bad = {**CONFIGS[3], "gamma": 40.0, "w_max": 3e38, "l1_coefficient": 10.0}
    configs = [CONFIGS[0], bad, CONFIGS[7]]
    out = stacked(configs)
    assert [d.run for d in out.diverged] == ["run1"]
    d = out.diverged[0]
    assert BASE["warmup_steps"] <= d.step < STEPS
    assert not all(math.isfinite(v) for v in d.losses.values()) and "l1_loss" in d.losses
    assert out.results[1] is None
    alone = stacked([configs[0], configs[2]])
    for got, want in ((out.results[0], alone.results[0]), (out.results[2], alone.results[1])):
        assert all(torch.equal(got.sae.state_dict()[k], v) for k, v in want.sae.state_dict().items())


def test_a_resumed_stack_is_bit_identical(tmp_path):
    """Faults injected: 1 interruption (a checkpoint at step 200 picked up by a new trainer)."""
    full = stacked(CONFIGS[:6], checkpoint_dir=tmp_path / "ckpt", checkpoint_every=100, run_fingerprint="fp")
    meta = json.loads((tmp_path / "ckpt" / "latest" / "checkpoint.json").read_text())
    assert meta["step"] == 200
    again = stacked(CONFIGS[:6], checkpoint_dir=tmp_path / "ckpt", checkpoint_every=100, run_fingerprint="fp")
    assert again.resumed_at == 200
    other = stacked(CONFIGS[:6], checkpoint_dir=tmp_path / "ckpt", checkpoint_every=100, run_fingerprint="other")
    assert other.resumed_at == 0  # a checkpoint of another stack is not used
    for a, b in zip(full.results, again.results):
        assert all(torch.equal(a.sae.state_dict()[k], v) for k, v in b.sae.state_dict().items())
        assert torch.equal(a.trainer.act_freq_scores, b.trainer.act_freq_scores)
        assert a.sae.adaptive_trace == b.sae.adaptive_trace


# --------------------------------------------------------------------------- through the stages

def test_the_stages_write_the_same_metrics_with_either_engine(tmp_path):
    from test_faults import job_args

    from aenbench.synthetic.track import make_teacher, train_family

    family = {"architecture": "aen", "grid": {"l1_coefficient": list(L1S), "adaptive": [False, True],
                                              "l2_coefficient": [0.0, 0.004]}}
    runs = [(f"r{i}", {"l1_coefficient": l1, "adaptive": ad, "l2_coefficient": l2, "seed": 0})
            for i, (l1, ad, l2) in enumerate((l1, ad, l2) for l1 in L1S for ad in (False, True) for l2 in (0.0, 0.004))]
    out = {}
    for engine in ("per_sae", "stacked"):
        args = job_args(tmp_path / engine, steps=STEPS, every=0)
        args["train"].update(engine=engine, stack_size=16)
        d = Path(args["dictionary"])
        d.parent.mkdir(parents=True)
        make_teacher(args["spec"], d, d.with_suffix(".json"))
        out[engine] = train_family(dictionary_path=d, out_dir=args["out_dir"], dataset="rho0.5", family_name="G",
                                   family=family, runs=runs, spec=args["spec"], train=args["train"],
                                   arch_defaults=args["arch_defaults"], device="cpu")
    assert len(out["stacked"]) == 16
    for a, b in zip(out["per_sae"], out["stacked"]):
        assert a["run"]["engine"] == {"name": "per_sae"}
        assert b["run"]["engine"]["name"] == "stacked" and b["run"]["engine"]["stack_size"] == 16
        assert a["eval_result_metrics"].keys() == b["eval_result_metrics"].keys()
        for group, values in a["eval_result_metrics"].items():
            for key, want in values.items():
                assert b["eval_result_metrics"][group][key] == pytest.approx(want, rel=REL, abs=1e-12), (group, key)
        ra, rb = ({k: v for k, v in r["run"].items() if k not in ("engine", "train_seconds", "training_fingerprint",
                                                                    "weights_sha256", "git_commit", "versions")}
                  for r in (a, b))
        assert ra == rb


def test_a_job_with_a_diverged_sae_fails_naming_it_and_keeps_the_others(tmp_path, caplog):
    """Faults injected: 1 SAE in a family job of 3 whose ℓ1 term overflows float32 at once (λ₁ = 3e38)."""
    from test_faults import job_args

    from aenbench.stages import TrainingDiverged
    from aenbench.synthetic.track import make_teacher, train_family

    args = job_args(tmp_path, steps=STEPS, every=0, engine="stacked")
    make_teacher(args["spec"], args["dictionary"], tmp_path / "diag.json")
    family = {"architecture": "aen", "fixed": {"adaptive": True, "l2_coefficient": 0.002}}
    good = [(f"l1~{l1}", {"l1_coefficient": l1, "seed": 0}) for l1 in (0.04, 0.02)]
    bad = ("l1~3e38_bad", {"l1_coefficient": 3e38, "seed": 0})
    kw = dict(dictionary_path=args["dictionary"], out_dir=args["out_dir"], dataset="rho0.5", family_name="AEN",
              family=family, spec=args["spec"], train=args["train"], arch_defaults=args["arch_defaults"], device="cpu")
    with pytest.raises(TrainingDiverged) as err:
        train_family(runs=[good[0], bad, good[1]], **kw)
    msg = str(err.value)
    assert "1 SAE(s) diverged" in msg and "l1~3e38_bad at step 0" in msg and "l1_loss=inf" in msg
    assert "The other 2 trained SAE(s) are in the store" in msg
    assert not Path(args["out_dir"]).exists()  # no family folder, no metrics for a failed job
    assert len(list((tmp_path / "results" / "store" / "trained").glob("*/training.json"))) == 2
    caplog.clear()
    caplog.set_level("INFO", logger="aenbench.stages")
    records = train_family(runs=good, **kw)  # the rerun without it trains nothing
    assert [r["sae_lens_id"] for r in records] == ["l1~0.04", "l1~0.02"]
    assert sum("not retrained" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize("engine", ["per_sae", "stacked"])
@pytest.mark.parametrize("max_grad_norm", [None, 0.5, 1.0])
def test_max_grad_norm_is_the_clip_adam_sees(monkeypatch, engine, max_grad_norm):
    """Inputs ×20 (gradient norms ≫ 1): with ``max_grad_norm: null`` the gradient backward made
    reaches Adam unchanged; with c it reaches Adam at norm c (per SAE), on both engines."""
    d_MN = spiked_dictionary(N, M, 0.5, 0) * 20
    configs = [{**BASE, "adaptive": False, "l1_coefficient": 0.02, "l2_coefficient": l2} for l2 in (0.0, 0.004)]
    seen = []  # (raw norm from backward, norm at Adam) per SAE and step

    def record(optimizer, *_):
        params = [p for g in optimizer.param_groups for p in g["params"]]
        at_adam = torch.stack([p.grad.reshape(p.shape[0] if engine == "stacked" else 1, -1).norm(dim=1)
                               for p in params]).norm(dim=0)
        raw = torch.stack([raw_grads[id(p)].reshape(at_adam.shape[0], -1).norm(dim=1) for p in params]).norm(dim=0)
        seen.extend(zip(raw.tolist(), at_adam.tolist()))

    raw_grads = {}
    real_adam = torch.optim.Adam

    def hooked_adam(params, *args, **kwargs):
        params = list(params)
        for p in params:
            p.register_hook(lambda g, p=p: raw_grads.__setitem__(id(p), g.detach().clone()))
        opt = real_adam(params, *args, **kwargs)
        opt.register_step_pre_hook(record)
        return opt

    if engine == "per_sae":
        import sae_lens.training.sae_trainer as st

        monkeypatch.setattr(st, "Adam", hooked_adam)
        for c in configs:
            train_sae(build_training_sae("aen", N, M, c, 1), SpikedStream(d_MN, K_TRUE, BATCH, seed=1), steps=5,
                      batch_size=BATCH, lr=1e-3, dead_window_steps=1, max_grad_norm=max_grad_norm)
    else:
        monkeypatch.setattr(torch.optim, "Adam", hooked_adam)
        train_stack([build_training_sae("aen", N, M, c, 1) for c in configs], SpikedStream(d_MN, K_TRUE, BATCH, seed=1),
                    names=["a", "b"], steps=5, batch_size=BATCH, lr=1e-3, dead_window_steps=1,
                    max_grad_norm=max_grad_norm)
    assert len(seen) == 10
    for raw, at_adam in seen:
        assert raw > 1.0
        if max_grad_norm is None:
            assert at_adam == raw
        else:
            assert at_adam == pytest.approx(max_grad_norm, rel=1e-5)
