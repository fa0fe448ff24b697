"""Train one variant on one spiked dataset: import the user's plugin, then the families' train stage."""
from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.compare import load_plugin  # noqa: E402
from aenbench.synthetic.track import spiked_data, train_runs  # noqa: E402

smk = snakemake  # noqa: F821
variant = smk.params.variant
if smk.input.plugin:
    # fails with the file name and the plugin's own traceback when it cannot be imported or
    # does not register `architecture` with sae-lens
    load_plugin(smk.input.plugin[0], variant["architecture"])
train_runs(
    data=spiked_data(smk.input.dictionary, smk.params.spec, {}),
    out_dir=smk.output.trained,
    dataset=smk.wildcards.dataset,
    family_name=smk.wildcards.variant,
    family=variant,
    runs=smk.params.runs,
    train=smk.params.train,
    arch_defaults=smk.params.arch_defaults,
    device=smk.params.device,
    code_files=tuple(smk.input.plugin),
)
