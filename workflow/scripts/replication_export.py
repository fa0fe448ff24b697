from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from aenbench.synthetic.replication import export  # noqa: E402

smk = snakemake  # noqa: F821
df = export(pd.read_csv(smk.input.leaderboard), smk.params.families, smk.output.csv)
print(df.to_string())
