from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.synthetic.ablations import evaluate_ablation  # noqa: E402

smk = snakemake  # noqa: F821
# the rule's params are named as evaluate_ablation's arguments (arms, spec, evaluation, device)
evaluate_ablation(dictionary_path=smk.input.dictionary, trained_dir=smk.input.trained, out_dir=smk.output.runs,
                  dataset=smk.wildcards.dataset, **dict(smk.params.items()))
