from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

from aenbench.synthetic.synthsae_track import train_family  # noqa: E402

smk = snakemake  # noqa: F821
train_family(
    model_dir=smk.input.model,
    out_dir=smk.output.runs,
    dataset=smk.params.dataset,
    family_name=smk.wildcards.family,
    family=smk.params.family,
    runs=smk.params.runs,
    spec=smk.params.spec,
    width=smk.params.width,
    train=smk.params.train,
    arch_defaults=smk.params.arch_defaults,
    device=smk.params.device,
)
