"""Worked example of a user SAE variant: an ℓ1 ReLU SAE with Anthropic-style dead-latent resampling.

This is the heuristic the AEN paper argues against (it treats dead latents after the fact instead of
keeping the geometry stable). The file is a complete sae-lens plugin: it defines the inference and
training classes with their configs and registers them as architecture ``l1_resample``. aenbench
imports it in the training job when a config names it::

    variants:
      L1-resample:
        plugin: examples/l1_resample.py
        architecture: l1_resample
        grid: {l1_coefficient: [...]}

and ``import examples.l1_resample`` (or loading the file any other way) is all sae-lens needs to
train it or to ``SAE.load_from_disk`` an SAE saved by it.

The model is sae-lens's ``standard`` SAE, unchanged: h = ReLU((x − b_dec) W_enc + b_enc),
x̂ = h W_dec + b_dec, loss = Σ_d (x − x̂)² + λ Σ_j ‖W_dec[j]‖ |h_j| (sae-lens's convention: the MSE
is summed over dimensions, so λ here is about n× the authors' λ₁ of the ``aen`` families).

Resampling (Bricken et al. 2023, "Towards Monosemanticity", as far as it is reachable from the
SAE), at every ``resample_every``-th training step t (t > 0, t < ``resample_until``):

1. dead latents = sae-lens's ``step_input.dead_neuron_mask``: latents that did not fire for more
   than ``dead_feature_window`` steps (aenbench sets that window from
   ``synthetic.train.auxk_dead_window_steps``);
2. every input b of the current batch gets the loss ‖x_b − x̂_b‖²; one input per dead latent is
   drawn with probability ∝ loss² (with replacement when there are more dead latents than inputs);
3. the dead latent's decoder row becomes the unit direction of (x_b − b_dec), scaled to the mean
   norm of the alive decoder rows; its encoder column becomes the same direction scaled to
   ``resample_encoder_scale`` (0.2) × the mean norm of the alive encoder columns; its encoder
   bias becomes 0.

Known limitation: Anthropic also resets the Adam moments of the resampled parameters. The
optimiser belongs to sae-lens's ``SAETrainer`` and is not reachable from the SAE, so the moments
of a resampled latent are left as they were (they are near zero for a latent that has been dead
for a while, since a dead ReLU latent gets no gradient through its encoder; its decoder row and
bias moments decay with Adam's β₂ = 0.999). The first updates after a resample are therefore
slightly off from Anthropic's recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sae_lens import register_sae_class, register_sae_training_class
from sae_lens.registry import SAE_CLASS_REGISTRY, SAE_TRAINING_CLASS_REGISTRY
from sae_lens.saes.sae import TrainStepInput, TrainStepOutput
from sae_lens.saes.standard_sae import (
    StandardSAE,
    StandardSAEConfig,
    StandardTrainingSAE,
    StandardTrainingSAEConfig,
)
from typing_extensions import override

ARCHITECTURE = "l1_resample"


@dataclass
class L1ResampleSAEConfig(StandardSAEConfig):
    """Inference config: a plain ReLU SAE (resampling only matters in training)."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return ARCHITECTURE


class L1ResampleSAE(StandardSAE):
    """Inference class: sae-lens's standard ReLU SAE under the ``l1_resample`` name."""


@dataclass
class L1ResampleTrainingSAEConfig(StandardTrainingSAEConfig):
    """``l1_coefficient`` (λ, sae-lens convention) plus the resampling schedule.

    ``resample_every``: steps between two resampling events; ``resample_until``: no resampling at
    or after this step (None: until the end), so that the final dead-latent window of the metric
    sees what resampling left behind rather than freshly resampled latents;
    ``resample_encoder_scale``: the 0.2 of Anthropic's recipe.
    """

    resample_every: int = 1000
    resample_until: int | None = None
    resample_encoder_scale: float = 0.2

    @override
    @classmethod
    def architecture(cls) -> str:
        return ARCHITECTURE

    def __post_init__(self) -> None:
        super().__post_init__()
        problems = []
        if self.resample_every < 1:
            problems.append(f"resample_every must be ≥ 1, got {self.resample_every}")
        if self.resample_until is not None and self.resample_until < 0:
            problems.append(f"resample_until must be ≥ 0 or None, got {self.resample_until}")
        if self.resample_encoder_scale <= 0:
            problems.append(f"resample_encoder_scale must be > 0, got {self.resample_encoder_scale}")
        if self.l1_coefficient < 0:
            problems.append(f"l1_coefficient must be ≥ 0, got {self.l1_coefficient}")
        if problems:
            raise ValueError("invalid l1_resample config: " + "; ".join(problems))


class L1ResampleTrainingSAE(StandardTrainingSAE):
    """sae-lens's standard training SAE plus dead-latent resampling before the forward pass."""

    n_resampled: torch.Tensor
    n_resample_events: torch.Tensor

    def __init__(self, cfg: L1ResampleTrainingSAEConfig, use_error_term: bool = False):
        super().__init__(cfg, use_error_term)
        # counters, saved with the SAE so a user can see how much resampling happened
        self.register_buffer("n_resampled", torch.zeros((), dtype=torch.int64, device=self.device))
        self.register_buffer("n_resample_events", torch.zeros((), dtype=torch.int64, device=self.device))

    def resample_due(self, t: int) -> bool:
        cfg = self.cfg
        return t > 0 and t % cfg.resample_every == 0 and (cfg.resample_until is None or t < cfg.resample_until)

    @torch.no_grad()
    def resample_dead(self, x_BN: torch.Tensor, dead_M: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Re-initialise the latents in ``dead_M`` toward high-loss inputs of ``x_BN``; returns how many."""
        dead = dead_M.nonzero().squeeze(-1)
        n_dead = int(dead.numel())
        if n_dead == 0:
            return 0
        x_BN = x_BN.to(self.W_dec.dtype)
        loss_B = (self.decode(self.encode(x_BN)) - x_BN).pow(2).sum(-1)
        probs_B = loss_B.pow(2)
        if not torch.isfinite(probs_B).all() or probs_B.sum() <= 0:
            probs_B = torch.ones_like(loss_B)
        idx = torch.multinomial(probs_B, n_dead, replacement=n_dead > x_BN.shape[0], generator=generator)
        directions = x_BN[idx] - self.b_dec
        directions = directions / directions.norm(dim=-1, keepdim=True).clamp(min=1e-12)

        alive = ~dead_M
        dec_norm = self.W_dec.norm(dim=-1)[alive].mean() if alive.any() else torch.tensor(1.0)
        enc_norm = self.W_enc.norm(dim=0)[alive].mean() if alive.any() else torch.tensor(1.0)
        self.W_dec.data[dead] = directions * dec_norm
        self.W_enc.data[:, dead] = (directions * self.cfg.resample_encoder_scale * enc_norm).T
        self.b_enc.data[dead] = 0.0
        self.n_resampled += n_dead
        self.n_resample_events += 1
        return n_dead

    @override
    def training_forward_pass(self, step_input: TrainStepInput) -> TrainStepOutput:
        if step_input.dead_neuron_mask is not None and self.resample_due(step_input.n_training_steps):
            self.resample_dead(step_input.sae_in, step_input.dead_neuron_mask.to(self.W_dec.device))
        return super().training_forward_pass(step_input)

    def process_state_dict_for_saving_inference(self, state_dict: dict) -> None:
        """The counters are training state; the inference SAE is a plain ReLU SAE."""
        super().process_state_dict_for_saving_inference(state_dict)
        state_dict.pop("n_resampled", None)
        state_dict.pop("n_resample_events", None)

    def weight_summary(self) -> dict[str, float]:
        """Picked up by aenbench's synthetic track and written to metrics.json (group ``adaptive``)."""
        return {
            "n_resampled": float(self.n_resampled.item()),
            "n_resample_events": float(self.n_resample_events.item()),
        }


def register() -> None:
    """Register ``l1_resample`` with both sae-lens registries (safe to call twice)."""
    if ARCHITECTURE not in SAE_CLASS_REGISTRY:
        register_sae_class(ARCHITECTURE, L1ResampleSAE, L1ResampleSAEConfig)
    if ARCHITECTURE not in SAE_TRAINING_CLASS_REGISTRY:
        register_sae_training_class(ARCHITECTURE, L1ResampleTrainingSAE, L1ResampleTrainingSAEConfig)


register()
