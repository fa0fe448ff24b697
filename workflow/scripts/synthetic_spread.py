"""The seed / teacher spread of every family's selected configuration on one spiked dataset
(rule synthetic_spread, aenbench.synthetic.spread): one folder per family, every family's
replicates trained in lockstep."""
from pathlib import Path

from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.synthetic.spread import SpreadFamily, spread_families  # noqa: E402

smk = snakemake  # noqa: F821
families = []
for family_name, runs_dir in zip(smk.params.families, smk.input.runs):
    assert Path(runs_dir).name == family_name, (runs_dir, family_name)
    families.append(SpreadFamily(family_name, runs_dir, smk.params.families[family_name], smk.params.runs[family_name],
                                 smk.params.arch_defaults[family_name]))
selections = spread_families(
    families=families,
    dictionary_path=smk.input.dictionary,
    teacher_paths=dict(zip(smk.params.dictionary_seeds, smk.input.teachers)),
    out_dir=Path(smk.output.spread),
    dataset=smk.wildcards.dataset,
    spec=smk.params.spec,
    train=smk.params.train,
    evaluation=smk.params.evaluation,
    seeds=smk.params.seeds,
    device=smk.params.device,
)
for family_name, selection in selections.items():
    print(f"{smk.wildcards.dataset}/{family_name}: selected {selection['run_id']} (L0 {selection['L0']:.3g}, "
          f"k = {selection['k']}); replicates: {selection['replicates']}")
