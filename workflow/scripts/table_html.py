"""A table CSV as the HTML page the report shows (workflow/rules/report.smk)."""
from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

from aenbench.report_tables import write_table_html  # noqa: E402

smk = snakemake  # noqa: F821
columns = None
if smk.params.columns:  # a wide table: its keys, one metric_registry column list, their spread, the budget
    from aenbench.leaderboard import KEY_COLUMNS
    from aenbench.metric_registry import column_list

    metrics = column_list(smk.params.columns)
    columns = ["source", "kind", *KEY_COLUMNS, "replicate", *metrics,
               *(f"{m}_{end}" for m in metrics for end in ("min", "max")), "n_seeds", "samples_seen", "train_seconds"]
rows = write_table_html(smk.input.csv, smk.output.html, smk.params.title, columns=columns)  # title: wildcards filled in
print(f"{smk.input.csv}: {len(rows)} rows x {rows.shape[1]} columns -> {smk.output.html}")
