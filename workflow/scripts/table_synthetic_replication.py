from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from aenbench.io import write_text, write_with  # noqa: E402
from aenbench.synthetic.figures import replication_markdown, replication_table  # noqa: E402
from aenbench.synthetic.replication import clip_statement  # noqa: E402

smk = snakemake  # noqa: F821
ours = pd.read_csv(smk.input.ours)
table = replication_table(ours, pd.read_csv(smk.input.paper))
write_with(smk.output.csv, lambda tmp: table.to_csv(tmp, index=False))
meta = ours[["git_commit", "sae_lens_version", "torch_version", "device"]].drop_duplicates()
provenance = "; ".join(f"commit {r.git_commit[:10]}, sae-lens {r.sae_lens_version}, torch {r.torch_version}, {r.device}"
                       for r in meta.itertuples())
clip = clip_statement(ours)
text = ("Paper-scale replication (n=256, m=1024, k=16, 50k steps × 256) at the reference configurations; "
        f"ours: mean [min, max] over seeds; {clip}. Runs: {provenance}.\n\n" + replication_markdown(table) + "\n")
write_text(smk.output.md, text)
print(text)
