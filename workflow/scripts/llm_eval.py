from pathlib import Path

from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.llm.models import offline_env  # noqa: E402
from aenbench.llm.track import evaluate_family  # noqa: E402
from aenbench.saebench import write_core  # noqa: E402

smk = snakemake  # noqa: F821
if smk.input.model:  # the offline default model: load it without the hub
    offline_env()
# the rule's params are named as evaluate_family's arguments (evaluation, resources_dir, device)
records = evaluate_family(acts_dir=Path(smk.input.manifest).parent, trained_dir=smk.input.trained,
                          out_dir=smk.output.runs, **dict(smk.params.items()))
# beside each metrics.json, the same evaluation in SAEBench's core layout (aenbench.saebench)
for record in records:
    write_core(smk.output.runs, record, batch_contexts=smk.params.evaluation["batch_contexts"])
