"""Metrics of method.md §5, computed (their meanings and directions:
:data:`aenbench.metric_registry.METRICS`).

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

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sae_lens.evals import ExplainedVarianceCalculator
from sae_lens.synthetic import ShrinkageCalculator

from aenbench.metric_registry import METRICS


def by_group(values: dict[str, float]) -> dict[str, dict[str, float]]:
    """Split flat metrics into SAEBench-style groups (the registry's :data:`METRICS` groups)."""
    groups: dict[str, dict[str, float]] = {}
    for name, value in values.items():
        groups.setdefault(METRICS[name].group, {})[name] = value
    return groups


def reconstruction_metrics(x_BN: torch.Tensor, xhat_BN: torch.Tensor) -> dict[str, float]:
    x = x_BN.double()
    xh = xhat_BN.double()
    ev = 1.0 - (x - xh).var(dim=0, unbiased=False).sum() / x.var(dim=0, unbiased=False).sum()
    ev_calc = ExplainedVarianceCalculator()
    ev_calc.add_batch(xhat_BN, x_BN)  # sae-lens's order: (sae_output, hidden_acts)
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
