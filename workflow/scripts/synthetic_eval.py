"""The evaluation stage of one family (rule synthetic_eval) or variant (rule variant_eval, which
imports the user's plugin first, so that its SAE class loads the saved SAE) on one spiked dataset."""
from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.compare import load_plugin  # noqa: E402
from aenbench.synthetic.track import evaluate_runs, spiked_data  # noqa: E402

smk = snakemake  # noqa: F821
plugins = list(getattr(smk.input, "plugin", []))
for plugin in plugins:
    load_plugin(plugin, smk.params.architecture)
evaluate_runs(
    data=spiked_data(smk.input.dictionary, smk.params.spec, smk.params.evaluation),
    trained_dir=smk.input.trained,
    out_dir=smk.output.runs,
    dataset=smk.wildcards.dataset,
    device=smk.params.device,
    code_files=tuple(plugins),
)
