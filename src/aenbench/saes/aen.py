"""Adaptive elastic-net SAE (AEN-SAE), registered with sae-lens as architecture ``"aen"``.

One architecture covers the four ℓ-penalised variants of method.md §2 by switches:

=================  ==============  ===========
variant            ``adaptive``     λ₂
=================  ==============  ===========
ℓ1 ("vanilla")     False (w̃ ≡ 1)   0
elastic net (EN)   False (w̃ ≡ 1)   > 0
adaptive lasso     True            0
AEN                True            > 0
=================  ==============  ===========

Model (method.md §1), with x ∈ Rⁿ, m latents, W_enc ∈ R^{n×m} and W_dec ∈ R^{m×n} in
sae-lens's layout (decoder atoms are the *rows* of ``W_dec``)::

    h  = ReLU((x − b_dec) W_enc + b_enc)
    x̂  = h W_dec + b_dec

Objective per mini-batch of B samples, **authors' convention** (``loss_convention="authors"``)::

    L = (1/(B·n)) Σ_b ‖x_b − x̂_b‖²  +  (λ₁/B) Σ_b Σ_j w̃_j |h_bj|  +  (λ₂/B) Σ_b Σ_j h_bj²

sae-lens's own convention (``loss_convention="sae_lens"``) sums the MSE over the n dimensions
instead of averaging it: ``L' = (1/B) Σ_b ‖x_b − x̂_b‖² + (λ₁'/B) Σ w̃|h| + (λ₂'/B) Σ h²``.
The two are the same objective up to a factor n when λ' = n·λ::

    L'(λ₁' = n·λ₁, λ₂' = n·λ₂) = n · L(λ₁, λ₂)

so the authors' λ values (method.md grids) are used as-is with ``"authors"`` and must be
multiplied by n (= ``d_in``) with ``"sae_lens"``. Adam is invariant to that constant factor
except through ε and sae-lens's fixed gradient-norm clip of 1.0.

The objective is written once, per sample, by the functions under "the objective, once"
(:func:`squared_error`, :func:`penalised_codes`, :func:`l1_penalty`, :func:`l2_penalty`); the
training SAE and the exact (FISTA) codes of :mod:`aenbench.stability` both use them.

Adaptive weights (constants w.r.t. the gradient), updated every training step *before* the loss:

1. EMA of mean activity: ``a_j ← max(β a_j + (1−β) mean_b |h_bj|, 1e-5)``, a_j = 1 at init,
   no bias correction.
2. Reference scale: ``r = mean of the ⌈p·m⌉ largest a_j`` (at least one).
3. Raw weight: ``w_j = clip((r / a_j)^γ, w_min, w_max)``.
4. Delayed warm-up: ``w̃_j = 1 + (w_j − 1) φ(t)`` with φ(t) = 0 for t < T_w and
   φ(t) = min(1, (t − T_w)/R) afterwards. t counts completed optimiser steps (0 at the first).

Decoder normalisation (``decoder_norm``):

* ``"project"`` (the authors' choice, paper configs): rows of W_dec are unit-norm at init and
  re-projected after every optimiser step; the penalty uses h as is.
* ``"weight_penalty"`` (sae-lens's choice): W_dec is free, and h_j is replaced by
  h_j ‖W_dec[j]‖ in both penalties and in the EMA.

Initialisation (method.md §1): PyTorch's default ``nn.Linear`` uniform init for W_enc, b_enc
and W_dec (no tied init), b_dec = 0, decoder rows normalised to unit norm.

The EMA ``a`` (buffer ``ema_activity``), the effective weights w̃ (buffer ``adaptive_weights``)
and the step they belong to (buffer ``weights_step``) are saved with the SAE and loaded by the
inference class, which ignores them when encoding.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from typing_extensions import override

from sae_lens import register_sae_class, register_sae_training_class
from sae_lens.registry import SAE_CLASS_REGISTRY, SAE_TRAINING_CLASS_REGISTRY
from sae_lens.saes.sae import (
    SAE,
    SAEConfig,
    TrainCoefficientConfig,
    TrainingSAE,
    TrainingSAEConfig,
    TrainStepInput,
    TrainStepOutput,
)

ARCHITECTURE = "aen"
TRACE_EVERY = 100  # steps between two points of AENTrainingSAE.adaptive_trace
EMA_FLOOR = 1e-5


# --------------------------------------------------------------------------- the math, once


def reference_scale(a_M: torch.Tensor, p: float | torch.Tensor) -> torch.Tensor:
    """r = mean of the ⌈p·m⌉ largest entries of a (at least one entry), over the last dimension.

    Stacked (a_KM, p a (K, 1) tensor, one p per SAE of a stack): r_K1, each SAE's own ⌈p_k·m⌉."""
    m = a_M.shape[-1]
    if not torch.is_tensor(p):
        n_top = max(1, math.ceil(p * m))
        return a_M.topk(n_top, dim=-1).values.mean(dim=-1)
    n_top_K1 = torch.ceil(p.double() * m).clamp(min=1).to(torch.int64)
    top_KT = a_M.topk(int(n_top_K1.max()), dim=-1).values
    keep_KT = torch.arange(top_KT.shape[-1], device=a_M.device) < n_top_K1
    return (top_KT * keep_KT).sum(dim=-1, keepdim=True) / n_top_K1


def raw_weights(a_M: torch.Tensor, gamma: float | torch.Tensor, p: float | torch.Tensor,
                w_min: float | torch.Tensor, w_max: float | torch.Tensor) -> torch.Tensor:
    """w_j = clip((r / a_j)^γ, w_min, w_max). Stacked: a_KM with γ, p, w_min, w_max (K, 1) tensors.

    A stack's γ is applied one distinct value at a time, as a Python float: torch's ``pow`` takes
    special paths for some exponents (0.5 is a square root), so a tensor exponent would round
    differently from the per-SAE path."""
    ratio = reference_scale(a_M, p) / a_M
    if torch.is_tensor(gamma):
        powered = torch.empty_like(ratio)
        for g in gamma.unique().tolist():
            rows = (gamma == g).squeeze(-1)
            powered[rows] = ratio[rows].pow(g)
        ratio = powered
    else:
        ratio = ratio.pow(gamma)
    return ratio.clamp(min=w_min, max=w_max)


def warmup_factor(t: int, warmup_steps: int | torch.Tensor, ramp_steps: int | torch.Tensor) -> float | torch.Tensor:
    """φ(t) = 0 for t < T_w, else min(1, (t − T_w)/R); R = 0 means a step at T_w.
    Stacked: T_w and R (K, 1) tensors give φ_K1."""
    if torch.is_tensor(warmup_steps) or torch.is_tensor(ramp_steps):
        T_w = torch.as_tensor(warmup_steps, dtype=torch.float64)
        R = torch.as_tensor(ramp_steps, dtype=torch.float64)
        ramp = torch.where(R > 0, ((t - T_w) / R.clamp(min=1)).clamp(max=1.0), torch.ones_like(R))
        return torch.where(t < T_w, torch.zeros_like(ramp), ramp)
    if t < warmup_steps:
        return 0.0
    if ramp_steps <= 0:
        return 1.0
    return min(1.0, (t - warmup_steps) / ramp_steps)


def effective_weights(
    a_M: torch.Tensor, t: int, *, gamma: float | torch.Tensor, p: float | torch.Tensor,
    w_min: float | torch.Tensor, w_max: float | torch.Tensor,
    warmup_steps: int | torch.Tensor, ramp_steps: int | torch.Tensor,
    phi: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """w̃_j = 1 + (w_j − 1)·φ(t). Stacked: a_KM with (K, 1) hyperparameters; ``phi`` (K, 1), when
    given, replaces φ(t) (a stack passes φ = 0 for its non-adaptive members: w̃ ≡ 1 exactly)."""
    if phi is None:
        phi = warmup_factor(t, warmup_steps, ramp_steps)
    if torch.is_tensor(phi):
        if not bool(phi.any()):
            return torch.ones_like(a_M)
        return 1.0 + (raw_weights(a_M, gamma, p, w_min, w_max) - 1.0) * phi.to(a_M.dtype)
    if phi == 0.0:
        return torch.ones_like(a_M)
    return 1.0 + (raw_weights(a_M, gamma, p, w_min, w_max) - 1.0) * phi


def update_ema(a_M: torch.Tensor, acts_BM: torch.Tensor, beta: float | torch.Tensor,
               nonneg: bool = False) -> torch.Tensor:
    """a ← max(β a + (1−β) mean_b |h_b|, 1e-5), the mean over the batch dimension (the one before
    the last: acts_BM, or acts_KBM of a stack with β a (K, 1) tensor). ``nonneg=True`` promises
    h ≥ 0 (ReLU codes), so |h| = h and the pass over the B×m codes that takes |h| is skipped."""
    mean_abs_M = (acts_BM if nonneg else acts_BM.abs()).mean(dim=-2)
    if torch.is_tensor(beta):  # 1 − β in float64, then rounded, as for a Python float β
        beta, one_minus_beta = beta.to(a_M.dtype), (1.0 - beta.double()).to(a_M.dtype)
    else:
        one_minus_beta = 1.0 - beta
    return (beta * a_M + one_minus_beta * mean_abs_M).clamp(min=EMA_FLOOR)


# --------------------------------------------------------------------------- the objective, once
#
# Per sample b (each function reduces over the last dimension) the objective of method.md §2 is
#
#     F_b = ‖x_b − x̂_b‖² / mse_divisor  +  λ₁ Σ_j w̃_j |h̃_bj|  +  λ₂ Σ_j h̃_bj²
#
# with h̃ = penalised_codes(h) and mse_divisor = n ("authors") or 1 ("sae_lens"); the training loss
# is its mean over the batch (sae-lens's ``training_forward_pass`` sums ``squared_error`` over the
# last dimension and averages over the batch; ``aen_penalties`` averages the penalties). The exact
# codes of ``aenbench.stability`` (FISTA) minimise the same F, through these functions.


def mse_divisor(loss_convention: str, d_in: int) -> int:
    """The MSE convention as the number ‖x − x̂‖² is divided by: n (= ``d_in``) under ``"authors"``
    (the 1/(B·n) of method.md §2: the MSE averages over the n dims), 1 under ``"sae_lens"`` (it sums
    them). The weight of the reconstruction term in F is c = 1/mse_divisor."""
    if loss_convention == "authors":
        return d_in
    if loss_convention == "sae_lens":
        return 1
    raise ValueError(f"unknown loss_convention {loss_convention!r}")


def squared_error(preds: torch.Tensor, target: torch.Tensor, loss_convention: str) -> torch.Tensor:
    """Per-element (x_i − x̂_i)² / mse_divisor: sae-lens's ``mse_loss_fn``, which it sums over the
    last dimension to c‖x_b − x̂_b‖² and averages over the batch."""
    err = torch.nn.functional.mse_loss(preds, target, reduction="none")
    divisor = mse_divisor(loss_convention, target.shape[-1])
    return err if divisor == 1 else err / divisor


def decoder_scale(W_dec_MN: torch.Tensor, decoder_norm: str) -> torch.Tensor | None:
    """s_M with h̃_j = s_j h_j the codes the penalties act on: s_j = ‖W_dec[j]‖ under
    ``weight_penalty``; None (s ≡ 1: unit decoder rows) under ``project``."""
    return W_dec_MN.norm(dim=-1) if decoder_norm == "weight_penalty" else None


def penalised_codes(acts_BM: torch.Tensor, W_dec_MN: torch.Tensor, decoder_norm: str) -> torch.Tensor:
    """h̃ = h under ``project``; h̃_j = h_j ‖W_dec[j]‖ under ``weight_penalty``."""
    scale_M = decoder_scale(W_dec_MN, decoder_norm)
    return acts_BM if scale_M is None else acts_BM * _per_row(scale_M)


def _per_row(v: torch.Tensor) -> torch.Tensor:
    """A per-SAE vector v_M (or v_KM of a stack) laid over codes h_BM (h_KBM): v_M as is, v_KM as
    v_K1M, so that each SAE of a stack gets its own."""
    return v if v.dim() == 1 else v.unsqueeze(-2)


def l1_penalty(acts_BM: torch.Tensor, weights_M: torch.Tensor, nonneg: bool = False) -> torch.Tensor:
    """Σ_j w_j |h_j| over the last dimension (w = w̃ in F; times λ₁ it is the ℓ1 term).

    ``nonneg=True`` promises h ≥ 0 (ReLU codes): then |h| = h and the term is the mat-vec h w with no
    |·| pass, forward and backward (bench/RESULTS.md: such passes were AEN's whole overhead over
    sae-lens ``standard`` at the Pythia-70M shape). Same values either way. Stacked: h_KBM with
    w_KM gives the K×B sums, one batched mat-vec."""
    acts = acts_BM if nonneg else acts_BM.abs()
    if weights_M.dim() == 1:
        return acts @ weights_M
    return (acts @ weights_M.unsqueeze(-1)).squeeze(-1)


def l2_penalty(acts_BM: torch.Tensor, weights: float | torch.Tensor | None = None) -> torch.Tensor:
    """Σ_j v_j h_j² over the last dimension; v ≡ 1 when ``weights`` is None (then ‖h‖², one norm
    reduction and no elementwise square), else v a scalar or an (M,) tensor."""
    if weights is None:
        return torch.linalg.vector_norm(acts_BM, dim=-1).square()
    return (acts_BM.pow(2) * weights).sum(dim=-1)


def aen_penalties(
    acts_BM: torch.Tensor, w_tilde_M: torch.Tensor, l1: float | torch.Tensor, l2: float | torch.Tensor,
    nonneg: bool = False,
) -> dict[str, torch.Tensor]:
    """(λ₁/B) Σ_b Σ_j w̃_j |h_bj| and (λ₂/B) Σ_b Σ_j h_bj²: the batch means of λ₁ ``l1_penalty``
    and λ₂ ``l2_penalty`` (pass h̃ for h). ``nonneg=True`` promises h ≥ 0 and takes the fast path:
    the ℓ1 sums are summed then divided by B, and Σ_b Σ_j h_bj² is one norm over the B·m codes
    flattened. Same values either way. Stacked (h_KBM, w̃_KM, λ₁ and λ₂ (K,) tensors): one value
    per SAE, shape (K,).

    The fast path sums the codes over the batch before weighting them,
    Σ_b Σ_j w̃_j h_bj = Σ_j w̃_j (Σ_b h_bj): the ℓ1 term is then one mat-vec of m entries (per SAE)
    instead of B, and its gradient λ₁ w̃_j / B is a broadcast, not a B×m outer product
    (bench/RESULTS.md, the stacked trainer)."""
    batch = acts_BM.shape[-2]
    if nonneg:
        return {
            "l1_loss": l1 * l1_penalty(acts_BM.sum(dim=-2, keepdim=True), w_tilde_M, nonneg=True).sum(dim=-1) / batch,
            "l2_loss": l2 * l2_penalty(acts_BM.flatten(-2)) / batch,
        }
    return {
        "l1_loss": l1 * l1_penalty(acts_BM, w_tilde_M).mean(dim=-1),
        "l2_loss": l2 * l2_penalty(acts_BM).mean(dim=-1),
    }


# --------------------------------------------------------------------------- the model, once
#
# h = ReLU((x − b_dec) W_enc + b_enc), x̂ = h W_dec + b_dec (module docstring). The same functions
# serve one SAE (W_enc_NM, b_enc_M, …) and a stack of K (W_enc_KNM, b_enc_KM, …): matmul batches
# over the leading K, and the biases are laid over the batch dimension.


def _over_batch(bias: torch.Tensor) -> torch.Tensor:
    return bias if bias.dim() == 1 else bias.unsqueeze(-2)


def _affine(in_BI: torch.Tensor, W_IO: torch.Tensor, b_O: torch.Tensor) -> torch.Tensor:
    """in W + b: a matmul, then the bias added (sae-lens's ops). A stack (in_KBI, W_KIO, b_KO)
    takes the same two ops, batched: on CPU each SAE's slice is then bit for bit what it computes
    alone. (A fused ``baddbmm`` is not: it adds the bias inside the GEMM's accumulation, which
    rounds differently, and a 1-ulp difference grows chaotically over training.)"""
    return in_BI @ W_IO + _over_batch(b_O)


def encoder_pre(sae_in_BN: torch.Tensor, W_enc_NM: torch.Tensor, b_enc_M: torch.Tensor) -> torch.Tensor:
    """(x − b_dec) W_enc + b_enc, from sae_in = x − b_dec (sae-lens's ``process_sae_in``)."""
    return _affine(sae_in_BN, W_enc_NM, b_enc_M)


def decoder_out(acts_BM: torch.Tensor, W_dec_MN: torch.Tensor, b_dec_N: torch.Tensor) -> torch.Tensor:
    """x̂ = h W_dec + b_dec."""
    return _affine(acts_BM, W_dec_MN, b_dec_N)


@torch.no_grad()
def project_rows_(W_dec_MN: torch.Tensor) -> None:
    """Re-project decoder atoms (rows, the last dimension) to unit ℓ2 norm, in place."""
    W_dec_MN /= W_dec_MN.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def penalty_coefficients(
    w_tilde_M: torch.Tensor, l1: float, l2: float, W_dec_MN: torch.Tensor, decoder_norm: str
) -> tuple[torch.Tensor, float | torch.Tensor]:
    """The penalties of F as coefficients on the raw codes h, for a solver that needs them per
    latent: λ₁ Σ_j w̃_j |h̃_j| + λ₂ Σ_j h̃_j² = Σ_j l1_j |h_j| + Σ_j l2_j h_j² with

    * ``project`` (h̃ = h): l1_j = λ₁ w̃_j, l2 = λ₂ (a float);
    * ``weight_penalty`` (h̃_j = h_j ‖W_dec[j]‖): l1_j = λ₁ w̃_j ‖W_dec[j]‖, l2_j = λ₂ ‖W_dec[j]‖².

    Returns (l1_M, l2), for ``l1_penalty(h, l1_M)`` and ``l2_penalty(h, l2)``."""
    l1_M = l1 * w_tilde_M
    scale_M = decoder_scale(W_dec_MN, decoder_norm)
    if scale_M is None:
        return l1_M, float(l2)
    return l1_M * scale_M, l2 * scale_M.pow(2)


def _authors_init(module: nn.Module, d_in: int, d_sae: int, dtype: torch.dtype, device: torch.device) -> None:
    """nn.Linear default init for encoder (fan_in n) and decoder (fan_in m); unit decoder rows."""
    enc = nn.Linear(d_in, d_sae, dtype=dtype, device=device)
    dec = nn.Linear(d_sae, d_in, bias=False, dtype=dtype, device=device)
    module.W_enc = nn.Parameter(enc.weight.detach().T.contiguous())  # (n, m)
    module.b_enc = nn.Parameter(enc.bias.detach().clone())  # (m,)
    w_dec_MN = dec.weight.detach().T.contiguous()  # (m, n)
    module.W_dec = nn.Parameter(w_dec_MN / w_dec_MN.norm(dim=-1, keepdim=True))
    module.b_dec = nn.Parameter(torch.zeros(d_in, dtype=dtype, device=device))


def _register_state_buffers(module: nn.Module, d_sae: int, dtype: torch.dtype, device: torch.device) -> None:
    module.register_buffer("ema_activity", torch.ones(d_sae, dtype=dtype, device=device))
    module.register_buffer("adaptive_weights", torch.ones(d_sae, dtype=dtype, device=device))
    module.register_buffer("weights_step", torch.zeros((), dtype=torch.int64, device=device))


# --------------------------------------------------------------------------- inference class


@dataclass
class AENSAEConfig(SAEConfig):
    """Inference config of the AEN family: a ReLU SAE (the penalty only matters in training)."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return ARCHITECTURE


class AENSAE(SAE[AENSAEConfig]):
    """Inference AEN-SAE: h = ReLU((x − b_dec) W_enc + b_enc), x̂ = h W_dec + b_dec.

    Carries the training-time adaptive state (``ema_activity``, ``adaptive_weights``,
    ``weights_step``) so a saved SAE can be inspected; encoding does not use it.
    """

    b_enc: nn.Parameter

    @override
    def initialize_weights(self) -> None:
        _authors_init(self, self.cfg.d_in, self.cfg.d_sae, self.dtype, self.device)
        _register_state_buffers(self, self.cfg.d_sae, self.dtype, self.device)

    @override
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        sae_in = self.process_sae_in(x)
        hidden_pre = self.hook_sae_acts_pre(encoder_pre(sae_in, self.W_enc, self.b_enc))
        return self.hook_sae_acts_post(self.activation_fn(hidden_pre))

    @override
    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor:
        sae_out = self.hook_sae_recons(decoder_out(feature_acts, self.W_dec, self.b_dec))
        sae_out = self.run_time_activation_norm_fn_out(sae_out)
        return self.reshape_fn_out(sae_out, self.d_head)


# --------------------------------------------------------------------------- training class


@dataclass
class AENTrainingSAEConfig(TrainingSAEConfig):
    """Hyperparameters of the AEN objective, named as in method.md §2.

    ``l1_coefficient`` = λ₁, ``l2_coefficient`` = λ₂, ``gamma`` = γ, ``beta`` = β, ``p`` = p,
    ``w_min``/``w_max`` clip the raw weights, ``warmup_steps`` = T_w, ``ramp_steps`` = R.
    """

    l1_coefficient: float = 1e-3
    l2_coefficient: float = 0.0
    adaptive: bool = False
    gamma: float = 1.0
    beta: float = 0.999
    p: float = 0.01
    w_min: float = 0.01
    w_max: float = 10.0
    warmup_steps: int = 0
    ramp_steps: int = 2000
    decoder_norm: Literal["project", "weight_penalty"] = "project"
    loss_convention: Literal["authors", "sae_lens"] = "authors"
    decoder_init_norm: float | None = None

    @override
    @classmethod
    def architecture(cls) -> str:
        return ARCHITECTURE

    def __post_init__(self) -> None:
        super().__post_init__()
        problems = []
        if self.l1_coefficient < 0:
            problems.append(f"l1_coefficient (λ₁) must be ≥ 0, got {self.l1_coefficient}")
        if self.l2_coefficient < 0:
            problems.append(f"l2_coefficient (λ₂) must be ≥ 0, got {self.l2_coefficient}")
        if not 0 < self.beta < 1:
            problems.append(f"beta (β) must be in (0, 1), got {self.beta}")
        if not 0 < self.p <= 1:
            problems.append(f"p must be in (0, 1], got {self.p}")
        if self.gamma < 0:
            problems.append(f"gamma (γ) must be ≥ 0, got {self.gamma}")
        if not 0 < self.w_min <= self.w_max:
            problems.append(f"need 0 < w_min ≤ w_max, got w_min={self.w_min}, w_max={self.w_max}")
        if self.warmup_steps < 0 or self.ramp_steps < 0:
            problems.append(f"warmup_steps and ramp_steps must be ≥ 0, got {self.warmup_steps}, {self.ramp_steps}")
        if self.decoder_norm not in ("project", "weight_penalty"):
            problems.append(f"decoder_norm must be 'project' or 'weight_penalty', got {self.decoder_norm!r}")
        if self.loss_convention not in ("authors", "sae_lens"):
            problems.append(f"loss_convention must be 'authors' or 'sae_lens', got {self.loss_convention!r}")
        if self.decoder_init_norm is not None:
            problems.append("decoder_init_norm must be None: AEN uses the authors' init (method.md §1)")
        if problems:
            raise ValueError("invalid AEN config: " + "; ".join(problems))


class AENTrainingSAE(TrainingSAE[AENTrainingSAEConfig]):
    """Training AEN-SAE. The objective is the module's functions (:func:`squared_error` as
    ``mse_loss_fn``, :func:`penalised_codes` and :func:`aen_penalties` in
    :meth:`calculate_aux_loss`); see the module docstring for the math."""

    b_enc: nn.Parameter
    ema_activity: torch.Tensor
    adaptive_weights: torch.Tensor
    weights_step: torch.Tensor

    def __init__(self, cfg: AENTrainingSAEConfig, use_error_term: bool = False):
        super().__init__(cfg, use_error_term)
        self.projected_after_step = False  # set by aenbench.training.train_sae's post-step hook
        # weight_summary() every TRACE_POINTS-th of training, for the record (not in the state dict)
        self.adaptive_trace: list[dict[str, Any]] = []
        self.mse_loss_fn = functools.partial(squared_error, loss_convention=cfg.loss_convention)

    @override
    def initialize_weights(self) -> None:
        _authors_init(self, self.cfg.d_in, self.cfg.d_sae, self.dtype, self.device)
        _register_state_buffers(self, self.cfg.d_sae, self.dtype, self.device)

    @override
    def get_coefficients(self) -> dict[str, float | TrainCoefficientConfig]:
        return {"l1": self.cfg.l1_coefficient, "l2": self.cfg.l2_coefficient}

    @override
    def encode_with_hidden_pre(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sae_in = self.process_sae_in(x)
        hidden_pre = self.hook_sae_acts_pre(encoder_pre(sae_in, self.W_enc, self.b_enc))
        return self.hook_sae_acts_post(self.activation_fn(hidden_pre)), hidden_pre

    @torch.no_grad()
    def project_decoder(self) -> None:
        """Re-project decoder atoms (rows of W_dec) to unit ℓ2 norm; no-op for weight_penalty."""
        if self.cfg.decoder_norm == "project":
            project_rows_(self.W_dec.data)

    def post_optimizer_step(self) -> None:
        """Called by aenbench's trainer after every optimiser step (method.md §1)."""
        self.project_decoder()

    @torch.no_grad()
    def update_adaptive_state(self, acts_BM: torch.Tensor, t: int) -> torch.Tensor:
        """EMA update then w̃ for step t (w̃ ≡ 1 when ``adaptive`` is off; the EMA is still kept
        so the weight histogram of a non-adaptive run can be inspected)."""
        cfg = self.cfg
        self.ema_activity.copy_(update_ema(self.ema_activity, acts_BM, cfg.beta, nonneg=True))
        if cfg.adaptive:
            w_tilde = effective_weights(
                self.ema_activity, t, gamma=cfg.gamma, p=cfg.p, w_min=cfg.w_min,
                w_max=cfg.w_max, warmup_steps=cfg.warmup_steps, ramp_steps=cfg.ramp_steps,
            )
            self.adaptive_weights.copy_(w_tilde)
        self.weights_step.fill_(t)
        if t % TRACE_EVERY == 0:
            self.adaptive_trace.append({"step": int(t), **self.weight_summary()})
        return self.adaptive_weights

    @override
    def training_forward_pass(self, step_input: TrainStepInput) -> TrainStepOutput:
        # Keeps the authors' order even when driven by a plain sae-lens SAETrainer that has no
        # post-step hook: the loss is always computed with unit-norm decoder rows. aenbench's
        # trainer projects after every optimiser step (``post_optimizer_step``) and sets
        # ``projected_after_step``; the rows are then already unit-norm and this pass is skipped.
        if not self.projected_after_step:
            self.project_decoder()
        return super().training_forward_pass(step_input)

    @override
    def calculate_aux_loss(
        self,
        step_input: TrainStepInput,
        feature_acts: torch.Tensor,
        hidden_pre: torch.Tensor,
        sae_out: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        # ReLU codes (times decoder norms under weight_penalty) are ≥ 0
        acts_BM = penalised_codes(feature_acts, self.W_dec, self.cfg.decoder_norm)
        w_tilde_M = self.update_adaptive_state(acts_BM.detach(), step_input.n_training_steps)
        return aen_penalties(
            acts_BM, w_tilde_M, step_input.coefficients["l1"], step_input.coefficients["l2"], nonneg=True
        )

    def weight_summary(self) -> dict[str, Any]:
        """Histogram-style summary of w̃: share pinned at w_min / w_max (method.md §4 note)."""
        cfg = self.cfg
        w = raw_weights(self.ema_activity, cfg.gamma, cfg.p, cfg.w_min, cfg.w_max)
        tol = 1e-6
        return {
            "pct_w_at_min": 100.0 * (w <= cfg.w_min * (1 + tol)).float().mean().item(),
            "pct_w_at_max": 100.0 * (w >= cfg.w_max * (1 - tol)).float().mean().item(),
            "w_tilde_mean": self.adaptive_weights.double().mean().item(),  # float64: w_max may be near float32's max
            "ema_median": self.ema_activity.median().item(),
        }


# --------------------------------------------------------------------------- a stack of K

# The hyperparameters that may differ between the SAEs of one stack; every other field of their
# configs must be equal (:func:`stack_key`).
STACK_HYPERPARAMETERS = ("l1_coefficient", "l2_coefficient", "adaptive", "gamma", "beta", "p", "w_min", "w_max",
                         "warmup_steps", "ramp_steps")


def stack_key(cfg: AENTrainingSAEConfig) -> str:
    """What SAEs must share to be trained as one stack: their configs but for the
    ``STACK_HYPERPARAMETERS`` (shape, dtype, device, decoder_norm, loss_convention, …)."""
    import json

    fields = {k: v for k, v in cfg.to_dict().items() if k not in STACK_HYPERPARAMETERS and k != "metadata"}
    return json.dumps(fields, sort_keys=True, default=str)


class AENStack(nn.Module):
    """K AEN training SAEs of one shape as one module, for a trainer that steps them together
    (:mod:`aenbench.stacked_training`): their parameters stacked along a leading K (W_enc_KNM,
    b_enc_KM, W_dec_KMN, b_dec_KN), their EMA and w̃ per SAE (ema_activity_KM,
    adaptive_weights_KM), and their hyperparameters of ``STACK_HYPERPARAMETERS`` as per-SAE
    tensors. The forward pass, the loss and the adaptive state are this module's functions
    above, which reduce over the last dimension and batch over K: SAE k of the stack computes
    what ``AENTrainingSAE`` computes for it (up to float reassociation of the batched matmuls;
    tests/test_stacked_training.py).

    Each SAE's loss is L_k = mse_k + l1_k + l2_k; the trainer backpropagates Σ_k L_k, whose
    gradient with respect to SAE k's parameters is ∇L_k (the SAEs share no parameter)."""

    def __init__(self, members: list[AENTrainingSAE]):
        super().__init__()
        if not members:
            raise ValueError("a stack needs at least one SAE")
        keys = {stack_key(m.cfg) for m in members}
        if len(keys) > 1:
            raise ValueError("SAEs of one stack must share every config field but "
                             f"{', '.join(STACK_HYPERPARAMETERS)}; got {len(keys)} different configs")
        cfg0 = members[0].cfg
        if cfg0.normalize_activations != "none":
            raise ValueError(f"a stack trains on raw inputs; normalize_activations={cfg0.normalize_activations!r} "
                             "is trained per SAE (train.engine: per_sae)")
        self._members = list(members)  # a plain list: not submodules, their parameters are not ours
        self.decoder_norm = cfg0.decoder_norm
        self.loss_convention = cfg0.loss_convention
        self.apply_b_dec_to_input = bool(cfg0.apply_b_dec_to_input)
        with torch.no_grad():
            for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
                setattr(self, name, nn.Parameter(torch.stack([getattr(m, name).detach() for m in members]).clone()))
            for name in ("ema_activity", "adaptive_weights"):
                self.register_buffer(name, torch.stack([getattr(m, name) for m in members]).clone())
        cfgs = [m.cfg for m in members]
        device = self.W_enc.device
        dtype = self.W_enc.dtype

        def per_sae(field: str, dt: torch.dtype, column: bool = True) -> torch.Tensor:
            v = torch.tensor([float(getattr(c, field)) for c in cfgs], dtype=dt, device=device)
            return v.unsqueeze(-1) if column else v

        # float64 where the per-SAE path computes in Python floats (β, p, T_w, R), else the SAEs' dtype
        self.adaptive_K1 = torch.tensor([bool(c.adaptive) for c in cfgs], device=device).unsqueeze(-1)
        self.any_adaptive = bool(self.adaptive_K1.any())
        self.gamma_K1, self.w_min_K1, self.w_max_K1 = (per_sae(f, dtype) for f in ("gamma", "w_min", "w_max"))
        self.beta_K1, self.p_K1 = per_sae("beta", torch.float64), per_sae("p", torch.float64)
        self.warmup_K1, self.ramp_K1 = per_sae("warmup_steps", torch.float64), per_sae("ramp_steps", torch.float64)
        gammas = {float(c.gamma) for c in cfgs}
        self.gamma_uniform = gammas.pop() if len(gammas) == 1 else None

    @property
    def members(self) -> list[AENTrainingSAE]:
        return self._members

    def __len__(self) -> int:
        return len(self._members)

    def training_losses(self, x_BN: torch.Tensor, t: int, l1_K: torch.Tensor, l2_K: torch.Tensor
                        ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The loss terms of every SAE at completed-step count t, each of shape (K,), and the
        codes h_KBM (``AENTrainingSAE.training_forward_pass`` and ``calculate_aux_loss`` for
        each SAE, batched). Updates the EMA and w̃ first, as they do."""
        sae_in_KBN = x_BN - _over_batch(self.b_dec) * self.apply_b_dec_to_input
        acts_KBM = torch.relu(encoder_pre(sae_in_KBN, self.W_enc, self.b_enc))
        out_KBN = decoder_out(acts_KBM, self.W_dec, self.b_dec)
        mse_K = squared_error(out_KBN, x_BN.expand_as(out_KBN), self.loss_convention).sum(dim=-1).mean(dim=-1)
        codes_KBM = penalised_codes(acts_KBM, self.W_dec, self.decoder_norm)
        w_tilde_KM = self.update_adaptive_state(codes_KBM.detach(), t)
        return {"mse_loss": mse_K, **aen_penalties(codes_KBM, w_tilde_KM, l1_K, l2_K, nonneg=True)}, acts_KBM

    @torch.no_grad()
    def update_adaptive_state(self, codes_KBM: torch.Tensor, t: int) -> torch.Tensor:
        """``AENTrainingSAE.update_adaptive_state`` for every SAE: EMA, then w̃ for the adaptive
        ones (the others keep w̃ ≡ 1), and the weight summary every ``TRACE_EVERY`` steps."""
        self.ema_activity.copy_(update_ema(self.ema_activity, codes_KBM, self.beta_K1, nonneg=True))
        if self.any_adaptive:
            phi_K1 = torch.where(self.adaptive_K1, warmup_factor(t, self.warmup_K1, self.ramp_K1), 0.0)
            if bool(phi_K1.any()):
                gamma = self.gamma_uniform if self.gamma_uniform is not None else self.gamma_K1
                w_KM = effective_weights(self.ema_activity, t, gamma=gamma, p=self.p_K1, w_min=self.w_min_K1,
                                         w_max=self.w_max_K1, warmup_steps=self.warmup_K1, ramp_steps=self.ramp_K1,
                                         phi=phi_K1)
                self.adaptive_weights.copy_(torch.where(self.adaptive_K1, w_KM, self.adaptive_weights))
            else:
                self.adaptive_weights.copy_(torch.where(self.adaptive_K1, 1.0, self.adaptive_weights))
        if t % TRACE_EVERY == 0:
            self.write_back(t)
            for m in self._members:
                m.adaptive_trace.append({"step": int(t), **m.weight_summary()})
        return self.adaptive_weights

    @torch.no_grad()
    def project_decoder(self) -> None:
        """``AENTrainingSAE.project_decoder`` for every SAE."""
        if self.decoder_norm == "project":
            project_rows_(self.W_dec.data)

    @torch.no_grad()
    def write_back(self, t: int | None = None) -> None:
        """Copy each SAE's slice of the stack into its own ``AENTrainingSAE`` (``t``: the step its
        adaptive state belongs to)."""
        for k, m in enumerate(self._members):
            for name in ("W_enc", "b_enc", "W_dec", "b_dec", "ema_activity", "adaptive_weights"):
                getattr(m, name).data.copy_(getattr(self, name)[k])
            if t is not None:
                m.weights_step.fill_(t)


def register() -> None:
    """Register ``aen`` with both sae-lens registries (idempotent for re-imports)."""
    if ARCHITECTURE not in SAE_CLASS_REGISTRY:
        register_sae_class(ARCHITECTURE, AENSAE, AENSAEConfig)
    if ARCHITECTURE not in SAE_TRAINING_CLASS_REGISTRY:
        register_sae_training_class(ARCHITECTURE, AENTrainingSAE, AENTrainingSAEConfig)


register()
