"""The train stage of one family (rule synthetic_train) or variant (rule variant_train, which
imports the user's plugin first) on one spiked dataset."""
from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.compare import load_plugin  # noqa: E402
from aenbench.synthetic.track import spiked_data, train_runs  # noqa: E402

smk = snakemake  # noqa: F821
plugins = list(getattr(smk.input, "plugin", []))
for plugin in plugins:
    # fails with the file name and the plugin's own traceback when it cannot be imported or
    # does not register the architecture with sae-lens
    load_plugin(plugin, smk.params.family["architecture"])
train_runs(
    data=spiked_data(smk.input.dictionary, smk.params.spec, {}),
    out_dir=smk.output.trained,
    dataset=smk.wildcards.dataset,
    family_name=getattr(smk.wildcards, "family", None) or smk.wildcards.variant,
    family=smk.params.family,
    runs=smk.params.runs,
    train=smk.params.train,
    arch_defaults=smk.params.arch_defaults,
    device=smk.params.device,
    code_files=tuple(plugins),
)
