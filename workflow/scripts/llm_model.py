from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.io import write_json  # noqa: E402
from aenbench.llm.models import gguf_to_hf_folder  # noqa: E402
from aenbench.llm.resources import fetch_smollm2  # noqa: E402

smk = snakemake  # noqa: F821
info = fetch_smollm2(smk.output.gguf, smk.params.downloads)
info.update(gguf_to_hf_folder(smk.output.gguf, smk.output.hf))
write_json(smk.output.info, info)
print(info)
