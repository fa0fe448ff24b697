from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.synthetic.track import evaluate_runs, spiked_data  # noqa: E402

smk = snakemake  # noqa: F821
evaluate_runs(
    data=spiked_data(smk.input.dictionary, smk.params.spec, smk.params.evaluation),
    trained_dir=smk.input.trained,
    out_dir=smk.output.runs,
    dataset=smk.wildcards.dataset,
    device=smk.params.device,
)
