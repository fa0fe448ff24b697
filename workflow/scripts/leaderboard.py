import json
from pathlib import Path

from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

from aenbench import leaderboard  # noqa: E402

smk = snakemake  # noqa: F821
# the same build as check_records, reading only the records it checked (by sha256)
checked = json.loads(Path(smk.input.checked).read_text())
df, _ = leaderboard.check_inputs(leaderboard.inputs_of(smk.input), checked=checked, checked_path=smk.input.checked)
leaderboard.write(df, smk.output.csv)
leaderboard.write_metrics_yaml(smk.output.metrics)
print(f"leaderboard: {len(df)} rows -> {smk.output.csv}")
for (source, kind), n in df.groupby(["source", "kind"]).size().items():
    print(f"  {source}/{kind}: {n}")
