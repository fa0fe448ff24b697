"""Train one variant on one spiked dataset: import the user's plugin, then the families' trainer."""
from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

from aenbench.compare import load_plugin  # noqa: E402
from aenbench.synthetic.track import train_family  # noqa: E402

smk = snakemake  # noqa: F821
variant = smk.params.variant
if smk.input.plugin:
    # fails with the file name and the plugin's own traceback when it cannot be imported or
    # does not register `architecture` with sae-lens
    load_plugin(smk.input.plugin[0], variant["architecture"])
train_family(
    dictionary_path=smk.input.dictionary,
    out_dir=smk.output.runs,
    dataset=smk.wildcards.dataset,
    family_name=smk.params.variant_name,
    family=variant,
    runs=smk.params.runs,
    spec=smk.params.spec,
    train=smk.params.train,
    arch_defaults=smk.params.arch_defaults,
    device=smk.params.device,
)
