from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.synthetic.synthsae_track import make_teacher  # noqa: E402

smk = snakemake  # noqa: F821
out = make_teacher(smk.params.spec, smk.output.model, smk.output.summary)
print(out["summary"])
