from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.synthetic.track import make_teacher  # noqa: E402

make_teacher(snakemake.params.spec, snakemake.output.dictionary, snakemake.output.diagnostics)  # noqa: F821
