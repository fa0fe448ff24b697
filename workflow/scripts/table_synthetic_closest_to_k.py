from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from aenbench.synthetic.figures import CLOSEST_COLUMNS, STABILITY_COLUMNS, closest_to_k, write_table  # noqa: E402

smk = snakemake  # noqa: F821
lb = pd.read_csv(smk.input.leaderboard)
rows = lb[(lb["source"] == "ours") & (lb["kind"] == "family") & (lb["track"] == "synthetic")
          & (lb["dataset"] == smk.wildcards.dataset)]
table = closest_to_k(rows, smk.params.k, smk.params.families)
write_table(table, ["family", "config", "n_replicates", *CLOSEST_COLUMNS, *STABILITY_COLUMNS, "pct_w_at_max",
                    "L0_matched", "brackets_k"],
            smk.output.csv, smk.output.md,
            title=f"{smk.wildcards.dataset}: per family the grid run with L0 closest to k = {smk.params.k}; "
                  "cells: mean [min, max] over it and its seed / teacher replicates (n_replicates runs); "
                  "L0_matched: the selected run within 25 % of k; brackets_k: the family's grid has runs at "
                  "L0 ≤ k and L0 ≥ k (the L0 coverage rule; **no**: the family fails it on this ρ)")
print(table.to_string())
