from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.synthetic.track import spiked_data, train_runs  # noqa: E402

smk = snakemake  # noqa: F821
train_runs(
    data=spiked_data(smk.input.dictionary, smk.params.spec, {}),
    out_dir=smk.output.trained,
    dataset=smk.wildcards.dataset,
    family_name=smk.wildcards.family,
    family=smk.params.family,
    runs=smk.params.runs,
    train=smk.params.train,
    arch_defaults=smk.params.arch_defaults,
    device=smk.params.device,
)
