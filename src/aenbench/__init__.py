"""aenbench: benchmark and replication suite for adaptive elastic-net SAEs.

Importing the package registers the ``aen`` architecture with sae-lens, so a saved AEN-SAE
loads with ``import aenbench; sae_lens.SAE.load_from_disk(path)``.
"""

from aenbench import saes  # noqa: F401  (registers "aen" with sae-lens)

__version__ = "0.1.0"
