from pathlib import Path

from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from aenbench.plots import llm_target_l0_table  # noqa: E402

smk = snakemake  # noqa: F821
paper = pd.read_csv(smk.params.paper) if Path(smk.params.paper).exists() else None
table = llm_target_l0_table(pd.read_csv(smk.input.leaderboard), paper, smk.params.targets, smk.output.csv, smk.output.md)
print(Path(smk.output.md).read_text())
