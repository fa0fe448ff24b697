from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from aenbench.synthetic.figures import CLOSEST_COLUMNS, STABILITY_COLUMNS, closest_to_k, write_table  # noqa: E402

smk = snakemake  # noqa: F821
lb = pd.read_csv(smk.input.leaderboard)
rows = lb[(lb["source"] == "ours") & (lb["kind"] == "family") & (lb["track"] == "synthetic")
          & (lb["dataset"] == smk.wildcards.dataset)]
table = closest_to_k(rows, smk.params.k, smk.params.families)
write_table(table, ["family", "config", *CLOSEST_COLUMNS, *STABILITY_COLUMNS, "pct_w_at_max", "L0_matched"],
            smk.output.csv, smk.output.md,
            title=f"{smk.wildcards.dataset}: per family the run with L0 closest to k = {smk.params.k} "
                  "(L0_matched: within 25 % of k)")
print(table.to_string())
