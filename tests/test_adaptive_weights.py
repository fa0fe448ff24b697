"""EMA, reference scale r, clipping, warm-up and ramp of w̃ at chosen steps (method.md §2)."""

import math

import pytest
import torch

from aenbench.saes.aen import (
    AENTrainingSAE,
    AENTrainingSAEConfig,
    effective_weights,
    raw_weights,
    reference_scale,
    update_ema,
    warmup_factor,
)


def test_ema_update_and_floor():
    a = torch.tensor([1.0, 1.0, 1e-5])
    acts = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # mean |h| = (1, 0, 0)
    out = update_ema(a, acts, beta=0.9)
    assert out.tolist() == pytest.approx([0.9 * 1 + 0.1 * 1, 0.9, 1e-5])  # third is clamped at 1e-5


def test_reference_scale_uses_ceil_p_m_largest():
    a = torch.tensor([5.0, 1.0, 3.0, 2.0, 4.0])
    assert reference_scale(a, p=0.2).item() == pytest.approx(5.0)  # ⌈1.0⌉ = 1
    assert reference_scale(a, p=0.3).item() == pytest.approx(4.5)  # ⌈1.5⌉ = 2 -> (5 + 4)/2
    assert reference_scale(a, p=0.01).item() == pytest.approx(5.0)  # at least one
    assert reference_scale(a, p=1.0).item() == pytest.approx(3.0)


def test_raw_weights_power_and_clipping():
    a = torch.tensor([4.0, 1.0, 0.0001, 100.0])
    # p = 0.25 -> r = 100; (r/a)^0.5 = (5, 10, 1000, 1) -> clip to [0.5, 8]
    w = raw_weights(a, gamma=0.5, p=0.25, w_min=0.5, w_max=8.0)
    assert w.tolist() == pytest.approx([5.0, 8.0, 8.0, 1.0])
    w_low = raw_weights(torch.tensor([1.0, 2.0]), gamma=1.0, p=1.0, w_min=0.9, w_max=10.0)
    # r = 1.5 -> (1.5, 0.75) -> 0.75 clipped up to 0.9
    assert w_low.tolist() == pytest.approx([1.5, 0.9])


@pytest.mark.parametrize(
    "t, phi", [(0, 0.0), (99, 0.0), (100, 0.0), (150, 0.25), (200, 0.5), (300, 1.0), (10_000, 1.0)]
)
def test_warmup_and_ramp(t, phi):
    assert warmup_factor(t, warmup_steps=100, ramp_steps=200) == pytest.approx(phi)


def test_effective_weights_interpolate_with_phi():
    a = torch.tensor([1.0, 0.25])
    # p = 0.5 -> r = 1; γ = 1 -> w = (1, 4)
    kw = dict(gamma=1.0, p=0.5, w_min=0.01, w_max=10.0, warmup_steps=10, ramp_steps=20)
    assert effective_weights(a, 5, **kw).tolist() == pytest.approx([1.0, 1.0])
    assert effective_weights(a, 20, **kw).tolist() == pytest.approx([1.0, 1.0 + 3.0 * 0.5])
    assert effective_weights(a, 30, **kw).tolist() == pytest.approx([1.0, 4.0])


def test_weights_follow_the_schedule_through_training_steps():
    """Drive the SAE's own update with constant activity and check w̃ at chosen steps."""
    cfg = AENTrainingSAEConfig(d_in=2, d_sae=2, adaptive=True, beta=0.5, p=0.5, gamma=1.0,
                               w_min=0.01, w_max=10.0, warmup_steps=3, ramp_steps=4)
    sae = AENTrainingSAE(cfg)
    acts = torch.tensor([[2.0, 0.5]])
    a = torch.ones(2)
    seen = {}
    for t in range(10):
        w_tilde = sae.update_adaptive_state(acts, t).clone()
        a = torch.clamp(0.5 * a + 0.5 * acts[0], min=1e-5)
        r = a.max()
        w = (r / a).clamp(0.01, 10.0)
        phi = 0.0 if t < 3 else min(1.0, (t - 3) / 4)
        assert w_tilde.tolist() == pytest.approx((1 + (w - 1) * phi).tolist()), t
        seen[t] = w_tilde
    assert seen[2].tolist() == [1.0, 1.0]  # still in warm-up
    assert seen[9][1].item() > 3.0  # ramp complete: the quiet latent is penalised more (w → 4)
    assert math.isclose(seen[9][0].item(), 1.0, rel_tol=1e-3)  # the busiest latent keeps w ≈ 1


def test_non_adaptive_keeps_unit_weights_but_tracks_ema():
    sae = AENTrainingSAE(AENTrainingSAEConfig(d_in=2, d_sae=2, adaptive=False, beta=0.5))
    w = sae.update_adaptive_state(torch.tensor([[3.0, 0.0]]), t=10_000)
    assert w.tolist() == [1.0, 1.0]
    assert sae.ema_activity.tolist() == pytest.approx([2.0, 0.5])
