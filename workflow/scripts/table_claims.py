from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from aenbench.claims import scorecard, write_scorecard  # noqa: E402

smk = snakemake  # noqa: F821
lb = pd.read_csv(smk.input.leaderboard)
table = scorecard(lb, k=smk.params.k, only=smk.params.families or None)
write_scorecard(table, smk.output.csv, smk.output.md,
                title=f"Claims of the paper, checked against our synthetic runs (k = {smk.params.k})")
with pd.option_context("display.max_colwidth", None, "display.width", 250):
    print(table[["id", "claim", "verdict", "why"]].to_string(index=False))
