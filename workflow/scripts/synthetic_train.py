from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

from aenbench.synthetic.track import train_family  # noqa: E402

smk = snakemake  # noqa: F821
train_family(
    dictionary_path=smk.input.dictionary,
    out_dir=smk.output.runs,
    dataset=smk.wildcards.dataset,
    family_name=smk.params.family_name,
    family=smk.params.family,
    runs=smk.params.runs,
    spec=smk.params.spec,
    train=smk.params.train,
    arch_defaults=smk.params.arch_defaults,
    device=smk.params.device,
)
