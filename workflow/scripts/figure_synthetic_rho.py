from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from aenbench.synthetic.figures import dead_ev_vs_l0  # noqa: E402

smk = snakemake  # noqa: F821
lb = pd.read_csv(smk.input.leaderboard)
rows = lb[(lb["source"] == "ours") & (lb["kind"] == "family") & (lb["track"] == "synthetic")
          & (lb["dataset"] == smk.wildcards.dataset)]
dead_ev_vs_l0(rows, smk.params.k, smk.output.png, smk.params.families)
