import json

from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

from aenbench.plots import teacher_table  # noqa: E402

records = []
for path in snakemake.input.diagnostics:  # noqa: F821
    with open(path) as f:
        record = json.load(f)
    records.append({"dataset": record["spec"]["dataset"], **record})
print(teacher_table(records, snakemake.output.csv).to_string())  # noqa: F821
