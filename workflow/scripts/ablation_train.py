from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

from aenbench.synthetic.ablations import train_ablation  # noqa: E402

smk = snakemake  # noqa: F821
train_ablation(
    dictionary_path=smk.input.dictionary,
    out_dir=smk.output.runs,
    dataset=smk.wildcards.dataset,
    name=smk.wildcards.ablation,
    ablation=smk.params.ablation,
    families={smk.params.ablation["base"]: smk.params.base},
    seeds=smk.params.seeds,
    spec=smk.params.spec,
    train=smk.params.train,
    arch_defaults=smk.params.arch_defaults,
    device=smk.params.device,
)
