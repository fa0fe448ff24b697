"""CE-loss score of one SAE by our splice (in sae-lens's convention) and by sae_lens.evals.run_evals."""
from pathlib import Path

from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.io import write_json  # noqa: E402
from aenbench.llm.track import crosscheck_with_sae_lens  # noqa: E402
from aenbench.training import resolve_device  # noqa: E402

smk = snakemake  # noqa: F821
sae_dir = sorted(Path(smk.input.runs).glob("*/sae"))[0]
out = crosscheck_with_sae_lens(sae_dir, Path(smk.input.manifest).parent, smk.params.resources_dir,
                               smk.params.n_contexts, resolve_device(smk.params.device))
out["sae"] = str(sae_dir)
out["abs_diff_ce_loss_score"] = abs(out["ours_ce_loss_score"] - out["sae_lens_ce_loss_score"])
out["tolerance"] = 1e-3
print(out)
if out["abs_diff_ce_loss_score"] > out["tolerance"]:
    raise RuntimeError(f"CE-loss score disagrees with sae_lens.evals.run_evals beyond 1e-3: {out}")
write_json(smk.output.json, out)
