from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from aenbench.plots import scale_subtitle  # noqa: E402
from aenbench.synthetic.figures import STABILITY_COLUMNS, closest_to_k, stability_vs_rho, write_table  # noqa: E402

smk = snakemake  # noqa: F821
lb = pd.read_csv(smk.input.leaderboard)
rows = lb[(lb["source"] == "ours") & (lb["kind"] == "family") & (lb["track"] == "synthetic")]
table = closest_to_k(rows, smk.params.k, smk.params.families)
write_table(table, ["rho", "family", "config", "L0", "L0_matched", *STABILITY_COLUMNS], smk.output.csv, smk.output.md,
            title="Stability of the closest-to-k run of each family (matched L0)")
stability_vs_rho(table, smk.output.png, smk.params.families, scale=scale_subtitle(rows))
