"""A table CSV as the HTML page the report shows (workflow/rules/report.smk)."""
from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

from aenbench.report_tables import write_table_html  # noqa: E402

smk = snakemake  # noqa: F821
rows = write_table_html(smk.input.csv, smk.output.html, smk.params.title)  # wildcards filled in by Snakemake
print(f"{smk.input.csv}: {len(rows)} rows x {rows.shape[1]} columns -> {smk.output.html}")
