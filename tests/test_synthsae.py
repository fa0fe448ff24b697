"""The SynthSAEBench-style teacher built with sae-lens's ``sae_lens.synthetic``."""

import math

import numpy as np
import pytest
import torch
from sae_lens.synthetic import (
    FoldedNormalMagnitudeConfig,
    HierarchyConfig,
    LinearMagnitudeConfig,
    LowRankCorrelationConfig,
    OrthogonalizationConfig,
    SyntheticModelConfig,
    ZipfianFiringProbabilityConfig,
    init_sae_to_match_feature_dict,
)

from aenbench.synthetic.synthsae import (
    DEFAULT_SPEC,
    METRICS,
    SYNTHSAEBENCH_16K_SPEC,
    SyntheticStream,
    activation_stream,
    build_synthetic_model,
    evaluate,
    load_model,
    save_model,
    spec_to_config,
)
from aenbench.training import build_training_sae, train_sae

# the CPU default shape, smaller still: N = 256 features in D = 32 dims, 2 root trees (2 × 85 = 170
# features in the hierarchy), 20 orthogonalisation steps — builds in a fraction of a second
SMALL = {"num_features": 256, "hidden_dim": 32, "hierarchy_root_nodes": 2, "orthogonalization_steps": 20, "seed": 3}


@pytest.fixture(scope="module")
def model():
    return build_synthetic_model(SMALL)


def _walk(nodes, parent, out):
    for node in nodes:
        out.append((node, parent))
        _walk(node.children, node, out)
    return out


def test_published_preset_is_the_synthsaebench_16k_config():
    # the configuration of decoderesearch/synth-sae-bench-16k-v1 as sae-lens's docs write it
    published = SyntheticModelConfig(
        num_features=16_384,
        hidden_dim=768,
        firing_probability=ZipfianFiringProbabilityConfig(exponent=0.5, max_prob=0.4, min_prob=5e-4),
        hierarchy=HierarchyConfig(total_root_nodes=128, branching_factor=4, max_depth=3,
                                  mutually_exclusive_portion=1.0, mutually_exclusive_min_depth=0,
                                  compensate_probabilities=True, scale_children_by_parent=True),
        orthogonalization=OrthogonalizationConfig(num_steps=100, lr=3e-4),
        correlation=LowRankCorrelationConfig(rank=25, correlation_scale=0.1),
        mean_firing_magnitudes=LinearMagnitudeConfig(start=5.0, end=4.0),
        std_firing_magnitudes=FoldedNormalMagnitudeConfig(mean=0.5, std=0.5),
        bias=0.5,
        seed=42,
    )
    assert spec_to_config(SYNTHSAEBENCH_16K_SPEC).to_dict() == published.to_dict()
    # the CPU default differs only in size
    assert {k for k in DEFAULT_SPEC if DEFAULT_SPEC[k] != SYNTHSAEBENCH_16K_SPEC[k]} == {
        "num_features", "hidden_dim", "hierarchy_root_nodes"}


def test_spec_switches_and_errors():
    cfg = spec_to_config({**SMALL, "hierarchy_root_nodes": 0, "correlation_rank": 0,
                          "orthogonalization_steps": 0, "magnitude_std_std": 0.0, "bias": 0.0})
    assert cfg.hierarchy is None and cfg.correlation is None and cfg.orthogonalization is None
    assert cfg.std_firing_magnitudes == 0.5 and cfg.bias is False
    with pytest.raises(ValueError, match="unknown synthsae spec keys"):
        spec_to_config({"num_feature": 10})
    with pytest.raises(ValueError, match="integer seed"):
        spec_to_config({"seed": None})


def test_same_spec_same_model_and_stream_other_seeds_differ(model):
    twin = build_synthetic_model(SMALL)
    assert torch.equal(twin.feature_dict.feature_vectors, model.feature_dict.feature_vectors)
    assert torch.equal(twin.activation_generator.firing_probabilities, model.activation_generator.firing_probabilities)
    other = build_synthetic_model({**SMALL, "seed": 4})
    assert not torch.equal(other.feature_dict.feature_vectors, model.feature_dict.feature_vectors)

    a, b, c = (activation_stream(model, 16, seed=s) for s in (7, 7, 8))
    batches_a = [next(a) for _ in range(3)]
    torch.rand(100)  # draws from the global RNG between batches must not matter
    batches_b = [next(b) for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(batches_a, batches_b))
    assert batches_a[0].dtype == torch.float32 and batches_a[0].shape == (16, SMALL["hidden_dim"])
    assert not torch.equal(batches_a[0], next(c))
    assert not torch.equal(batches_a[0], batches_a[1])  # the stream moves on
    # the same seed on the twin teacher gives the same batches; the stream leaves the global RNG alone
    state = torch.get_rng_state()
    assert torch.equal(next(activation_stream(twin, 16, seed=7)), batches_a[0])
    assert torch.equal(torch.get_rng_state(), state)


def test_save_load_round_trip(model, tmp_path):
    save_model(model, tmp_path / "teacher")
    state = torch.get_rng_state()
    loaded = load_model(tmp_path / "teacher")
    assert torch.equal(torch.get_rng_state(), state)  # sae-lens's loader draws from it; we restore it
    assert loaded.cfg.to_dict() == model.cfg.to_dict()
    for name in ("feature_vectors", "bias"):
        assert torch.equal(getattr(loaded.feature_dict, name), getattr(model.feature_dict, name))
    for name in ("firing_probabilities", "std_firing_magnitudes", "mean_firing_magnitudes"):
        assert torch.equal(getattr(loaded.activation_generator, name), getattr(model.activation_generator, name))
    assert loaded.hierarchy == model.hierarchy
    assert torch.equal(loaded.correlation_matrix.correlation_factor, model.correlation_matrix.correlation_factor)
    x_loaded, f_loaded = next(SyntheticStream(loaded, 64, seed=5, with_features=True))
    x, f = next(SyntheticStream(model, 64, seed=5, with_features=True))
    assert torch.equal(x_loaded, x) and torch.equal(f_loaded, f)


def test_zipf_and_hierarchy_are_in_the_samples(model):
    n = SMALL["num_features"]
    _, f = next(SyntheticStream(model, 20_000, seed=11, with_features=True))
    fires = f > 0
    freq = fires.float().mean(dim=0)
    base = spec_to_config(SMALL).firing_probability.generate(n)  # configured Zipf, before any hierarchy effect

    nodes = _walk(model.hierarchy.roots, None, [])
    in_tree = {node.feature_index for node, _ in nodes}
    assert len(in_tree) == 2 * (1 + 4 + 16 + 64)
    # hierarchy: a child never fires without its parent; mutually exclusive siblings never fire together
    for node, parent in nodes:
        if parent is not None:
            assert not (fires[:, node.feature_index] & ~fires[:, parent.feature_index]).any()
        if node.mutually_exclusive_children and node.children:
            kids = [c.feature_index for c in node.children]
            assert fires[:, kids].sum(dim=1).max() <= 1
    assert any(node.mutually_exclusive_children for node, _ in nodes)

    # features outside the hierarchy fire at their configured Zipf probability (the Gaussian copula
    # of the correlations keeps the marginals): within 5 binomial standard errors
    out = torch.tensor(sorted(set(range(n)) - in_tree))
    se = (base[out] * (1 - base[out]) / f.shape[0]).sqrt()
    assert ((freq[out] - base[out]).abs() / se).max() < 5
    # roots are gated by nothing: also at their configured probability
    roots = [r.feature_index for r in model.hierarchy.roots]
    assert torch.allclose(freq[roots], base[roots], atol=0.02)
    # frequency decreases with rank: the mean frequency of the tree levels (features are numbered
    # breadth-first: roots 0–1, then 8, 32, 128 children), then of rank bins outside the trees; the
    # log-log slope over the features outside the hierarchy is the configured one
    levels = [freq[lo:hi].mean().item() for lo, hi in [(0, 2), (2, 10), (10, 42), (42, 170)]]
    assert all(a > 2 * b for a, b in zip(levels, levels[1:])), levels
    tail = [freq[lo:hi].mean().item() for lo, hi in [(170, 198), (198, 227), (227, 256)]]
    assert all(a > b for a, b in zip(tail, tail[1:])), tail
    log_rank = np.log(out.numpy() + 1.0)
    slope_emp = np.polyfit(log_rank, np.log(freq[out].clamp(min=1e-6).numpy()), 1)[0]
    slope_cfg = np.polyfit(log_rank, np.log(base[out].numpy()), 1)[0]
    assert slope_emp == pytest.approx(slope_cfg, rel=0.15)
    assert slope_cfg < -1.0
    # correlations: sae-lens's low-rank copula of the configured rank is in place
    assert model.correlation_matrix.correlation_factor.shape == (n, DEFAULT_SPEC["correlation_rank"])


def test_known_answer_eval_true_dictionary_vs_random(model):
    d_in, n = SMALL["hidden_dim"], SMALL["num_features"]
    random_sae = build_training_sae("topk", d_in, n, {"k": 4, "aux_loss_coefficient": 0.0}, seed=0)
    true_sae = build_training_sae("topk", d_in, n, {"k": 4, "aux_loss_coefficient": 0.0}, seed=0)
    init_sae_to_match_feature_dict(true_sae, model.feature_dict)
    random_sae.train()
    rnd = evaluate(random_sae, model, n_samples=4000, seed=1)["synth_eval"]
    assert random_sae.training  # sae-lens's eval switches to eval mode; we restore the mode
    true = evaluate(true_sae, model, n_samples=4000, seed=1)["synth_eval"]
    assert true == evaluate(true_sae, model, n_samples=4000, seed=1)["synth_eval"]  # seeded samples

    assert set(true) == {f"synthetic/{name}" for name in METRICS}
    assert all(isinstance(v, float) and math.isfinite(v) for v in true.values())
    assert true["synthetic/mcc"] > 0.99 and true["synthetic/uniqueness"] == 1.0
    assert rnd["synthetic/mcc"] < 0.6 and rnd["synthetic/uniqueness"] < 0.8
    assert true["synthetic/classification/f1_score"] > rnd["synthetic/classification/f1_score"] + 0.2
    assert true["synthetic/true_l0"] == rnd["synthetic/true_l0"]  # same seeded eval samples
    assert true["synthetic/sae_l0"] == 4.0


def test_smoke_train_then_evaluate_in_range(model, tmp_path):
    torch.set_num_threads(1)
    d_in = SMALL["hidden_dim"]
    sae = build_training_sae("topk", d_in, 64, {"k": 4, "aux_loss_coefficient": 0.0}, seed=0)
    res = train_sae(sae, activation_stream(model, 64, seed=2), steps=100, batch_size=64, lr=1e-3,
                    dead_window_steps=50, auxk_dead_window_steps=50)
    assert res.steps == 100
    sae.save_inference_model(str(tmp_path / "sae"))
    from sae_lens import SAE

    inference = SAE.load_from_disk(str(tmp_path / "sae"))
    groups = evaluate(inference, model, n_samples=2000, seed=9)
    m = groups["synth_eval"]
    assert all(math.isfinite(v) for v in m.values())
    for name in ("mcc", "uniqueness", "classification/precision", "classification/recall",
                 "classification/f1_score", "classification/accuracy"):
        assert 0.0 <= m[f"synthetic/{name}"] <= 1.0, name
    assert 0.0 <= m["synthetic/dead_latents"] <= 64
    assert m["synthetic/sae_l0"] <= 4.0 and m["synthetic/true_l0"] > 0
    assert m["synthetic/explained_variance"] <= 1.0 and m["synthetic/shrinkage"] > 0
    # the trained SAE beats its own random init on the ground truth
    init = build_training_sae("topk", d_in, 64, {"k": 4, "aux_loss_coefficient": 0.0}, seed=0)
    assert m["synthetic/mcc"] > evaluate(init, model, n_samples=2000, seed=9)["synth_eval"]["synthetic/mcc"]
