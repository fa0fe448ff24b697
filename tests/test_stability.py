"""Stability / amortisation diagnostics (aenbench.stability) against cases with known answers.

Perturbations δ = eps·‖x‖·u (u uniform on the sphere):
* linear map x ↦ s·x Q (Q orthogonal): every ratio ‖h(x+δ) − h(x)‖/‖δ‖ is s;
* ReLU(s·x) with every coordinate of x far from 0 (|x_i| ≥ 1 > ‖δ‖): no support flips, ratio = s
  when all coordinates are positive and s·‖P u‖ (P = projection on the k positive coordinates)
  otherwise, so E[ratio²] = s²·k/n;
* 1-d ReLU(s·x), x > 0, eps = 2: δ = ±2x, so x + δ ∈ {3x, −x}: ratio s (no flip) or s/2 (flip);
* a lookup encoder with hand-chosen clean/perturbed codes fixes the radius and the flip
  normalisation |Δ supp| / max(1, |supp h(x)|) exactly.
FISTA: closed-form minimiser when W_dec has orthogonal rows (the problem separates per
latent); optimality and KKT on a random overcomplete dictionary; F matches sae-lens's loss.
"""

import math

import pytest
import torch

from aenbench.stability import (
    aen_objective_params,
    amortisation_gap,
    elastic_net_objective,
    fista_nonneg_elastic_net,
    perturbation_stats,
)

torch.set_num_threads(1)
F64 = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def orthogonal(n, seed):
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen(seed), dtype=F64))
    return q


# --------------------------------------------------------------------------- perturbations


def test_linear_orthogonal_map_has_every_ratio_equal_to_scale_and_no_flips():
    n, s, eps = 7, 2.5, 0.05
    A = s * orthogonal(n, 0)
    # codes with |h_j| ≥ 1 and mixed signs; |Δh_j| ≤ s‖δ‖ = eps·‖h‖ < 1 cannot flip a sign
    v = (1 + torch.rand(6, n, generator=gen(1), dtype=F64)) * torch.where(
        torch.rand(6, n, generator=gen(2), dtype=F64) < 0.5, -1.0, 1.0
    )
    x = v @ A.T / s**2  # x A = v
    assert (eps * v.norm(dim=-1) < 1).all()
    out = perturbation_stats(lambda z: z @ A, x, eps=eps, n_perturb=30, seed=0, return_samples=True)
    for key in ("lipschitz_median", "lipschitz_p99", "lipschitz_max"):
        assert out[key] == pytest.approx(s, rel=1e-5), key
    assert torch.allclose(out["ratios_BK"], torch.full((6, 30), s, dtype=F64), rtol=1e-5)
    assert out["support_flip_rate"] == 0.0 and out["support_flip_any"] == 0.0
    assert out["n_ratios"] == 180


def test_relu_far_from_kinks_positive_coords_gives_scale_and_no_flips():
    n, s, eps = 6, 3.0, 0.05
    x = 1 + torch.rand(5, n, generator=gen(3), dtype=F64)  # coords in [1, 2], ‖δ‖ ≤ 2√6·0.05 < 1
    out = perturbation_stats(lambda z: torch.relu(s * z), x, eps=eps, n_perturb=25, seed=1)
    for key in ("lipschitz_median", "lipschitz_p99", "lipschitz_max"):
        assert out[key] == pytest.approx(s, rel=1e-9), key
    assert out["support_flip_rate"] == 0.0 and out["support_flip_any"] == 0.0


def test_relu_with_fixed_sign_pattern_projects_an_isotropic_direction():
    """k of n coordinates active and no flips: ratio = s‖P u‖, E[ratio²] = s²·k/n for uniform u."""
    n, k, s, eps, B, K = 8, 2, 1.5, 0.05, 4, 500
    mag = 1 + torch.rand(B, n, generator=gen(4), dtype=F64)
    sign = torch.tensor([1.0] * k + [-1.0] * (n - k), dtype=F64)
    x = mag * sign  # ‖δ‖ ≤ 0.05·2√8 < 1 ≤ |x_i|
    out = perturbation_stats(lambda z: torch.relu(s * z), x, eps=eps, n_perturb=K, seed=2, return_samples=True)
    r = out["ratios_BK"]
    assert out["support_flip_rate"] == 0.0 and out["support_flip_any"] == 0.0
    assert out["lipschitz_max"] <= s * (1 + 1e-12)
    # ‖P u‖² ~ Beta(k/2, (n−k)/2): mean k/n = 0.25, sd ≈ 0.19 → standard error ≈ 0.0043
    assert (r**2 / s**2).mean().item() == pytest.approx(k / n, abs=0.025)


def test_one_dimensional_relu_flips_exactly_when_the_ratio_halves():
    s = 2.0
    x = torch.linspace(0.5, 3.0, 8, dtype=F64).unsqueeze(-1)  # x > 0, δ = ±2x
    out = perturbation_stats(lambda z: torch.relu(s * z), x, eps=2.0, n_perturb=50, seed=3, return_samples=True)
    r, f = out["ratios_BK"], out["flip_frac_BK"]
    low = torch.isclose(r, torch.full_like(r, s / 2), rtol=1e-12)
    high = torch.isclose(r, torch.full_like(r, s), rtol=1e-12)
    assert (low | high).all()
    assert torch.equal(f == 1.0, low) and torch.equal(f == 0.0, high)
    assert out["support_flip_rate"] == out["support_flip_any"]
    assert out["lipschitz_max"] == pytest.approx(s)
    assert min(abs(out["lipschitz_median"] - v) for v in (s / 2, 0.75 * s, s)) < 1e-12
    # u = ±1 with probability 1/2 each: 400 draws, sd 0.025
    assert out["support_flip_rate"] == pytest.approx(0.5, abs=0.125)


def test_radius_and_flip_normalisation_with_a_lookup_encoder():
    """Clean rows get hand-chosen codes, every perturbed row gets P = (1, 1, 0, 0, 0):
    |Δ supp| / max(1, |supp|) = 2/1, 1/3, 3/1 and ‖P − h(x_b)‖ = √2, 1, √6 over ‖δ‖ = eps·‖x_b‖."""
    x = torch.randn(3, 4, generator=gen(5), dtype=F64) * torch.tensor([[0.5], [2.0], [7.0]], dtype=F64)
    clean = torch.tensor([[0, 0, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 2, 0]], dtype=F64)
    pert = torch.tensor([1, 1, 0, 0, 0], dtype=F64)

    def encode(rows):
        match = (rows[:, None, :] == x[None, :, :]).all(dim=-1)  # (R, 3)
        assert (match.sum(dim=-1) <= 1).all()
        return torch.where(match.any(dim=-1, keepdim=True), match.to(F64) @ clean, pert)

    eps = 0.3
    out = perturbation_stats(encode, x, eps=eps, n_perturb=4, seed=4, chunk_size=2, return_samples=True)
    norms = x.norm(dim=-1)
    expected_r = torch.tensor([math.sqrt(2), 1.0, math.sqrt(6)], dtype=F64) / (eps * norms)
    assert torch.allclose(out["ratios_BK"], expected_r[:, None].expand(3, 4), rtol=1e-9)
    expected_f = torch.tensor([2.0, 1 / 3, 3.0], dtype=F64)
    assert torch.allclose(out["flip_frac_BK"], expected_f[:, None].expand(3, 4))
    assert out["support_flip_rate"] == pytest.approx(expected_f.mean().item())
    assert out["support_flip_any"] == 1.0
    assert out["lipschitz_max"] == pytest.approx(expected_r.max().item(), rel=1e-9)


def test_seed_reproducible_chunk_invariant_and_zero_norm_rejected():
    W = torch.randn(5, 9, generator=gen(6), dtype=F64)
    x = torch.randn(7, 5, generator=gen(7), dtype=F64)

    def enc(z):
        return torch.relu(z @ W - 0.3)

    a = perturbation_stats(enc, x, eps=0.2, n_perturb=6, seed=11, chunk_size=3, return_samples=True)
    b = perturbation_stats(enc, x, eps=0.2, n_perturb=6, seed=11, chunk_size=1000, return_samples=True)
    c = perturbation_stats(enc, x, eps=0.2, n_perturb=6, seed=12, return_samples=True)
    assert torch.equal(a["ratios_BK"], b["ratios_BK"]) and torch.equal(a["flip_frac_BK"], b["flip_frac_BK"])
    assert not torch.equal(a["ratios_BK"], c["ratios_BK"])
    assert a["lipschitz_median"] <= a["lipschitz_p99"] <= a["lipschitz_max"]
    assert 0.0 <= a["support_flip_any"] <= 1.0
    x[2] = 0
    with pytest.raises(ValueError, match="‖x_b‖ = 0"):
        perturbation_stats(enc, x, eps=0.2, n_perturb=2, seed=0)


# --------------------------------------------------------------------------- FISTA


@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("c", [1 / 6, 1.0])
def test_fista_matches_closed_form_on_orthonormal_dictionary(l2, c):
    n = 6
    W = orthogonal(n, 8)  # rows orthonormal, m = n
    b = torch.randn(n, generator=gen(9), dtype=F64)
    x = torch.randn(10, n, generator=gen(10), dtype=F64)
    l1 = 2 * c * torch.rand(n, generator=gen(11), dtype=F64)  # mixes active and inactive latents
    z = (x - b) @ W.T
    expected = torch.clamp((2 * c * z - l1) / (2 * c + 2 * l2), min=0)
    assert 0 < (expected > 0).sum() < expected.numel()
    h = fista_nonneg_elastic_net(x, W, b, l1_M=l1, l2=l2, mse_scale=c, n_iter=500, tol=1e-12)
    assert torch.allclose(h, expected, atol=1e-10)


@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_fista_matches_closed_form_on_rescaled_orthogonal_rows(l2):
    """W = D Q[:m] (m < n, row norms d_j): h*_j = max(0, (2c z_j − l1_j)/(2c d_j² + 2 l2)), z = (x − b)Wᵀ.
    Curvatures differ per latent, so this needs real iterations, not one exact prox step."""
    n, m, c = 8, 5, 1 / 8
    d = torch.linspace(0.3, 1.5, m, dtype=F64)
    W = d[:, None] * orthogonal(n, 12)[:m]
    b = 0.1 * torch.randn(n, generator=gen(13), dtype=F64)
    x = torch.randn(12, n, generator=gen(14), dtype=F64)
    l1 = 0.1 * torch.rand(m, generator=gen(15), dtype=F64)
    z = (x - b) @ W.T
    expected = torch.clamp((2 * c * z - l1) / (2 * c * d**2 + 2 * l2), min=0)
    h, info = fista_nonneg_elastic_net(
        x, W, b, l1_M=l1, l2=l2, mse_scale=c, n_iter=5000, tol=1e-13, return_info=True
    )
    assert info["converged"] and info["n_iter"] > 5
    assert info["lipschitz"] == pytest.approx(2 * c * 1.5**2 + 2 * l2)
    assert torch.allclose(h, expected, atol=1e-8)


@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_fista_is_optimal_and_satisfies_kkt_on_overcomplete_dictionary(l2):
    n, m, B, c = 6, 12, 8, 1 / 6
    W = torch.randn(m, n, generator=gen(16), dtype=F64)
    W = W / W.norm(dim=-1, keepdim=True)
    b = 0.1 * torch.randn(n, generator=gen(17), dtype=F64)
    x = torch.randn(B, n, generator=gen(18), dtype=F64)
    l1 = 0.05 * (0.5 + torch.rand(m, generator=gen(19), dtype=F64))
    kw = {"l1_M": l1, "l2": l2, "mse_scale": c}
    h_sae = torch.relu((x - b) @ W.T - 0.05)  # a tied-weights ReLU SAE code
    h = fista_nonneg_elastic_net(x, W, b, n_iter=20000, tol=1e-12, **kw)
    F = elastic_net_objective(h, x, W, b, **kw)
    assert (h >= 0).all()
    assert (F <= elastic_net_objective(h_sae, x, W, b, **kw) + 1e-12).all()
    assert (F <= elastic_net_objective(torch.zeros_like(h), x, W, b, **kw) + 1e-12).all()
    for seed in range(20):
        h_pert = torch.clamp(h + 1e-2 * torch.randn(h.shape, generator=gen(100 + seed), dtype=F64), min=0)
        assert (F <= elastic_net_objective(h_pert, x, W, b, **kw) + 1e-12).all()
    # KKT for min f(h) + l1·h over h ≥ 0: g = ∇f + l1 is 0 on the support and ≥ 0 off it
    g = -2 * c * (x - b - h @ W) @ W.T + 2 * l2 * h + l1
    active = h > 1e-9
    assert active.any() and (~active).any()
    assert g[active].abs().max().item() < 1e-7
    assert g[~active].min().item() > -1e-7
    # warm start from the SAE code reaches the same objective
    h_warm = fista_nonneg_elastic_net(x, W, b, n_iter=20000, tol=1e-12, h_init_BM=h_sae, **kw)
    assert torch.allclose(elastic_net_objective(h_warm, x, W, b, **kw), F, rtol=1e-9)


AEN_OBJECTIVES = pytest.mark.parametrize("convention", ["authors", "sae_lens"])
AEN_DECODER_NORMS = pytest.mark.parametrize("decoder_norm", ["project", "weight_penalty"])


def step_input(sae, x, t):
    from sae_lens.saes.sae import TrainStepInput

    return TrainStepInput(sae_in=x, coefficients=sae.get_coefficients(), dead_neuron_mask=None,
                          n_training_steps=t, is_logging_step=False)


def aen_after_one_step(convention, decoder_norm):
    """An adaptive AEN training SAE with non-unit decoder rows, after one training forward pass on
    9 samples (w̃ ≠ 1 from it); returns (sae, x, that pass's output)."""
    from aenbench.saes.aen import AENTrainingSAE, AENTrainingSAEConfig

    torch.manual_seed(0)
    cfg = AENTrainingSAEConfig(
        d_in=5, d_sae=7, l1_coefficient=0.2, l2_coefficient=0.03, adaptive=True, beta=0.5,
        p=0.3, gamma=1.0, warmup_steps=0, ramp_steps=0, decoder_norm=decoder_norm,
        loss_convention=convention,
    )
    sae = AENTrainingSAE(cfg)
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.5, 2.0, 7)[:, None])  # non-unit rows matter for weight_penalty
        sae.b_dec.copy_(0.1 * torch.randn(5))
        sae.b_enc.fill_(0.1)
    x = torch.randn(9, 5, generator=gen(20))
    return sae, x, sae.training_forward_pass(step_input(sae, x, 0))


@AEN_OBJECTIVES
@AEN_DECODER_NORMS
def test_objective_params_reproduce_the_aen_training_loss(convention, decoder_norm):
    """mean_b F(h_b) with aen_objective_params(sae) equals sae-lens's total training loss."""
    sae, x, out = aen_after_one_step(convention, decoder_norm)
    params = aen_objective_params(sae)
    assert not torch.allclose(params["l1_M"], params["l1_M"][0].expand(7))  # adaptive weights in play
    F = elastic_net_objective(out.feature_acts.detach(), x, sae.W_dec.detach(), sae.b_dec.detach(), **params)
    assert F.mean().item() == pytest.approx(out.loss.item(), rel=1e-5)
    h = fista_nonneg_elastic_net(x, sae.W_dec.detach(), sae.b_dec.detach(), n_iter=3000, tol=1e-9, **params)
    F_exact = elastic_net_objective(h, x, sae.W_dec.detach(), sae.b_dec.detach(), **params)
    assert (F_exact <= F + 1e-5).all()


@AEN_OBJECTIVES
@AEN_DECODER_NORMS
def test_fista_objective_is_the_training_loss_term_by_term_per_sample(convention, decoder_norm):
    """Each sample's FISTA objective F_b (elastic_net_objective with aen_objective_params: what
    FISTA minimises and the gap is measured in) equals the loss that the training path
    (sae-lens's training_forward_pass) computes on the batch {x_b} with the same codes and w̃,
    term by term. F is linear in (c, l1, l2), so a term is F with the other coefficients at 0."""
    sae, x, out = aen_after_one_step(convention, decoder_norm)
    params = aen_objective_params(sae)
    W, b = sae.W_dec.detach(), sae.b_dec.detach()
    h = out.feature_acts.detach()
    zero = torch.zeros_like(params["l1_M"])
    terms = {
        "mse_loss": {"l1_M": zero, "l2": 0.0, "mse_scale": params["mse_scale"]},
        "l1_loss": {"l1_M": params["l1_M"], "l2": 0.0, "mse_scale": 0.0},
        "l2_loss": {"l1_M": zero, "l2": params["l2"], "mse_scale": 0.0},
    }
    F = elastic_net_objective(h, x, W, b, **params)
    sae.cfg.adaptive = False  # the single-sample passes keep the w̃ of the 9-sample step
    w_tilde = sae.adaptive_weights.clone()
    for i in range(len(x)):
        one = sae.training_forward_pass(step_input(sae, x[i : i + 1], 1))
        assert torch.equal(one.feature_acts.detach(), h[i : i + 1])
        for name, coefficients in terms.items():
            f_i = elastic_net_objective(h[i : i + 1], x[i : i + 1], W, b, **coefficients).item()
            assert f_i == pytest.approx(one.losses[name].item(), rel=1e-5, abs=1e-9), (i, name)
        assert F[i].item() == pytest.approx(one.loss.item(), rel=1e-5)
    assert torch.equal(sae.adaptive_weights, w_tilde)
    assert (h > 0).any(dim=-1).all()  # every sample has an active code: its penalties are not 0


# --------------------------------------------------------------------------- amortisation gap


def test_amortisation_gap_is_zero_for_identical_codes():
    h = torch.relu(torch.randn(6, 4, generator=gen(21), dtype=F64))
    F = torch.rand(6, generator=gen(22), dtype=F64) + 0.5
    out = amortisation_gap(h, h.clone(), F, F.clone())
    assert out["code_gap_median"] == 0.0 and out["code_gap_p90"] == 0.0
    assert out["objective_gap_median"] == 0.0
    assert out["support_f1_vs_exact"] == 1.0
    empty = torch.zeros(2, 3)
    assert amortisation_gap(empty, empty, torch.ones(2), torch.ones(2))["support_f1_vs_exact"] == 1.0


def test_amortisation_gap_hand_computed():
    """h* rows (2,0,0), (0,1,0), (3,4,0); h_a rows (2,0,0), (0,1,1), (3,0,0):
    code gaps 0, 1/1, 4/5 → median 0.8, p90 = 0.8 + 0.8·(1 − 0.8) = 0.96;
    F* = (1, 2, −4), F_a = (1, 3, −2) → objective gaps 0, 0.5, 0.5 → median 0.5;
    supports: TP = 3, FP = 1 (h_a only at (1,2)), FN = 1 (h* only at (2,1)) → F1 = 6/8."""
    h_exact = torch.tensor([[2.0, 0, 0], [0, 1, 0], [3, 4, 0]])
    h_amort = torch.tensor([[2.0, 0, 0], [0, 1, 1], [3, 0, 0]])
    out = amortisation_gap(h_amort, h_exact, torch.tensor([1.0, 3, -2]), torch.tensor([1.0, 2, -4]))
    assert out["code_gap_median"] == pytest.approx(0.8)
    assert out["code_gap_p90"] == pytest.approx(0.96)
    assert out["objective_gap_median"] == pytest.approx(0.5)
    assert out["support_f1_vs_exact"] == pytest.approx(0.75)
    assert out["support_precision_vs_exact"] == pytest.approx(0.75)
    assert out["support_recall_vs_exact"] == pytest.approx(0.75)
