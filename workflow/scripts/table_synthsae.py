from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from aenbench.synthetic.figures import dead_ev_vs_l0, write_table  # noqa: E402
from aenbench.synthetic.synthsae_track import TABLE_COLUMNS, TRACK, closest_to_true_l0, load_summary  # noqa: E402

smk = snakemake  # noqa: F821
lb = pd.read_csv(smk.input.leaderboard)
rows = lb[(lb["source"] == "ours") & (lb["track"] == TRACK)]
true_l0 = load_summary(smk.input.summary)["summary"]["true_l0"]
table = closest_to_true_l0(rows, true_l0, smk.params.families)
write_table(table, [*TABLE_COLUMNS, "L0_matched"], smk.output.csv, smk.output.md,
            title=f"SynthSAEBench-style teacher (sae_lens.synthetic): per family the run with L0 closest to the "
                  f"teacher's true L0 = {true_l0:.2f}; synthetic/* columns from sae-lens's own synthetic evals")
dead_ev_vs_l0(rows, max(1, round(true_l0)), smk.output.png, smk.params.families)
print(table.to_string())
