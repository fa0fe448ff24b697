"""The AEN objective of method.md §2 against hand computations on a 2-d, 2-latent example.

Fixed example: W_enc = I, b_enc = 0, b_dec = 0, W_dec rows (0.6, 0.8) and (0.8, −0.6)
(unit norm, so ``project`` leaves them unchanged), x = (1, 2).

    h  = ReLU(x W_enc) = (1, 2)
    x̂  = h W_dec = (0.6 + 1.6, 0.8 − 1.2) = (2.2, −0.4)
    x − x̂ = (−1.2, 2.4);  Σ (x − x̂)² = 1.44 + 5.76 = 7.2
    authors' MSE = 7.2 / n = 3.6;  sae-lens MSE = 7.2
    Σ|h| = 3, Σh² = 5

Adaptive case, β = 0.5, p = 0.5 (⌈p·m⌉ = 1), γ = 1, T_w = 0, R = 0, first step (t = 0):
    a = 0.5·(1, 1) + 0.5·(1, 2) = (1, 1.5);  r = 1.5;  w = (1.5/1, 1.5/1.5) = (1.5, 1)
    φ(0) = 1 (R = 0: a step at T_w = 0);  w̃ = (1.5, 1);  Σ w̃|h| = 1.5 + 2 = 3.5
"""

import pytest
import torch

from aenbench.saes.aen import AENTrainingSAE, AENTrainingSAEConfig
from sae_lens.saes.sae import TrainStepInput

L1, L2 = 0.1, 0.01


def make_sae(**overrides):
    cfg = AENTrainingSAEConfig(
        d_in=2, d_sae=2, l1_coefficient=L1, beta=0.5, p=0.5, gamma=1.0,
        warmup_steps=0, ramp_steps=0, **overrides,
    )
    sae = AENTrainingSAE(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(2))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        sae.W_dec.copy_(torch.tensor([[0.6, 0.8], [0.8, -0.6]]))
    return sae


def loss_terms(sae, x=((1.0, 2.0),), t=0):
    out = sae.training_forward_pass(
        TrainStepInput(
            sae_in=torch.tensor(x), coefficients=sae.get_coefficients(),
            dead_neuron_mask=None, n_training_steps=t, is_logging_step=False,
        )
    )
    return {k: v.item() for k, v in out.losses.items()}, out.loss.item()


@pytest.mark.parametrize(
    "variant, adaptive, l2, expected_l1, expected_l2",
    [
        ("L1", False, 0.0, L1 * 3.0, 0.0),
        ("EN", False, L2, L1 * 3.0, L2 * 5.0),
        ("AL", True, 0.0, L1 * 3.5, 0.0),
        ("AEN", True, L2, L1 * 3.5, L2 * 5.0),
    ],
)
def test_four_variants_match_hand_computation(variant, adaptive, l2, expected_l1, expected_l2):
    sae = make_sae(adaptive=adaptive, l2_coefficient=l2)
    losses, total = loss_terms(sae)
    assert losses["mse_loss"] == pytest.approx(3.6, rel=1e-6)
    assert losses["l1_loss"] == pytest.approx(expected_l1, rel=1e-6), variant
    assert losses["l2_loss"] == pytest.approx(expected_l2, rel=1e-6, abs=1e-12), variant
    assert total == pytest.approx(3.6 + expected_l1 + expected_l2, rel=1e-6)


def test_sae_lens_convention_sums_mse_over_dims():
    sae = make_sae(adaptive=False, l2_coefficient=L2, loss_convention="sae_lens")
    losses, _ = loss_terms(sae)
    assert losses["mse_loss"] == pytest.approx(7.2, rel=1e-6)
    assert losses["l1_loss"] == pytest.approx(L1 * 3.0, rel=1e-6)


def test_conventions_differ_by_factor_n_when_lambdas_are_scaled():
    """L'(λ' = n·λ) = n·L(λ): the mapping documented in the module docstring."""
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(0))
    totals = {}
    for conv, scale in (("authors", 1.0), ("sae_lens", 5.0)):
        torch.manual_seed(3)
        sae = AENTrainingSAE(AENTrainingSAEConfig(
            d_in=5, d_sae=7, l1_coefficient=0.01 * scale, l2_coefficient=0.002 * scale, loss_convention=conv))
        totals[conv] = loss_terms(sae, x.tolist())[1]
    assert totals["sae_lens"] == pytest.approx(5.0 * totals["authors"], rel=1e-5)


def test_batch_mean_of_penalties():
    """Two samples: penalties are summed over latents and averaged over the batch."""
    sae = make_sae(adaptive=False, l2_coefficient=L2)
    losses, _ = loss_terms(sae, x=((1.0, 2.0), (3.0, 0.0)))
    # h = (1, 2) and (3, 0): Σ|h| = 3 and 3 -> mean 3; Σh² = 5 and 9 -> mean 7
    assert losses["l1_loss"] == pytest.approx(L1 * 3.0, rel=1e-6)
    assert losses["l2_loss"] == pytest.approx(L2 * 7.0, rel=1e-6)


def test_weight_penalty_scales_codes_by_decoder_norm():
    """Under weight_penalty the penalised code is h_j‖W_dec[j]‖: doubling row 0 doubles its term."""
    sae = make_sae(adaptive=False, l2_coefficient=L2, decoder_norm="weight_penalty")
    with torch.no_grad():
        sae.W_dec[0] *= 2.0
    losses, _ = loss_terms(sae)
    # penalised acts (1·2, 2·1) = (2, 2): Σ = 4, Σ² = 8
    assert losses["l1_loss"] == pytest.approx(L1 * 4.0, rel=1e-6)
    assert losses["l2_loss"] == pytest.approx(L2 * 8.0, rel=1e-6)


def test_ema_is_updated_before_the_loss_and_stored():
    sae = make_sae(adaptive=True, l2_coefficient=0.0)
    loss_terms(sae)
    assert sae.ema_activity.tolist() == pytest.approx([1.0, 1.5])
    assert sae.adaptive_weights.tolist() == pytest.approx([1.5, 1.0])
    assert int(sae.weights_step) == 0


@pytest.mark.parametrize(
    "field, value",
    [("l1_coefficient", -1.0), ("l2_coefficient", -0.1), ("beta", 1.0), ("beta", 0.0), ("p", 0.0),
     ("p", 1.5), ("w_min", 20.0), ("decoder_norm", "sideways"), ("loss_convention", "mine")],
)
def test_bad_hyperparameters_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        AENTrainingSAEConfig(d_in=2, d_sae=2, **{field: value})


def test_nonneg_penalties_equal_the_general_ones_in_value_and_gradient():
    """The fast path for ReLU codes (no |·| pass, ‖h‖² by one norm) is the same function."""
    import torch

    from aenbench.saes.aen import aen_penalties, update_ema

    g = torch.Generator().manual_seed(0)
    acts = torch.relu(torch.randn(64, 32, generator=g)).requires_grad_(True)
    w = torch.rand(32, generator=g) + 0.5
    fast = aen_penalties(acts, w, 0.3, 0.2, nonneg=True)
    grads_fast = torch.autograd.grad(fast["l1_loss"] + fast["l2_loss"], acts)[0]
    slow = aen_penalties(acts, w, 0.3, 0.2)
    grads_slow = torch.autograd.grad(slow["l1_loss"] + slow["l2_loss"], acts)[0]
    for key in ("l1_loss", "l2_loss"):
        torch.testing.assert_close(fast[key], slow[key], rtol=1e-6, atol=0)
    # |h| has subgradient 0 at h = 0 and the fast path gradient w there: only where h > 0 must agree
    torch.testing.assert_close(grads_fast[acts > 0], grads_slow[acts > 0], rtol=1e-5, atol=1e-7)
    a = torch.full((32,), 0.5)
    torch.testing.assert_close(update_ema(a, acts.detach(), 0.9, nonneg=True), update_ema(a, acts.detach(), 0.9))


@pytest.mark.parametrize("decoder_norm", ["project", "weight_penalty"])
def test_penalty_coefficients_on_raw_codes_equal_the_penalties_on_penalised_codes(decoder_norm):
    """Σ l1_j|h_j| + Σ l2_j h_j² (the per-latent form FISTA needs) = λ₁ Σ w̃|h̃| + λ₂ Σ h̃², per sample."""
    from aenbench.saes.aen import l1_penalty, l2_penalty, penalised_codes, penalty_coefficients

    g = torch.Generator().manual_seed(1)
    h = torch.relu(torch.randn(6, 4, generator=g, dtype=torch.float64))
    W = torch.randn(4, 3, generator=g, dtype=torch.float64)  # rows of norm ≠ 1
    w = torch.rand(4, generator=g, dtype=torch.float64) + 0.5
    l1_M, l2 = penalty_coefficients(w, L1, L2, W, decoder_norm)
    h_tilde = penalised_codes(h, W, decoder_norm)
    torch.testing.assert_close(l1_penalty(h, l1_M) + l2_penalty(h, l2),
                               L1 * l1_penalty(h_tilde, w) + L2 * l2_penalty(h_tilde))
    assert isinstance(l2, float) == (decoder_norm == "project")
