from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.synthetic.ablations import train_ablation  # noqa: E402

smk = snakemake  # noqa: F821
definition = smk.params.definition
train_ablation(
    dictionary_path=smk.input.dictionary,
    out_dir=smk.output.trained,
    dataset=smk.wildcards.dataset,
    name=smk.wildcards.ablation,
    ablation=definition["ablation"],
    families={definition["ablation"]["base"]: definition["base"]},
    seeds=smk.params.seeds,
    spec=smk.params.spec,
    train=smk.params.train,
    arch_defaults=smk.params.arch_defaults,
    device=smk.params.device,
)
