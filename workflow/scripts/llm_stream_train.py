"""Rule llm_train_streamed: every LLM family in lockstep from one stream of the model's activations."""
from pathlib import Path

from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.llm.models import offline_env  # noqa: E402
from aenbench.llm.track import train_grid_streamed  # noqa: E402

smk = snakemake  # noqa: F821
families = smk.params.families
if smk.config["llm"]["model"] == "smollm2-135m" and smk.config["llm"].get("corpus", "packaged") == "packaged":
    offline_env()
train_grid_streamed(acts_dir=Path(smk.input.manifest).parent, out_dirs=dict(zip(families, smk.output.trained)),
                    families=families, runs=smk.params.runs, train=smk.params.train, width=smk.params.width,
                    arch_defaults=smk.params.arch_defaults, resources_dir=smk.params.resources_dir,
                    device=smk.params.device)
