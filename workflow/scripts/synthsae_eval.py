from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.synthetic.synthsae_track import synthsae_data  # noqa: E402
from aenbench.synthetic.track import evaluate_runs  # noqa: E402

smk = snakemake  # noqa: F821
evaluate_runs(
    data=synthsae_data(smk.input.model, smk.params.spec, smk.params.width, smk.params.evaluation),
    trained_dir=smk.input.trained,
    out_dir=smk.output.runs,
    dataset=smk.params.dataset,
    device=smk.params.device,
)
