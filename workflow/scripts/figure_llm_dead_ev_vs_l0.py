from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from aenbench.plots import llm_dead_ev_vs_l0  # noqa: E402

llm_dead_ev_vs_l0(pd.read_csv(snakemake.input.leaderboard), snakemake.output.png)  # noqa: F821
