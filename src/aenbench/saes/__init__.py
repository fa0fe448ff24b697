"""SAE architectures shipped by aenbench, one file each; importing registers them with sae-lens."""

from aenbench.saes.aen import AENSAE, AENSAEConfig, AENTrainingSAE, AENTrainingSAEConfig

__all__ = ["AENSAE", "AENSAEConfig", "AENTrainingSAE", "AENTrainingSAEConfig"]
