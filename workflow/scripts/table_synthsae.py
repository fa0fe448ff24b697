import json

from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from aenbench.metric_registry import SYNTHSAE_PREFIX, column_list  # noqa: E402
from aenbench.synthetic.figures import closest_to_k, dead_ev_vs_l0, write_table  # noqa: E402

TRACK = "synthsae"  # aenbench.synthetic.synthsae_track.TRACK (that module imports torch)

smk = snakemake  # noqa: F821
lb = pd.read_csv(smk.input.leaderboard)
rows = lb[(lb["source"] == "ours") & (lb["track"] == TRACK)]
with open(smk.input.summary) as f:
    true_l0 = json.load(f)["summary"]["true_l0"]
metrics = column_list("synthsae")
# per family the run whose L0 is closest to the teacher's true L0 (as T-syn does with k)
table = closest_to_k(rows, true_l0, smk.params.families,
                     extra_columns=[c for c in metrics if c.startswith(SYNTHSAE_PREFIX)])
write_table(table, ["family", "config", *metrics, "L0_matched"], smk.output.csv, smk.output.md,
            title=f"SynthSAEBench-style teacher (sae_lens.synthetic): per family the run with L0 closest to the "
                  f"teacher's true L0 = {true_l0:.2f}; synthetic/* columns from sae-lens's own synthetic evals")
dead_ev_vs_l0(rows, max(1, round(true_l0)), smk.output.png, smk.params.families)
print(table.to_string())
