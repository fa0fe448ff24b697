"""aenbench: benchmark and replication suite for adaptive elastic-net SAEs.

Importing the package is cheap: it imports neither sae-lens nor torch, so the leaderboard, the
tables, the figures and the CLI start in well under a second. The modules that train or load
SAEs import :mod:`aenbench.saes`, which registers the ``aen`` architecture with sae-lens; to load
a saved AEN-SAE yourself: ``import aenbench.saes; sae_lens.SAE.load_from_disk(path)``.
"""

__version__ = "0.1.0"
