from pathlib import Path

from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.llm.track import train_family  # noqa: E402

smk = snakemake  # noqa: F821
train_family(
    acts_dir=Path(smk.input.manifest).parent,
    out_dir=smk.output.trained,
    family_name=smk.wildcards.family,
    family=smk.params.family,
    runs=smk.params.runs,
    train=smk.params.train,
    width=smk.params.width,
    arch_defaults=smk.params.arch_defaults,
    device=smk.params.device,
)
