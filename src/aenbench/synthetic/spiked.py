"""The spiked teacher of method.md §3 and its diagnostics.

Dictionary: one shared direction v and atoms u_j, i.i.d. N(0, I_n), unit-normalised;
``D_j = normalise(√(1−ρ) u_j + √ρ v)``, so the mean |off-diagonal Gram| ≈ ρ.

Codes: exactly k non-zeros per sample on a uniformly random support, magnitudes U[1, 3];
``x = D h*`` with no noise. A fresh batch is drawn every step from a generator that belongs to
the seed, so a seed fixes the whole stream.

Shapes follow sae-lens: the dictionary is ``D_MN`` (m atoms as rows, n = input dim).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch


def spiked_dictionary(n: int, m: int, rho: float, seed: int) -> torch.Tensor:
    """Return D_MN with unit rows: D_j = normalise(√(1−ρ) u_j + √ρ v)."""
    if not 0.0 <= rho < 1.0:
        raise ValueError(f"rho must be in [0, 1), got {rho}")
    g = torch.Generator().manual_seed(seed)
    v_N = torch.randn(n, generator=g, dtype=torch.float64)
    v_N /= v_N.norm()
    u_MN = torch.randn(m, n, generator=g, dtype=torch.float64)
    u_MN /= u_MN.norm(dim=1, keepdim=True)
    d_MN = (1.0 - rho) ** 0.5 * u_MN + rho**0.5 * v_N
    d_MN /= d_MN.norm(dim=1, keepdim=True)
    return d_MN.to(torch.float32)


def sample_codes(
    batch: int, m: int, k: int, generator: torch.Generator, low: float = 1.0, high: float = 3.0
) -> torch.Tensor:
    """h*_BM: exactly k non-zeros per row on a uniform random support, values U[low, high]."""
    support_BK = torch.rand(batch, m, generator=generator).topk(k, dim=1).indices
    values_BK = low + (high - low) * torch.rand(batch, k, generator=generator)
    h_BM = torch.zeros(batch, m)
    h_BM.scatter_(1, support_BK, values_BK)
    return h_BM


@dataclass
class SpikedStream(Iterator[torch.Tensor]):
    """Infinite iterator of x_BN = h*_BM D_MN batches for sae-lens's SAETrainer.

    ``with_codes=True`` makes ``next`` return ``(x_BN, h_BM)`` for evaluation.
    """

    d_MN: torch.Tensor
    k: int
    batch_size: int
    seed: int
    low: float = 1.0
    high: float = 3.0
    with_codes: bool = False

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)

    def __iter__(self) -> SpikedStream:
        return self

    def __next__(self):  # type: ignore[override]
        h_BM = sample_codes(self.batch_size, self.d_MN.shape[0], self.k, self.generator, self.low, self.high)
        x_BN = h_BM @ self.d_MN
        return (x_BN, h_BM) if self.with_codes else x_BN


def gram_stats(d_MN: torch.Tensor) -> dict[str, float]:
    """Mean and max |off-diagonal| of the Gram matrix G = D Dᵀ."""
    g_MM = (d_MN.double() @ d_MN.double().T).abs()
    m = g_MM.shape[0]
    off = g_MM[~torch.eye(m, dtype=torch.bool)]
    return {"gram_abs_mean": off.mean().item(), "gram_abs_max": off.max().item()}


def irrepresentable_constant(g_MM: torch.Tensor, support: torch.Tensor) -> float:
    """‖G_{AᶜA} G_AA⁻¹ 𝟙‖_∞ for support A (the sign vector is 𝟙: codes are non-negative)."""
    m = g_MM.shape[0]
    mask = torch.zeros(m, dtype=torch.bool)
    mask[support] = True
    g_AA = g_MM[mask][:, mask]
    g_cA = g_MM[~mask][:, mask]
    z = torch.linalg.solve(g_AA, torch.ones(g_AA.shape[0], dtype=g_MM.dtype))
    return (g_cA @ z).abs().max().item()


def teacher_diagnostics(d_MN: torch.Tensor, k: int, n_supports: int = 100, seed: int = 0) -> dict[str, float]:
    """Gram statistics and, over ``n_supports`` random supports |A| = k, E λ_min(G_AA),
    E cond(G_AA) and the mean and max irrepresentable constant."""
    g_MM = d_MN.double() @ d_MN.double().T
    m = g_MM.shape[0]
    gen = torch.Generator().manual_seed(seed)
    lam_min, cond, irc = [], [], []
    for _ in range(n_supports):
        support = torch.randperm(m, generator=gen)[:k]
        eig = torch.linalg.eigvalsh(g_MM[support][:, support])
        lam_min.append(eig[0].item())
        cond.append((eig[-1] / eig[0]).item())
        irc.append(irrepresentable_constant(g_MM, support))
    return {
        **gram_stats(d_MN),
        "lambda_min_mean": float(np.mean(lam_min)),
        "cond_mean": float(np.mean(cond)),
        "irc_mean": float(np.mean(irc)),
        "irc_max": float(np.max(irc)),
        "n_supports": n_supports,
    }
