"""Evaluate one variant on one spiked dataset: import the user's plugin (its SAE class loads the
saved SAE), then the families' evaluation stage."""
from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.compare import load_plugin  # noqa: E402
from aenbench.synthetic.track import evaluate_runs, spiked_data  # noqa: E402

smk = snakemake  # noqa: F821
if smk.input.plugin:
    load_plugin(smk.input.plugin[0], smk.params.architecture)
evaluate_runs(
    data=spiked_data(smk.input.dictionary, smk.params.spec, smk.params.evaluation),
    trained_dir=smk.input.trained,
    out_dir=smk.output.runs,
    dataset=smk.wildcards.dataset,
    device=smk.params.device,
    code_files=tuple(smk.input.plugin),
)
