from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

from aenbench import leaderboard  # noqa: E402
from aenbench.synthetic.ablations import summary, write_summary  # noqa: E402

smk = snakemake  # noqa: F821
ablation = smk.params.ablation
rows = leaderboard.build(smk.input.runs, kind="ablation")
table = summary(rows, list(ablation["arms"]))
write_summary(table, smk.wildcards.ablation, ablation.get("description", ""), smk.output.csv, smk.output.md,
              smk.output.png, rows=rows)
print(table.to_string())
