from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.io import write_json  # noqa: E402
from aenbench.llm.resources import build_corpus_source  # noqa: E402

smk = snakemake  # noqa: F821
entry = build_corpus_source(smk.wildcards.source, smk.output.jsonl, smk.params.downloads)
write_json(smk.output.entry, entry)
print(entry)
