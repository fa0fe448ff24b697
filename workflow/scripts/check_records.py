"""Check every input of the leaderboard before the leaderboard job starts (Snakemake deletes a
job's outputs when it starts it, so a bad record found there would cost the previous
leaderboard.csv). Writes results/checked_records.json: each record's sha256 and the settings that
made it; the leaderboard job reads only records with those hashes."""
from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

from aenbench import leaderboard  # noqa: E402
from aenbench.io import write_json  # noqa: E402

smk = snakemake  # noqa: F821
df, manifest = leaderboard.check_inputs(leaderboard.inputs_of(smk.input))
write_json(smk.output.checked, manifest)
print(f"check_records: {len(manifest['records'])} records and {len(manifest['files'])} files checked, "
      f"{manifest['rows']} rows -> {smk.output.checked}")
