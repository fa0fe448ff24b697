"""Encoder stability and amortisation diagnostics for ReLU / AEN sparse autoencoders.

Notation (shape suffixes as elsewhere in aenbench): B samples, N = n input dims, M = m latents,
K perturbation draws per sample. An SAE encodes ``h = ReLU((x − b_dec) W_enc + b_enc)`` and
decodes ``x̂ = h W_dec + b_dec`` with the atoms in the rows of ``W_dec_MN``.

Three tools:

1. :func:`perturbation_stats` — empirical local Lipschitz ratios and support flips of any
   encoder under random input perturbations of relative size ``eps``.
2. :func:`fista_nonneg_elastic_net` / :func:`elastic_net_objective` — the exact (per-sample,
   decoder-fixed) sparse code of the AEN training objective, by FISTA.
3. :func:`amortisation_gap` — how far the amortised (encoder) code is from that exact code.

The per-sample AEN training objective is written once, in :mod:`aenbench.saes.aen` (method.md §2,
with h̃ the penalised codes and c = 1/``mse_divisor``: 1/n under ``loss_convention="authors"``,
1 under ``"sae_lens"``)::

    F(h) = c·‖x − b_dec − h W_dec‖² + λ₁ Σ_j w̃_j |h̃_j| + λ₂ Σ_j h̃_j²,   h ≥ 0;

the training loss is the mean of F over the batch. FISTA needs the penalties per latent on the
raw codes, F(h) = c‖r‖² + Σ_j l1_j h_j + Σ_j l2_j h_j², and takes them from
``aen.penalty_coefficients`` (``project``: l1_j = λ₁ w̃_j, l2_j = λ₂; ``weight_penalty``:
l1_j = λ₁ w̃_j ‖W_dec[j]‖, l2_j = λ₂ ‖W_dec[j]‖²); :func:`aen_objective_params` reads them from a
training SAE, and :func:`elastic_net_objective` sums the terms with ``aen.l1_penalty`` and
``aen.l2_penalty``. Hence this module imports sae-lens (through ``aenbench.saes.aen``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from aenbench.saes.aen import l1_penalty, l2_penalty, mse_divisor, penalty_coefficients

__all__ = [
    "aen_objective_params",
    "amortisation_gap",
    "elastic_net_objective",
    "fista_nonneg_elastic_net",
    "perturbation_stats",
    "sae_stability",
]


def _quantile(values: torch.Tensor, q: float) -> float:
    """Quantile with linear interpolation between order statistics (``torch.quantile``'s
    default), computed in float64 on the CPU; q = 0.5 is the usual median (mean of the two
    middle values for an even count)."""
    return torch.quantile(values.detach().reshape(-1).to("cpu", torch.float64), q).item()


# --------------------------------------------------------------------------- 1. perturbations


@torch.no_grad()
def perturbation_stats(
    encode: Callable[[torch.Tensor], torch.Tensor],
    x_BN: torch.Tensor,
    *,
    eps: float,
    n_perturb: int,
    seed: int,
    chunk_size: int = 4096,
    return_samples: bool = False,
) -> dict[str, Any]:
    """Local Lipschitz ratios and support flips of ``encode`` around each sample.

    Perturbation (per sample b and draw k)::

        δ_bk = eps · ‖x_b‖ · u_bk,   u_bk uniform on the unit sphere S^{n−1}

    (u = g/‖g‖ with g ~ N(0, I_n) drawn from ``torch.Generator(seed)`` on x's device; draw k
    for the whole batch is generated before draw k+1, so results do not depend on
    ``chunk_size``). The radius is relative to each sample's own norm, so a sample with
    ‖x_b‖ = 0 has no perturbation and raises ``ValueError``.

    Ratio: ``r_bk = ‖h(x_b + δ_bk) − h(x_b)‖ / ‖δ̂_bk‖`` with the *realised* perturbation
    δ̂_bk = fl(x_b + δ_bk) − x_b (equal to δ_bk up to rounding of the sum; using it keeps the
    ratio exact for linear maps even when eps is tiny). For small eps, pass float64 x.

    Support: supp h = {j : h_j > 0}. Flip fraction::

        f_bk = |supp h(x_b + δ_bk) Δ supp h(x_b)| / max(1, |supp h(x_b)|)

    (symmetric difference counted relative to the clean support size; the ``max(1, ·)`` makes
    a sample with an empty clean code count the number of latents switched on).

    Returns ``lipschitz_median``, ``lipschitz_p99``, ``lipschitz_max`` (quantiles over all
    B·K ratios, linear interpolation), ``support_flip_rate`` = mean of f_bk,
    ``support_flip_any`` = fraction of (b, k) with f_bk > 0, ``n_ratios`` = B·K; with
    ``return_samples`` also ``ratios_BK`` and ``flip_frac_BK`` (float64, CPU).

    ``encode`` maps a (rows, n) tensor to (rows, m); it is called on at most ``chunk_size``
    rows at a time.
    """
    if x_BN.ndim != 2:
        raise ValueError(f"x_BN must be 2-d (B, N), got shape {tuple(x_BN.shape)}")
    if not eps > 0 or n_perturb < 1 or chunk_size < 1:
        raise ValueError(f"need eps > 0, n_perturb ≥ 1, chunk_size ≥ 1; got {eps}, {n_perturb}, {chunk_size}")
    B, N = x_BN.shape
    norm_B = x_BN.norm(dim=-1)
    if (norm_B == 0).any():
        raise ValueError("perturbation radius is eps·‖x_b‖: samples with ‖x_b‖ = 0 are not allowed")

    def encode_chunked(rows_RN: torch.Tensor) -> torch.Tensor:
        return torch.cat([encode(rows_RN[i : i + chunk_size]) for i in range(0, rows_RN.shape[0], chunk_size)])

    h0_BM = encode_chunked(x_BN)
    supp0_BM = h0_BM > 0
    denom_B = supp0_BM.sum(dim=-1).clamp(min=1).to(torch.float64)

    gen = torch.Generator(device=x_BN.device)
    gen.manual_seed(seed)
    ratios_KB = torch.empty(n_perturb, B, dtype=torch.float64)
    flips_KB = torch.empty(n_perturb, B, dtype=torch.float64)
    for k in range(n_perturb):
        g_BN = torch.randn(B, N, generator=gen, device=x_BN.device, dtype=x_BN.dtype)
        u_BN = g_BN / g_BN.norm(dim=-1, keepdim=True)
        xp_BN = x_BN + (eps * norm_B).unsqueeze(-1) * u_BN
        delta_B = (xp_BN - x_BN).norm(dim=-1)
        if (delta_B == 0).any():
            raise ValueError("eps·‖x_b‖ is below the rounding resolution of x; increase eps or use float64")
        hp_BM = encode_chunked(xp_BN)
        ratios_KB[k] = ((hp_BM - h0_BM).norm(dim=-1) / delta_B).to("cpu", torch.float64)
        sym_B = ((hp_BM > 0) != supp0_BM).sum(dim=-1).to(torch.float64)
        flips_KB[k] = (sym_B / denom_B).cpu()

    ratios_BK, flips_BK = ratios_KB.T.contiguous(), flips_KB.T.contiguous()
    out: dict[str, Any] = {
        "lipschitz_median": _quantile(ratios_BK, 0.5),
        "lipschitz_p99": _quantile(ratios_BK, 0.99),
        "lipschitz_max": ratios_BK.max().item(),
        "support_flip_rate": flips_BK.mean().item(),
        "support_flip_any": (flips_BK > 0).to(torch.float64).mean().item(),
        "n_ratios": B * n_perturb,
    }
    if return_samples:
        out["ratios_BK"] = ratios_BK
        out["flip_frac_BK"] = flips_BK
    return out


# --------------------------------------------------------------------------- 2. exact codes


@torch.no_grad()
def aen_objective_params(sae: Any) -> dict[str, Any]:
    """``l1_M``, ``l2`` and ``mse_scale`` of the per-sample objective F of an AEN training SAE
    (duck-typed: needs ``sae.cfg.{l1_coefficient, l2_coefficient, loss_convention,
    decoder_norm, d_in}``, ``sae.adaptive_weights`` and ``sae.W_dec``).

    (l1_M, l2) = ``aen.penalty_coefficients`` of λ₁, λ₂ and w̃ (l2 a float under ``project``, an
    (M,) tensor under ``weight_penalty``); mse_scale = c = 1/``aen.mse_divisor``. w̃ is the stored
    ``adaptive_weights`` buffer, i.e. the weights of the most recent training step.
    """
    cfg = sae.cfg
    l1_M, l2 = penalty_coefficients(sae.adaptive_weights.detach(), cfg.l1_coefficient, cfg.l2_coefficient,
                                    sae.W_dec.detach(), cfg.decoder_norm)
    return {"l1_M": l1_M, "l2": l2, "mse_scale": 1.0 / mse_divisor(cfg.loss_convention, cfg.d_in)}


def elastic_net_objective(
    h_BM: torch.Tensor,
    x_BN: torch.Tensor,
    W_dec_MN: torch.Tensor,
    b_dec_N: torch.Tensor,
    *,
    l1_M: torch.Tensor,
    l2: float | torch.Tensor,
    mse_scale: float,
) -> torch.Tensor:
    """Per-sample objective F_b = mse_scale·‖x_b − b_dec − h_b W_dec‖² + Σ_j l1_j |h_bj|
    + Σ_j l2_j h_bj² (l2 a scalar or an (M,) tensor), the penalties by ``aen.l1_penalty`` and
    ``aen.l2_penalty``. With :func:`aen_objective_params` it is the SAE's training objective per
    sample, for any sign of h."""
    resid_BN = x_BN - b_dec_N - h_BM @ W_dec_MN
    return mse_scale * resid_BN.pow(2).sum(dim=-1) + l1_penalty(h_BM, l1_M.to(h_BM.dtype)) + l2_penalty(h_BM, l2)


@torch.no_grad()
def fista_nonneg_elastic_net(
    x_BN: torch.Tensor,
    W_dec_MN: torch.Tensor,
    b_dec_N: torch.Tensor,
    *,
    l1_M: torch.Tensor,
    l2: float | torch.Tensor,
    mse_scale: float,
    n_iter: int = 1000,
    tol: float = 1e-6,
    h_init_BM: torch.Tensor | None = None,
    restart: bool = True,
    return_info: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, Any]]:
    """Exact sparse codes: per sample, argmin_{h ≥ 0} F(h) with (see :func:`elastic_net_objective`)

        F(h) = c‖r‖² + Σ_j l1_j h_j + Σ_j l2_j h_j²,   r = x − b_dec − h W_dec,  c = mse_scale.

    FISTA (Beck & Teboulle 2009) on the split F = f + g with the smooth part
    f(h) = c‖r‖² + Σ l2_j h_j² (∇f = −2c r W_decᵀ + 2 l2 ⊙ h) and g(h) = Σ l1_j h_j + ι_{h≥0},
    whose prox is prox_{s g}(v) = max(0, v − s·l1). Step s = 1/L with the Lipschitz constant of
    ∇f, L = 2c·σ_max(W_dec)² + 2·max_j l2_j (σ_max by ``torch.linalg.matrix_norm(ord=2)``).
    Iteration, vectorised over the batch with a per-sample momentum t_b::

        h⁺ = max(0, y − s ∇f(y) − s·l1);  t⁺ = (1 + √(1 + 4t²))/2;  y = h⁺ + ((t − 1)/t⁺)(h⁺ − h)

    With ``restart`` (O'Donoghue & Candès 2015, gradient scheme) a sample whose
    ⟨y − h⁺, h⁺ − h⟩ > 0 has its momentum reset (t_b = 1, y_b = h⁺_b). Stops when
    max_b ‖h⁺_b − h_b‖ / max(‖h⁺_b‖, 1e-12) < tol or after ``n_iter`` iterations.
    Start: ``h_init_BM`` (clamped at 0; e.g. the SAE's own code) or zeros. The problem is
    strongly convex when l2 > 0 (unique minimiser); with l2 = 0 it may have several.

    Returns h_BM, or (h_BM, {"n_iter", "converged", "max_rel_change", "lipschitz"}) with
    ``return_info``.
    """
    if x_BN.ndim != 2 or W_dec_MN.ndim != 2 or x_BN.shape[1] != W_dec_MN.shape[1]:
        raise ValueError(f"shape mismatch: x {tuple(x_BN.shape)}, W_dec {tuple(W_dec_MN.shape)}")
    B, M = x_BN.shape[0], W_dec_MN.shape[0]
    dtype, device = x_BN.dtype, x_BN.device
    W_MN = W_dec_MN.to(dtype)
    l1_M = l1_M.to(device=device, dtype=dtype).expand(M)
    l2_t = torch.as_tensor(l2, device=device, dtype=dtype)
    if (l1_M < 0).any() or (l2_t < 0).any() or mse_scale <= 0:
        raise ValueError("need l1 ≥ 0, l2 ≥ 0 and mse_scale > 0")
    sigma = torch.linalg.matrix_norm(W_MN, ord=2).item()
    lip = 2.0 * mse_scale * sigma**2 + 2.0 * l2_t.max().item()
    if lip <= 0:
        raise ValueError("L = 0: the objective has no smooth curvature (zero dictionary and l2 = 0)")
    step = 1.0 / lip
    target_BN = x_BN - b_dec_N.to(dtype)
    shrink_M = step * l1_M

    h_BM = torch.zeros(B, M, dtype=dtype, device=device) if h_init_BM is None else h_init_BM.to(dtype).clamp(min=0)
    y_BM = h_BM.clone()
    t_B = torch.ones(B, 1, dtype=dtype, device=device)
    rel = math.inf
    it = 0
    for it in range(1, n_iter + 1):
        grad_BM = -2.0 * mse_scale * (target_BN - y_BM @ W_MN) @ W_MN.T + 2.0 * l2_t * y_BM
        h_new_BM = (y_BM - step * grad_BM - shrink_M).clamp(min=0)
        diff_BM = h_new_BM - h_BM
        rel = (diff_BM.norm(dim=-1) / h_new_BM.norm(dim=-1).clamp(min=1e-12)).max().item()
        t_new_B = (1.0 + torch.sqrt(1.0 + 4.0 * t_B * t_B)) / 2.0
        y_new_BM = h_new_BM + ((t_B - 1.0) / t_new_B) * diff_BM
        if restart:
            bad_B = ((y_BM - h_new_BM) * diff_BM).sum(dim=-1, keepdim=True) > 0
            t_new_B = torch.where(bad_B, torch.ones_like(t_new_B), t_new_B)
            y_new_BM = torch.where(bad_B, h_new_BM, y_new_BM)
        h_BM, y_BM, t_B = h_new_BM, y_new_BM, t_new_B
        if rel < tol:
            break
    if return_info:
        return h_BM, {"n_iter": it, "converged": rel < tol, "max_rel_change": rel, "lipschitz": lip}
    return h_BM


# --------------------------------------------------------------------------- 3. amortisation gap


@torch.no_grad()
def amortisation_gap(
    h_amortised_BM: torch.Tensor,
    h_exact_BM: torch.Tensor,
    objective_amortised_B: torch.Tensor,
    objective_exact_B: torch.Tensor,
) -> dict[str, float]:
    """Distance of the amortised (encoder) codes h_a from the exact codes h* (FISTA).

    * code gap per sample: g_b = ‖h_a,b − h*_b‖ / max(‖h*_b‖, 1e-12);
      ``code_gap_median``, ``code_gap_p90`` (linear-interpolation quantiles over samples);
    * objective gap per sample: (F(h_a,b) − F(h*_b)) / max(|F(h*_b)|, 1e-12);
      ``objective_gap_median``, ``objective_gap_p90``;
    * supports pooled over all (b, j): TP = #{h_a > 0 ∧ h* > 0}, FP = #{h_a > 0 ∧ h* = 0},
      FN = #{h_a = 0 ∧ h* > 0}; ``support_precision_vs_exact`` = TP/(TP+FP),
      ``support_recall_vs_exact`` = TP/(TP+FN), ``support_f1_vs_exact`` = 2TP/(2TP+FP+FN)
      (each 1.0 when its denominator is 0, i.e. both supports empty).
    """
    if h_amortised_BM.shape != h_exact_BM.shape:
        raise ValueError(f"code shapes differ: {tuple(h_amortised_BM.shape)} vs {tuple(h_exact_BM.shape)}")
    ha = h_amortised_BM.detach().to(torch.float64)
    he = h_exact_BM.detach().to(h_amortised_BM.device, torch.float64)
    code_gap_B = (ha - he).norm(dim=-1) / he.norm(dim=-1).clamp(min=1e-12)
    fa = objective_amortised_B.detach().to(torch.float64).cpu()
    fe = objective_exact_B.detach().to(torch.float64).cpu()
    obj_gap_B = (fa - fe) / fe.abs().clamp(min=1e-12)
    sa, se = ha > 0, he > 0
    tp = (sa & se).sum().item()
    fp = (sa & ~se).sum().item()
    fn = (~sa & se).sum().item()

    def ratio(num: float, den: float) -> float:
        return num / den if den > 0 else 1.0

    return {
        "code_gap_median": _quantile(code_gap_B, 0.5),
        "code_gap_p90": _quantile(code_gap_B, 0.9),
        "objective_gap_median": _quantile(obj_gap_B, 0.5),
        "objective_gap_p90": _quantile(obj_gap_B, 0.9),
        "support_precision_vs_exact": ratio(tp, tp + fp),
        "support_recall_vs_exact": ratio(tp, tp + fn),
        "support_f1_vs_exact": ratio(2 * tp, 2 * tp + fp + fn),
    }


# --------------------------------------------------------------------------- per-SAE summary

STABILITY_EPS = 1e-2  # δ has norm 1 % of ‖x‖
STABILITY_PERTURBATIONS = 4
FISTA_ITERATIONS, FISTA_TOL = 2000, 1e-6


@torch.no_grad()
def sae_stability(
    encode: Callable[[torch.Tensor], torch.Tensor], x_BN: torch.Tensor, *, seed: int,
    objective_sae: Any | None = None, w_dec_MN: torch.Tensor | None = None, b_dec_N: torch.Tensor | None = None,
    eps: float = STABILITY_EPS, n_perturb: int = STABILITY_PERTURBATIONS, code_scale_M: torch.Tensor | None = None,
) -> dict[str, float]:
    """The stability group of one SAE on samples ``x_BN``: Lipschitz ratios and support flips of
    ``encode`` (:func:`perturbation_stats`), and, for an SAE with a convex coding objective
    (``objective_sae``: an AEN training SAE, see :func:`aen_objective_params`), the gap between
    its amortised codes and the exact minimiser h* of that objective for its learned decoder
    (:func:`fista_nonneg_elastic_net`, warm-started at the amortised code). Architectures
    without such an objective (TopK, gated, JumpReLU, BatchTopK) get no gap keys.

    ``code_scale_M`` (e.g. the decoder row norms) rescales the codes for the perturbation
    statistics only, h_j ↦ h_j·s_j, so that maps with different decoder scales are comparable;
    the FISTA gap always compares raw codes in the objective's own units."""
    scaled = encode if code_scale_M is None else (lambda x: encode(x) * code_scale_M)
    pert = perturbation_stats(scaled, x_BN, eps=eps, n_perturb=n_perturb, seed=seed)
    out = {k: float(pert[k]) for k in ("lipschitz_median", "lipschitz_p99", "lipschitz_max",
                                       "support_flip_rate", "support_flip_any")}
    if objective_sae is None:
        return out  # no convex objective: no gap keys (NaN in the leaderboard; JSON has no NaN)
    params = aen_objective_params(objective_sae)
    h_a_BM = encode(x_BN)
    h_star_BM, info = fista_nonneg_elastic_net(
        x_BN, w_dec_MN, b_dec_N, **params, n_iter=FISTA_ITERATIONS, tol=FISTA_TOL, h_init_BM=h_a_BM,
        return_info=True,
    )
    f_a_B = elastic_net_objective(h_a_BM, x_BN, w_dec_MN, b_dec_N, **params)
    f_star_B = elastic_net_objective(h_star_BM, x_BN, w_dec_MN, b_dec_N, **params)
    gap = amortisation_gap(h_a_BM, h_star_BM, f_a_B, f_star_B)
    out.update(fista_code_gap_median=float(gap["code_gap_median"]), fista_code_gap_p90=float(gap["code_gap_p90"]),
               fista_objective_gap_median=float(gap["objective_gap_median"]),
               fista_support_f1=float(gap["support_f1_vs_exact"]), fista_converged=float(bool(info["converged"])))
    return out
