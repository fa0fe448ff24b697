"""The seed / teacher spread of every family's selected configuration on one spiked dataset
(rule synthetic_spread, aenbench.synthetic.spread): one folder per family."""
from pathlib import Path

from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.synthetic.spread import spread_family  # noqa: E402

smk = snakemake  # noqa: F821
for family_name, runs_dir in zip(smk.params.families, smk.input.runs):
    assert Path(runs_dir).name == family_name, (runs_dir, family_name)
    selection = spread_family(
        runs_dir=runs_dir,
        dictionary_path=smk.input.dictionary,
        teacher_paths=dict(zip(smk.params.dictionary_seeds, smk.input.teachers)),
        out_dir=Path(smk.output.spread) / family_name,
        dataset=smk.wildcards.dataset,
        family_name=family_name,
        family=smk.params.families[family_name],
        runs=smk.params.runs[family_name],
        spec=smk.params.spec,
        train=smk.params.train,
        evaluation=smk.params.evaluation,
        arch_defaults=smk.params.arch_defaults[family_name],
        seeds=smk.params.seeds,
        device=smk.params.device,
    )
    print(f"{smk.wildcards.dataset}/{family_name}: selected {selection['run_id']} (L0 {selection['L0']:.3g}, "
          f"k = {selection['k']}); replicates: {selection['replicates']}")
