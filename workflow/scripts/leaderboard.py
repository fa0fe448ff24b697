from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

from aenbench import leaderboard  # noqa: E402

df = leaderboard.build(snakemake.input.runs)  # noqa: F821
leaderboard.write(df, snakemake.output.csv)  # noqa: F821
print(f"leaderboard: {len(df)} rows -> {snakemake.output.csv}")  # noqa: F821
