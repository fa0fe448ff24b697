from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.synthetic.synthsae_track import synthsae_data  # noqa: E402
from aenbench.synthetic.track import train_runs  # noqa: E402

smk = snakemake  # noqa: F821
train_runs(
    data=synthsae_data(smk.input.model, smk.params.spec, smk.params.width, {}),
    out_dir=smk.output.trained,
    dataset=smk.params.dataset,
    family_name=smk.wildcards.family,
    family=smk.params.family,
    runs=smk.params.runs,
    train=smk.params.train,
    arch_defaults=smk.params.arch_defaults,
    device=smk.params.device,
)
