"""Metrics of method.md §5, each with its direction (see :data:`METRICS`).

Conventions (x_BN inputs, xhat_BN reconstructions, acts_BM latent codes):

* EV = 1 − Σ_d Var(x − x̂) / Σ_d Var(x)   (variances over the evaluation samples)
* MSE = mean over samples and dimensions of (x − x̂)²   (the authors' convention)
* shrinkage = Σ_b ‖x̂_b‖₁ / Σ_b ‖x_b‖₁   (the authors' definition)
* l2_ratio = mean_b ‖x̂_b‖₂/‖x_b‖₂ (sae-lens ``ShrinkageCalculator``) and
  relative_reconstruction_bias = E‖x̂‖² / E⟨x, x̂⟩ (sae-lens ``evals``)
* L0 = mean number of non-zero latents per sample
* dead % = share of latents that did not fire over a fixed window of recent training steps
* MCC = mean |cos| of the Hungarian matching of learned to true atoms on cost 1 − |cos|;
  MMCS = mean over true atoms of the max |cos| to any learned atom
* support precision / recall / F1: micro-averaged over samples, with each learned latent
  mapped to its Hungarian-matched true atom (unmatched active latents are false positives).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sae_lens.evals import ExplainedVarianceCalculator
from sae_lens.synthetic import ShrinkageCalculator


@dataclass(frozen=True)
class MetricInfo:
    group: str
    meaning: str
    higher_is_better: bool | None  # None: no preferred direction (e.g. L0, shrinkage)


METRICS: dict[str, MetricInfo] = {
    "L0": MetricInfo("sparsity", "mean number of active latents per sample", None),
    "dead_pct": MetricInfo("sparsity", "% latents that never fired in the last dead_window_tokens training samples", False),
    "dead_pct_eval": MetricInfo("sparsity", "% latents that never fired on the evaluation samples", False),
    "EV": MetricInfo("reconstruction", "explained variance 1 − ΣVar(x−x̂)/ΣVar(x)", True),
    "EV_saelens": MetricInfo("reconstruction", "sae-lens explained variance 1 − E‖x−x̂‖²/Var(x)", True),
    "MSE": MetricInfo("reconstruction", "mean squared error, averaged over samples and dimensions", False),
    "shrinkage": MetricInfo("shrinkage", "Σ‖x̂‖₁/Σ‖x‖₁ (authors' definition)", None),
    "l2_ratio": MetricInfo("shrinkage", "mean ‖x̂‖₂/‖x‖₂ (sae-lens)", None),
    "relative_reconstruction_bias": MetricInfo("shrinkage", "E‖x̂‖²/E⟨x,x̂⟩ (sae-lens)", None),
    "MCC": MetricInfo("dictionary", "mean |cos| of Hungarian-matched atoms", True),
    "MMCS": MetricInfo("dictionary", "mean over true atoms of max |cos| to a learned atom", True),
    "dict_frob_error": MetricInfo("dictionary", "‖D − P·Ŵ_dec‖_F/√m after alignment (unit rows, signs fixed)", False),
    "support_precision": MetricInfo("support", "micro support precision after alignment", True),
    "support_recall": MetricInfo("support", "micro support recall after alignment", True),
    "support_f1": MetricInfo("support", "micro support F1 after alignment", True),
    "code_rel_l2_error": MetricInfo("support", "‖ĥ − h*‖/‖h*‖ with ĥ_i = h_π(i)‖W_dec[π(i)]‖", False),
    "lipschitz_median": MetricInfo("stability", "median of ‖h(x+δ) − h(x)‖/‖δ‖ over samples and draws, ‖δ‖ = 1 % ‖x‖, δ isotropic", None),
    "lipschitz_p99": MetricInfo("stability", "99th percentile of that ratio", None),
    "lipschitz_max": MetricInfo("stability", "largest ratio seen", None),
    "support_flip_rate": MetricInfo("stability", "mean |supp h(x+δ) Δ supp h(x)| / max(1, |supp h(x)|)", None),
    "support_flip_any": MetricInfo("stability", "share of (sample, δ) pairs whose support changes at all", None),
    "fista_code_gap_median": MetricInfo("stability", "median ‖h − h*‖/‖h*‖, h* the exact minimiser of the SAE's own objective (FISTA); NaN without a convex objective", None),
    "fista_code_gap_p90": MetricInfo("stability", "90th percentile of that code gap", None),
    "fista_objective_gap_median": MetricInfo("stability", "median (F(h) − F(h*))/|F(h*)|", None),
    "fista_support_f1": MetricInfo("stability", "support F1 of the amortised code against h*", None),
    "fista_converged": MetricInfo("stability", "1 when FISTA met its tolerance within its iteration budget", None),
    "pct_w_at_min": MetricInfo("adaptive", "% raw adaptive weights pinned at w_min", None),
    "pct_w_at_max": MetricInfo("adaptive", "% raw adaptive weights pinned at w_max", None),
}


def by_group(values: dict[str, float]) -> dict[str, dict[str, float]]:
    """Split flat metrics into SAEBench-style groups using :data:`METRICS`."""
    groups: dict[str, dict[str, float]] = {}
    for name, value in values.items():
        groups.setdefault(METRICS[name].group, {})[name] = value
    return groups


def reconstruction_metrics(x_BN: torch.Tensor, xhat_BN: torch.Tensor) -> dict[str, float]:
    x = x_BN.double()
    xh = xhat_BN.double()
    ev = 1.0 - (x - xh).var(dim=0, unbiased=False).sum() / x.var(dim=0, unbiased=False).sum()
    ev_calc = ExplainedVarianceCalculator()
    ev_calc.add_batch(x_BN, xhat_BN)
    shrink = ShrinkageCalculator()
    shrink.add_batch(xhat_BN, x_BN)
    return {
        "EV": ev.item(),
        "EV_saelens": float(ev_calc.compute()),
        "MSE": (x - xh).pow(2).mean().item(),
        "shrinkage": (xh.abs().sum() / x.abs().sum()).item(),
        "l2_ratio": shrink.compute(),
        "relative_reconstruction_bias": (xh.pow(2).sum(-1).mean() / (x * xh).sum(-1).mean()).item(),
    }


def sparsity_metrics(acts_BM: torch.Tensor) -> dict[str, float]:
    fired_M = (acts_BM != 0).any(dim=0)
    return {
        "L0": (acts_BM != 0).float().sum(-1).mean().item(),
        "dead_pct_eval": 100.0 * (1.0 - fired_M.float().mean().item()),
    }


def _unit_rows(a: torch.Tensor) -> torch.Tensor:
    a = a.double()
    return a / a.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def abs_cosine(a_MN: torch.Tensor, b_KN: torch.Tensor) -> torch.Tensor:
    return (_unit_rows(a_MN) @ _unit_rows(b_KN).T).abs()


def hungarian_match(learned_MN: torch.Tensor, true_KN: torch.Tensor) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Rows of ``learned`` matched one-to-one to rows of ``true`` on cost 1 − |cos|."""
    cos_MK = abs_cosine(learned_MN, true_KN)
    rows, cols = linear_sum_assignment(1.0 - cos_MK.numpy())
    return rows, cols, cos_MK


def dictionary_metrics(learned_MN: torch.Tensor, true_KN: torch.Tensor) -> tuple[dict[str, float], np.ndarray]:
    """MCC, MMCS and aligned Frobenius error. Returns the metrics and ``true_of_latent``: the
    index of the true atom matched to each learned latent, −1 where unmatched."""
    rows, cols, cos_MK = hungarian_match(learned_MN, true_KN)
    true_of_latent = np.full(learned_MN.shape[0], -1, dtype=np.int64)
    true_of_latent[rows] = cols
    learned_unit, true_unit = _unit_rows(learned_MN), _unit_rows(true_KN)
    signs = torch.sign((learned_unit[rows] * true_unit[cols]).sum(-1))
    aligned = torch.zeros_like(true_unit)
    aligned[cols] = learned_unit[rows] * signs[:, None]
    frob = (true_unit - aligned).norm() / true_KN.shape[0] ** 0.5
    return {
        "MCC": cos_MK[rows, cols].mean().item(),
        "MMCS": cos_MK.max(dim=0).values.mean().item(),
        "dict_frob_error": frob.item(),
    }, true_of_latent


def support_metrics(
    acts_BM: torch.Tensor, true_codes_BK: torch.Tensor, true_of_latent: np.ndarray, dec_norms_M: torch.Tensor
) -> dict[str, float]:
    """Support P/R/F1 and code error after mapping latents to their matched true atoms."""
    batch, n_true = true_codes_BK.shape
    matched = torch.as_tensor(true_of_latent >= 0)
    idx = torch.as_tensor(true_of_latent[true_of_latent >= 0])
    contrib_BM = acts_BM.double() * dec_norms_M.double()
    mapped_BK = torch.zeros(batch, n_true, dtype=torch.float64)
    mapped_BK[:, idx] = contrib_BM[:, matched]
    pred = mapped_BK != 0
    true = true_codes_BK != 0
    tp = (pred & true).sum().item()
    fp = (pred & ~true).sum().item() + (acts_BM[:, ~matched] != 0).sum().item()
    fn = (~pred & true).sum().item()
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    err = (mapped_BK - true_codes_BK.double()).norm() / true_codes_BK.double().norm()
    return {
        "support_precision": precision,
        "support_recall": recall,
        "support_f1": f1,
        "code_rel_l2_error": err.item(),
    }
