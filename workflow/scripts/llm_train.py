from pathlib import Path

from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

from aenbench.llm.models import offline_env  # noqa: E402
from aenbench.llm.track import train_family  # noqa: E402

smk = snakemake  # noqa: F821
if smk.params.llm["model"] == "smollm2-135m":
    offline_env()
train_family(
    acts_dir=Path(smk.input.manifest).parent,
    out_dir=smk.output.runs,
    family_name=smk.params.family_name,
    family=smk.params.family,
    runs=smk.params.runs,
    llm=smk.params.llm,
    resources_dir=smk.params.resources_dir,
    device=smk.params.device,
)
