"""SAE architectures shipped by aenbench, one file each; importing registers them with sae-lens."""

from aenbench.saes.aen import AENSAE, AENSAEConfig, AENTrainingSAE, AENTrainingSAEConfig
from aenbench.saes.topk_paper import (
    TopKPaperSAE,
    TopKPaperSAEConfig,
    TopKPaperTrainingSAE,
    TopKPaperTrainingSAEConfig,
)

__all__ = [
    "AENSAE", "AENSAEConfig", "AENTrainingSAE", "AENTrainingSAEConfig",
    "TopKPaperSAE", "TopKPaperSAEConfig", "TopKPaperTrainingSAE", "TopKPaperTrainingSAEConfig",
]
