from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from aenbench.plots import synthetic_dead_ev_vs_l0  # noqa: E402

lb = pd.read_csv(snakemake.input.leaderboard)  # noqa: F821
# our families only: paper rows are at the paper's scale, variants have their own Pareto plots
lb = lb[(lb["source"] == "ours") & (lb["kind"] == "family")]
synthetic_dead_ev_vs_l0(lb, snakemake.output.png)  # noqa: F821
