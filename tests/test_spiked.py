"""The spiked teacher of method.md §3."""

import pytest
import torch

from aenbench.synthetic.spiked import (
    SpikedStream,
    gram_stats,
    irrepresentable_constant,
    sample_codes,
    spiked_dictionary,
    teacher_diagnostics,
)


@pytest.mark.parametrize("rho", [0.3, 0.5, 0.7, 0.9])
def test_mean_abs_gram_is_close_to_rho(rho):
    d = spiked_dictionary(256, 1024, rho, seed=0)
    assert torch.allclose(d.norm(dim=1), torch.ones(1024), atol=1e-5)
    assert gram_stats(d)["gram_abs_mean"] == pytest.approx(rho, abs=0.02)


def test_rho_zero_is_incoherent():
    # |N(0, 1/n)| has mean √(2/(πn)) ≈ 0.0499 at n = 256
    assert gram_stats(spiked_dictionary(256, 1024, 0.0, seed=0))["gram_abs_mean"] == pytest.approx(0.0499, abs=0.003)


def test_irrepresentable_constant_below_one_at_rho0_and_at_least_one_at_rho09():
    low = teacher_diagnostics(spiked_dictionary(256, 1024, 0.0, seed=0), k=16, n_supports=30)
    high = teacher_diagnostics(spiked_dictionary(256, 1024, 0.9, seed=0), k=16, n_supports=30)
    assert low["irc_mean"] < 1.0
    assert high["irc_mean"] >= 1.0
    assert high["cond_mean"] > 10 * low["cond_mean"]


def test_irc_closed_form_on_orthonormal_dictionary():
    # G = I: G_{AᶜA} = 0, so the constant is exactly 0
    assert irrepresentable_constant(torch.eye(6, dtype=torch.float64), torch.tensor([0, 2])) == 0.0


def test_codes_have_exactly_k_nonzeros_in_range():
    h = sample_codes(500, 64, 4, torch.Generator().manual_seed(0))
    assert ((h != 0).sum(dim=1) == 4).all()
    nz = h[h != 0]
    assert nz.min() >= 1.0 and nz.max() <= 3.0
    # support is uniform: every atom is used about 500·4/64 ≈ 31 times
    counts = (h != 0).sum(dim=0).float()
    assert counts.min() > 10 and counts.max() < 60


def test_seed_fixes_the_stream_and_other_seeds_differ():
    d = spiked_dictionary(16, 64, 0.5, seed=1)
    a = [next(SpikedStream(d, 2, 8, seed=3)) for _ in range(1)]
    b = [next(SpikedStream(d, 2, 8, seed=3)) for _ in range(1)]
    c = [next(SpikedStream(d, 2, 8, seed=4)) for _ in range(1)]
    assert torch.equal(a[0], b[0])
    assert not torch.equal(a[0], c[0])
    assert torch.equal(spiked_dictionary(16, 64, 0.5, seed=1), d)
    assert not torch.equal(spiked_dictionary(16, 64, 0.5, seed=2), d)


def test_x_is_codes_times_dictionary():
    d = spiked_dictionary(16, 64, 0.5, seed=1)
    x, h = next(SpikedStream(d, 2, 8, seed=3, with_codes=True))
    assert torch.allclose(x, h @ d)
