from pathlib import Path

from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.llm.track import train_family  # noqa: E402

smk = snakemake  # noqa: F821
# the rule's params are named as train_family's arguments (family, runs, train, width, ...)
train_family(acts_dir=Path(smk.input.manifest).parent, out_dir=smk.output.trained,
             family_name=smk.wildcards.family, **dict(smk.params.items()))
