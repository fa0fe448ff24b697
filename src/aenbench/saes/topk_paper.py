"""The paper's TopK SAE, registered with sae-lens as architecture ``"topk_paper"``.

The paper trains a plain TopK SAE next to its ℓ1 / EN / AL / AEN families (:mod:`aenbench.saes.aen`)
with the *same* initialisation, the *same* unit-norm decoder rows and the *same* MSE convention;
only the encoder's nonlinearity differs. With x ∈ Rⁿ, m latents, W_enc ∈ R^{n×m} and
W_dec ∈ R^{m×n} in sae-lens's layout (decoder atoms are the *rows* of ``W_dec``)::

    pre = (x − b_dec) W_enc + b_enc
    h   = TopK_k(ReLU(pre))          # the k largest entries of ReLU(pre) kept, the others 0
    x̂   = h W_dec + b_dec

TopK_k(ReLU(pre)) = ReLU(TopK_k(pre)): sae-lens's ``TopK`` activation (top k of pre, then ReLU)
gives the same codes, and is used as is. When fewer than k pre-activations are positive, only
those are non-zero.

Objective per mini-batch of B samples, the reconstruction term alone, **authors' convention**
(``loss_convention="authors"``, as in aen.py)::

    L = (1/(B·n)) Σ_b ‖x_b − x̂_b‖²

(``"sae_lens"``: the sum over the n dims, L' = n·L). There is **no AuxK** term.

Decoder rows are unit-norm at init and re-projected to unit norm after every optimiser step
(method.md §1; the post-step hook of :func:`aenbench.training.train_sae` calls
:meth:`TopKPaperTrainingSAE.post_optimizer_step`, as for ``aen``). Initialisation: aen.py's
``_authors_init``, PyTorch's default ``nn.Linear`` uniform init for W_enc, b_enc and W_dec (no
tied init), b_dec = 0, decoder rows normalised; the same seed gives the same weights as ``aen``.

Why a subclass and not sae-lens's ``topk`` through its options: ``rescale_acts_by_decoder_norm=False``
and ``aux_loss_coefficient=0`` express the plain top-k without AuxK, but no option gives

* the untied init: ``decoder_init_norm`` only rescales the rows of a kaiming-uniform W_dec and
  ties W_enc = W_decᵀ (``None`` leaves W_dec's rows at their kaiming norms, still tied); b_enc = 0;
* the projection of the decoder rows after every step (sae-lens has none);
* the authors' MSE averaged over the n dims (sae-lens sums it).

The fields those options live on stay in the config, pinned at the paper's values (a config that
sets them otherwise is rejected). The inference class is sae-lens's ``TopKSAE`` with the same
init, registered under ``topk_paper``: a saved SAE loads back with ``SAE.load_from_disk`` (after
``import aenbench.saes``) and encodes / decodes as ``TopKSAE`` does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import torch
from typing_extensions import override

from sae_lens import register_sae_class, register_sae_training_class
from sae_lens.registry import SAE_CLASS_REGISTRY, SAE_TRAINING_CLASS_REGISTRY
from sae_lens.saes.sae import TrainCoefficientConfig, TrainStepInput, TrainStepOutput
from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig, TopKTrainingSAE, TopKTrainingSAEConfig

from aenbench.saes.aen import _authors_init, mse_divisor, project_rows_, squared_error

ARCHITECTURE = "topk_paper"


def _k_problems(k: int, d_sae: int) -> list[str]:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d_sae:
        return [f"k must be an integer with 1 ≤ k ≤ d_sae = {d_sae}, got {k!r}"]
    return []


# --------------------------------------------------------------------------- inference class


@dataclass
class TopKPaperSAEConfig(TopKSAEConfig):
    """Inference config: sae-lens's TopK config (``k``), with ``rescale_acts_by_decoder_norm``
    off (the rows are unit-norm, the top-k is of the raw pre-activations)."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return ARCHITECTURE

    def __post_init__(self) -> None:
        super().__post_init__()
        problems = _k_problems(self.k, self.d_sae)
        if self.rescale_acts_by_decoder_norm:
            problems.append("rescale_acts_by_decoder_norm must be False for topk_paper")
        if problems:
            raise ValueError("invalid topk_paper config: " + "; ".join(problems))


class TopKPaperSAE(TopKSAE):
    """Inference TopK (paper): h = TopK_k(ReLU((x − b_dec) W_enc + b_enc)), x̂ = h W_dec + b_dec
    (sae-lens's ``TopKSAE.encode`` / ``decode``); a fresh one has the authors' init."""

    @override
    def initialize_weights(self) -> None:
        _authors_init(self, self.cfg.d_in, self.cfg.d_sae, self.dtype, self.device)


# --------------------------------------------------------------------------- training class


@dataclass
class TopKPaperTrainingSAEConfig(TopKTrainingSAEConfig):
    """``k`` (the number of active latents per sample) is the one hyperparameter.

    ``aux_loss_coefficient``, ``rescale_acts_by_decoder_norm`` and ``decoder_init_norm`` are
    sae-lens's TopK fields, fixed here at the paper's values (0, False, None: no AuxK, plain
    top-k, the authors' init); ``loss_convention`` is aen's (``"authors"``: MSE averaged over
    the n dims)."""

    aux_loss_coefficient: float = 0.0
    rescale_acts_by_decoder_norm: bool = False
    decoder_init_norm: float | None = None
    loss_convention: Literal["authors", "sae_lens"] = "authors"

    @override
    @classmethod
    def architecture(cls) -> str:
        return ARCHITECTURE

    def __post_init__(self) -> None:
        super().__post_init__()
        problems = _k_problems(self.k, self.d_sae)
        if self.aux_loss_coefficient != 0:
            problems.append(f"aux_loss_coefficient must be 0 (the paper's TopK has no AuxK), "
                            f"got {self.aux_loss_coefficient}; use architecture 'topk' for AuxK")
        if self.rescale_acts_by_decoder_norm:
            problems.append("rescale_acts_by_decoder_norm must be False: the decoder rows are projected to unit norm")
        if self.decoder_init_norm is not None:
            problems.append("decoder_init_norm must be None: topk_paper uses the authors' init (method.md §1)")
        try:
            mse_divisor(self.loss_convention, self.d_in)
        except ValueError:
            problems.append(f"loss_convention must be 'authors' or 'sae_lens', got {self.loss_convention!r}")
        if problems:
            raise ValueError("invalid topk_paper config: " + "; ".join(problems))


class TopKPaperTrainingSAE(TopKTrainingSAE):
    """Training TopK (paper): sae-lens's ``TopKTrainingSAE`` (encode, the TopK activation,
    decode) with the authors' init, unit decoder rows re-projected after every step, the MSE of
    aen.py's :func:`squared_error` and no auxiliary loss."""

    cfg: TopKPaperTrainingSAEConfig  # type: ignore[assignment]

    def __init__(self, cfg: TopKPaperTrainingSAEConfig, use_error_term: bool = False):
        super().__init__(cfg, use_error_term)
        self.projected_after_step = False  # set by aenbench.training.train_sae's post-step hook
        self.mse_loss_fn = functools.partial(squared_error, loss_convention=cfg.loss_convention)

    @override
    def initialize_weights(self) -> None:
        _authors_init(self, self.cfg.d_in, self.cfg.d_sae, self.dtype, self.device)

    @override
    def get_coefficients(self) -> dict[str, float | TrainCoefficientConfig]:
        return {}

    @torch.no_grad()
    def project_decoder(self) -> None:
        """Re-project decoder atoms (rows of W_dec) to unit ℓ2 norm."""
        project_rows_(self.W_dec.data)

    def post_optimizer_step(self) -> None:
        """Called by aenbench's trainer after every optimiser step (method.md §1)."""
        self.project_decoder()

    @override
    def training_forward_pass(self, step_input: TrainStepInput) -> TrainStepOutput:
        # As AENTrainingSAE: driven by a plain sae-lens SAETrainer (no post-step hook) the rows
        # are projected before the loss; aenbench's trainer projects after every step and sets
        # ``projected_after_step``, and this pass is skipped.
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
        return {}  # no AuxK: the loss is the MSE alone


def register() -> None:
    """Register ``topk_paper`` with both sae-lens registries (idempotent for re-imports)."""
    if ARCHITECTURE not in SAE_CLASS_REGISTRY:
        register_sae_class(ARCHITECTURE, TopKPaperSAE, TopKPaperSAEConfig)
    if ARCHITECTURE not in SAE_TRAINING_CLASS_REGISTRY:
        register_sae_training_class(ARCHITECTURE, TopKPaperTrainingSAE, TopKPaperTrainingSAEConfig)


register()
