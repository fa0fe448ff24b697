"""Train any registered sae-lens architecture with sae-lens's own ``SAETrainer``.

Baselines and AEN share this one path: the architecture is looked up in sae-lens's training
registry, the trainer is sae-lens's, and aenbench adds only two things around it:

* an optimiser post-step hook that calls ``sae.post_optimizer_step()`` when the architecture
  defines one (AEN re-projects its decoder rows there, method.md §1);
* the dead-latent window of the metric: latents that did not fire in the last
  ``dead_window_steps`` steps, read from the trainer's own ``n_forward_passes_since_fired``.

sae-lens's trainer always clips the gradient norm at 1.0 and uses Adam with PyTorch's default
betas; the paper clips only on LLM runs, so synthetic runs here carry that clip too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from sae_lens import LoggingConfig, SAETrainer
from sae_lens.config import SAETrainerConfig
from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY, get_sae_training_class
from sae_lens.saes.sae import TrainingSAE

import aenbench  # noqa: F401  (registers aen)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; use 'auto' or 'cpu'")
    return device


def registered_architectures() -> list[str]:
    return sorted(SAE_TRAINING_CLASS_REGISTRY)


def build_training_sae(
    architecture: str, d_in: int, d_sae: int, params: dict[str, Any], seed: int, device: str = "cpu"
) -> TrainingSAE[Any]:
    """Instantiate ``architecture`` from the sae-lens training registry with a seeded init."""
    if architecture not in SAE_TRAINING_CLASS_REGISTRY:
        raise ValueError(
            f"unknown SAE architecture {architecture!r}; registered: {', '.join(registered_architectures())}"
        )
    sae_cls, cfg_cls = get_sae_training_class(architecture)
    try:
        cfg = cfg_cls(d_in=d_in, d_sae=d_sae, device=device, **params)
    except TypeError as err:
        fields = sorted(getattr(cfg_cls, "__dataclass_fields__", {}))
        raise ValueError(
            f"bad hyperparameters for architecture {architecture!r}: {err}. Allowed fields: {', '.join(fields)}"
        ) from err
    torch.manual_seed(seed)
    return sae_cls(cfg)


@dataclass
class TrainResult:
    sae: TrainingSAE[Any]
    trainer: SAETrainer[Any, Any]
    seconds: float
    steps: int
    dead_window_steps: int
    dead_mask_M: torch.Tensor


def train_sae(
    sae: TrainingSAE[Any],
    data_provider: Any,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    dead_window_steps: int,
    auxk_dead_window_steps: int = 1000,
    device: str = "cpu",
) -> TrainResult:
    """Run sae-lens's ``SAETrainer`` for ``steps`` steps of ``batch_size`` samples at constant lr.

    ``auxk_dead_window_steps`` is sae-lens's ``dead_feature_window``: it decides which latents
    TopK's AuxK loss treats as dead during training. The reported dead % uses
    ``dead_window_steps`` instead.
    """
    if dead_window_steps > steps:
        raise ValueError(f"dead_window_steps ({dead_window_steps}) must be ≤ steps ({steps})")
    cfg = SAETrainerConfig(
        total_training_samples=steps * batch_size,
        train_batch_size_samples=batch_size,
        lr=lr,
        lr_end=lr,
        lr_scheduler_name="constant",
        device=device,
        dead_feature_window=auxk_dead_window_steps,
        feature_sampling_window=steps,
        checkpoint_path=None,
        save_final_checkpoint=False,
        logger=LoggingConfig(log_to_wandb=False),
    )
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=data_provider)
    post_step = getattr(sae, "post_optimizer_step", None)
    if callable(post_step):
        trainer.optimizer.register_step_post_hook(lambda *_: post_step())
    start = time.perf_counter()
    trainer.fit()  # sae-lens's own tqdm bar shows progress
    seconds = time.perf_counter() - start
    dead_mask = (trainer.n_forward_passes_since_fired >= dead_window_steps).cpu()
    return TrainResult(sae, trainer, seconds, trainer.n_training_steps, dead_window_steps, dead_mask)
