"""Metrics on cases with known answers."""

import pytest
import torch
from sae_lens.synthetic import mean_correlation_coefficient

from aenbench import metrics as M
from aenbench.metric_registry import METRICS


def test_mcc_is_one_for_permuted_rescaled_sign_flipped_copy():
    g = torch.Generator().manual_seed(0)
    true = torch.randn(50, 20, generator=g)
    perm = torch.randperm(50, generator=g)
    scale = torch.rand(50, 1, generator=g) * 5 + 0.1
    signs = torch.where(torch.rand(50, 1, generator=g) > 0.5, 1.0, -1.0)
    learned = true[perm] * scale * signs
    metrics, true_of_latent = M.dictionary_metrics(learned, true)
    assert metrics["MCC"] == pytest.approx(1.0, abs=1e-12)
    assert metrics["MMCS"] == pytest.approx(1.0, abs=1e-12)
    assert metrics["dict_frob_error"] == pytest.approx(0.0, abs=1e-6)
    assert (true_of_latent == perm.numpy()).all()


def test_mcc_matches_sae_lens_on_random_dictionaries():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(30, 10, generator=g), torch.randn(40, 10, generator=g)
    ours, _ = M.dictionary_metrics(a, b)
    assert ours["MCC"] == pytest.approx(mean_correlation_coefficient(a, b), abs=1e-6)
    assert ours["MCC"] < 0.9


def test_support_metrics_hand_case():
    # 3 true atoms; latents 0,1 matched to atoms 2,0; latent 2 unmatched
    true_of_latent = torch.tensor([2, 0, -1]).numpy()
    h_true = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]])
    acts = torch.tensor([[2.0, 1.0, 0.0],   # predicts atoms {2, 0}: TP 2
                         [0.0, 0.5, 1.0]])  # predicts atom 0 (FP) and unmatched latent 2 (FP); misses 1 (FN)
    out = M.support_metrics(acts, h_true, true_of_latent, torch.ones(3))
    # TP = 2, FP = 2, FN = 1
    assert out["support_precision"] == pytest.approx(0.5)
    assert out["support_recall"] == pytest.approx(2 / 3)
    assert out["support_f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_support_perfect_when_codes_are_recovered():
    h = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]])
    perm = [2, 0, 1]  # latent j holds true atom perm[j]
    acts = h[:, perm]
    out = M.support_metrics(acts, h, torch.tensor(perm).numpy(), torch.ones(3))
    assert out["support_f1"] == 1.0
    assert out["code_rel_l2_error"] == pytest.approx(0.0)


def test_reconstruction_metrics_known_answers():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 8, generator=g) + 3.0
    perfect = M.reconstruction_metrics(x, x.clone())
    assert perfect["EV"] == pytest.approx(1.0) and perfect["MSE"] == 0.0
    assert perfect["shrinkage"] == pytest.approx(1.0) and perfect["l2_ratio"] == pytest.approx(1.0)
    mean_only = M.reconstruction_metrics(x, x.mean(0, keepdim=True).expand_as(x))
    assert mean_only["EV"] == pytest.approx(0.0, abs=1e-9)
    half = M.reconstruction_metrics(x, 0.5 * x)
    assert half["shrinkage"] == pytest.approx(0.5)
    assert half["l2_ratio"] == pytest.approx(0.5)
    assert half["relative_reconstruction_bias"] == pytest.approx(0.5)
    assert half["MSE"] == pytest.approx((0.5 * x).pow(2).mean().item())


def test_sparsity_metrics():
    acts = torch.tensor([[1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, 1.0]])
    out = M.sparsity_metrics(acts)
    assert out["L0"] == pytest.approx(1.5)
    assert out["dead_pct_eval"] == pytest.approx(50.0)


def test_every_metric_has_a_group_and_direction_entry():
    for name, info in METRICS.items():
        assert info.group and info.meaning, name
        assert info.higher_is_better in (True, False, None)


def test_ev_saelens_known_answers():
    """sae-lens's EV is 1 − E‖x − x̂‖² / Var(x) (Var summed over dims). Mean-only reconstruction:
    0. x̂ = x/2 with x of mean 3 and unit variance per dim: 1 − E‖x/2‖² / Var(x) = 1 − (1 + 9)/4 =
    −1.5 in expectation; by hand on the sample below. With the arguments swapped (the old bug) the
    denominator is Var(x̂) = Var(x)/4 and the value would be 1 − 4·2.5 = −9."""
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(20000, 8, generator=g, dtype=torch.float64) + 3.0).float()
    assert M.reconstruction_metrics(x, x.clone())["EV_saelens"] == pytest.approx(1.0)
    mean_only = x.mean(0, keepdim=True).expand_as(x)
    assert M.reconstruction_metrics(x, mean_only)["EV_saelens"] == pytest.approx(0.0, abs=1e-6)
    xd = x.double()
    by_hand = 1.0 - (0.5 * xd).pow(2).sum(-1).mean() / (xd - xd.mean(0)).pow(2).sum(-1).mean()
    got = M.reconstruction_metrics(x, 0.5 * x)["EV_saelens"]
    assert got == pytest.approx(by_hand.item(), rel=1e-6)
    assert got == pytest.approx(-1.5, abs=0.1)
