from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from aenbench.io import write_with  # noqa: E402
from aenbench.plots import scale_subtitle  # noqa: E402
from aenbench.synthetic.figures import adaptive_trace_figure, adaptive_traces  # noqa: E402

smk = snakemake  # noqa: F821
lb = pd.read_csv(smk.input.leaderboard)
rows = lb[(lb["source"] == "ours") & (lb["kind"] == "family") & (lb["track"] == "synthetic")]
trace = adaptive_traces(rows, smk.params.k)
write_with(smk.output.csv, lambda tmp: trace.to_csv(tmp, index=False))
adaptive_trace_figure(trace, smk.output.png, scale=scale_subtitle(rows))
if not trace.empty:
    print(trace.groupby(["family", "dataset"]).tail(1).to_string())
