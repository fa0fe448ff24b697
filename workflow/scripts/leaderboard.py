from pathlib import Path

from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

from aenbench import leaderboard  # noqa: E402

smk = snakemake  # noqa: F821
references = {Path(p).parent for p in smk.input.reference}
df = leaderboard.combine([
    leaderboard.build(smk.input.runs, benchmarks=smk.input.benchmarks, kind="family"),
    leaderboard.build(smk.input.spread, benchmarks=smk.input.spread_benchmarks, kind="family", replicates=True),
    leaderboard.build(smk.input.variant_runs, benchmarks=smk.input.variant_benchmarks, kind="variant"),
    *(leaderboard.paper_rows(d) for d in sorted(references)),
])
leaderboard.write(df, smk.output.csv)
leaderboard.write_metrics_yaml(smk.output.metrics)
print(f"leaderboard: {len(df)} rows -> {smk.output.csv}")
for (source, kind), n in df.groupby(["source", "kind"]).size().items():
    print(f"  {source}/{kind}: {n}")
