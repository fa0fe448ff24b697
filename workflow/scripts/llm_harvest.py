from pathlib import Path

from aenbench.jobs import setup_job, summarise

setup_job(snakemake, torch=True)  # noqa: F821

from aenbench.llm.harvest import MANIFEST_FORMAT, HarvestSpec, harvest  # noqa: E402
from aenbench.llm.models import load_model, offline_env  # noqa: E402
from aenbench.training import resolve_device  # noqa: E402

smk = snakemake  # noqa: F821
llm = smk.params.llm
if smk.params.harvest_format != MANIFEST_FORMAT:
    raise RuntimeError(f"workflow/rules/llm.smk: params.harvest_format = {smk.params.harvest_format}, but the harvest "
                       f"writes format {MANIFEST_FORMAT}: set it to {MANIFEST_FORMAT} so a format change reruns the harvest")
h = llm["harvest"]
if llm["model"] == "smollm2-135m" and llm.get("corpus", "packaged") == "packaged":
    offline_env()
device = resolve_device(smk.params.device)
loaded = load_model(llm["model"], smk.params.resources_dir, device=device)
spec = HarvestSpec(
    model=llm["model"], hook=llm["hook"], context_size=h["context_size"], n_train_contexts=h["train_contexts"],
    n_eval_contexts=h["eval_contexts"], shard_contexts=h["shard_contexts"], batch_contexts=h["batch_contexts"],
    dtype=h["dtype"], seed=h["seed"], corpus=llm.get("corpus", "packaged"), train_storage=h["train_storage"],
    stats_split=h["stats_split"],
)
manifest = harvest(loaded, spec, Path(smk.output.manifest).parent, smk.params.resources_dir)
print({k: manifest[k] for k in ("count", "excluded_norms", "tokens_per_second")})
norms = manifest["excluded_norms"]


def times(key):  # a ratio to the kept tokens' mean norm; absent when no such token was seen
    return f"{norms[key]:.2f}×" if norms.get(key) is not None else "none seen"


summarise("harvest %s %s (train split: %s): %d train + %d eval tokens kept, mean norm %.1f; excluded: position 0 (%s), separators (%s); "
          "%.0f tokens/s", llm["model"], llm["hook"], "on disk" if h["train_storage"] == "disk" else "streamed while "
          "training, not stored", manifest["count"]["train"], manifest["count"]["eval"],
          norms["kept"], times("position0_over_kept"), times("separator_over_kept"), manifest["tokens_per_second"])
