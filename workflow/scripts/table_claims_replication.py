from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from aenbench.claims import replication_scorecard, write_scorecard  # noqa: E402
from aenbench.synthetic.replication import clip_statement  # noqa: E402

smk = snakemake  # noqa: F821
ours = pd.read_csv(smk.input.ours)
syn = smk.params.scale
k = syn["k"]
table = replication_scorecard(ours, k)
clip = clip_statement(ours)
write_scorecard(table, smk.output.csv, smk.output.md,
                title=(f"Claims of the paper, checked against our paper-scale replication (n = {syn['n']}, "
                       f"m = {syn['m']}, k = {k}; AEN, ℓ1 and sae-lens TopK at the authors' reference "
                       f"configurations, seeds {sorted(set(ours['seed']))}; {clip})"))
with pd.option_context("display.max_colwidth", None, "display.width", 250):
    print(table[["id", "claim", "verdict", "why"]].to_string(index=False))
