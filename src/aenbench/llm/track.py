"""The LLM track's job functions: resources → harvest → one family of SAEs → metric JSONs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from sae_lens import SAE

from aenbench.llm.evaluate import activation_metrics, downstream_metrics
from aenbench.llm.harvest import activation_stream, load_manifest, load_split, normalise
from aenbench.llm.resources import sha256_file
from aenbench.records import record_from_training
from aenbench.stages import (
    DEFAULT_STACK_SIZE, EVALUATION_CODE, TRAINING_CODE, code_hash, evaluate_stage, load_training_sae, plan_runs, train_stage,
    training_settings,
)
from aenbench.training import build_training_sae, resolve_device

log = logging.getLogger(__name__)

EVAL_TYPE_ID = "aenbench_llm"


def dataset_name(model: str, hook: str) -> str:
    return f"{model}:{hook}"


def _family_plan(manifest: dict[str, Any], acts_dir: str | Path, family: dict[str, Any],
                 runs: list[tuple[str, dict[str, Any]]], train: dict[str, Any], width: int,
                 arch_defaults: dict[str, dict[str, Any]], device: str) -> tuple[list[Any], dict[str, Any]]:
    """One family's runs with their fingerprints, and what the SAEs record of their data."""
    settings = training_settings(train, family["architecture"])
    identity = {"track": "llm", "width": width, "train": settings, "device": device,
                "acts": manifest_identity(acts_dir), "code": code_hash(TRAINING_CODE)}
    dataset = dataset_name(manifest["model"], manifest["hook"])
    info = {"track": "llm", "dataset": dataset,
            "acts_manifest": {k: manifest[k] for k in ("model", "hook", "corpus", "count", "seed")}}
    return plan_runs(family, runs, arch_defaults, identity), info


def _before_save(manifest: dict[str, Any]) -> Any:
    def before_save(sae: Any) -> None:
        sae.cfg.normalize_activations = "constant_norm_rescale"
        sae.cfg.metadata.hook_name = manifest["hook"]
        sae.cfg.metadata.model_name = manifest["hub_name"]
        sae.cfg.metadata.context_size = manifest["context_size"]
        sae.cfg.metadata.prepend_bos = False

    return before_save


def train_family(
    *,
    acts_dir: str | Path,
    out_dir: str | Path,
    family_name: str,
    family: dict[str, Any],
    runs: list[tuple[str, dict[str, Any]]],
    train: dict[str, Any],
    width: int,
    arch_defaults: dict[str, dict[str, Any]],
    device: str = "auto",
    checkpoint_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """The train stage of one LLM family (:func:`aenbench.stages.train_stage`) on the harvested
    shards of ``acts_dir``: ``out_dir/<run_id>/{sae/, training.json}``, training only the runs
    not in the store (those :func:`train_grid_streamed` trained are laid out only). The saved SAE
    normalises its input to norm √d and undoes it on the output, so any splice (ours, sae-lens's
    ``run_evals``) sees the training normalisation."""
    device = resolve_device(device)
    manifest = load_manifest(acts_dir)
    if manifest.get("train_storage", "disk") != "disk":
        raise RuntimeError(f"{acts_dir}: the train split was not harvested to disk (llm.harvest.train_storage: "
                           f"{manifest.get('train_storage')!r}); its SAEs are trained by train_grid_streamed "
                           "(rule llm_train_streamed)")
    planned, info = _family_plan(manifest, acts_dir, family, runs, train, width, arch_defaults, device)
    return train_stage(
        runs=planned, out_dir=out_dir, label=f"{info['dataset']}/{family_name}", family_name=family_name, family=family,
        build=lambda r: build_training_sae(family["architecture"], manifest["d"], width, r.params, r.seed, device),
        stream=lambda r: activation_stream(acts_dir, train["batch_size"], train["buffer_tokens"], seed=r.seed),
        train=training_settings(train, family["architecture"]), device=device, before_save=_before_save(manifest),
        checkpoint_dir=checkpoint_dir, checkpoint_every=int(train.get("checkpoint_every", 1000)),
        stack_size=int(train.get("stack_size", DEFAULT_STACK_SIZE)), info=info,
    )


def streamed_training_stream(loaded: Any, acts_dir: str | Path, train: dict[str, Any], seed: int,
                             manifest: dict[str, Any] | None = None) -> Any:
    """The model's training batches for a harvest whose train split is streamed: the train
    contexts it recorded (checked against the manifest), run through ``loaded`` block by block.
    ``manifest``: the harvest's manifest when the caller has already loaded (and so verified) it;
    loading it again hashes every file it lists, the train token ids included."""
    from aenbench.llm.harvest import TRAIN_CONTEXTS
    from aenbench.llm.stream import model_stream

    manifest = manifest or load_manifest(acts_dir)
    tokens = load_file(str(Path(acts_dir) / TRAIN_CONTEXTS))["tokens"].long()
    h = manifest["settings"]
    return model_stream(loaded, tokens, hook=manifest["hook"], dtype=manifest["dtype"],
                        shard_contexts=h["shard_contexts"], batch_contexts=h["batch_contexts"],
                        batch_size=train["batch_size"], buffer_tokens=train["buffer_tokens"], seed=seed)


def train_grid_streamed(
    *,
    acts_dir: str | Path,
    out_dirs: dict[str, str | Path],
    families: dict[str, dict[str, Any]],
    runs: dict[str, list[tuple[str, dict[str, Any]]]],
    train: dict[str, Any],
    width: int,
    arch_defaults: dict[str, dict[str, dict[str, Any]]],
    resources_dir: str | Path = "resources",
    device: str = "auto",
    loaded: Any = None,
    checkpoint_dir: str | Path | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every LLM family of the grid from one stream of the model's activations (streaming mode,
    ``llm.harvest.train_storage: stream``): the runs missing from the store, of all families, train
    in lockstep (:func:`aenbench.stages.train_lockstep_stage`; one model forward pass per block
    of contexts feeds them all), then each family is laid out in ``out_dirs[family]``."""
    from aenbench.llm.models import load_model
    from aenbench.stages import LockstepItem, train_lockstep_stage
    from aenbench.training import checkpoint_root

    device = resolve_device(device)
    manifest = load_manifest(acts_dir)
    if manifest.get("train_storage") != "stream":
        raise RuntimeError(f"{acts_dir}: the train split is on disk (llm.harvest.train_storage: disk); train it with "
                           "train_family (rule llm_train)")
    before_save = _before_save(manifest)
    items, infos = [], {}
    for name, family in families.items():
        planned, infos[name] = _family_plan(manifest, acts_dir, family, runs[name], train, width, arch_defaults[name],
                                            device)
        items.append(LockstepItem(planned, Path(out_dirs[name]), name, family,
                                  lambda r, a=family["architecture"]: build_training_sae(a, manifest["d"], width,
                                                                                         r.params, r.seed, device),
                                  before_save))
    dataset = dataset_name(manifest["model"], manifest["hook"])
    info = next(iter(infos.values()))
    state: dict[str, Any] = {"loaded": loaded}

    def stream(seed: int) -> Any:
        if state["loaded"] is None:
            state["loaded"] = load_model(manifest["model"], resources_dir, device=device)
        return streamed_training_stream(state["loaded"], acts_dir, train, seed, manifest)

    train_lockstep_stage(
        items=items, stream=stream, train=training_settings(train, "aen"), device=device, info=info,
        label=f"{dataset} streamed grid",
        checkpoint_dir=checkpoint_dir or checkpoint_root(next(iter(out_dirs.values()))),
        checkpoint_every=int(train.get("checkpoint_every", 1000)),
        stack_size=int(train.get("stack_size", DEFAULT_STACK_SIZE)))
    out = {}
    for item in items:
        out[item.family_name] = train_stage(
            runs=item.runs, out_dir=item.out_dir, label=f"{dataset}/{item.family_name}", family_name=item.family_name,
            family=item.family, build=item.build, stream=lambda r: None,
            train=training_settings(train, item.family["architecture"]), device=device, before_save=before_save,
            info=infos[item.family_name])
    return out


def manifest_identity(acts_dir: str | Path) -> str:
    """The harvested activations by content: the sha256 of their manifest, which lists every
    shard's sha256."""
    return sha256_file(Path(acts_dir) / "manifest.json")


def evaluate_family(
    *,
    acts_dir: str | Path,
    trained_dir: str | Path,
    out_dir: str | Path,
    evaluation: dict[str, Any],
    resources_dir: str | Path = "resources",
    device: str = "auto",
) -> list[dict[str, Any]]:
    """The evaluation stage of one LLM family: activation metrics of each trained SAE on the
    held-out tokens, and CE / KL with the SAE spliced in (the clean and ablated model passes are
    shared by the SAEs evaluated together). The SAE is read back with ``SAE.load_from_disk``."""
    from aenbench.llm.models import load_model

    device = resolve_device(device)
    manifest = load_manifest(acts_dir)
    dataset = dataset_name(manifest["model"], manifest["hook"])

    def evaluate(items: list[tuple[Path, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        raw_eval = load_split(acts_dir, "eval")["acts"]
        eval_x = normalise(raw_eval)
        # SAEBench core's scale-dependent metrics in the model's raw activation space
        input_norms_B = raw_eval.float().norm(dim=-1)
        loaded = load_model(manifest["model"], resources_dir, device=device)
        tokens = load_file(str(Path(acts_dir) / "eval_contexts.safetensors"))["tokens"][: evaluation["ce_contexts"]].long()
        mean_D = load_file(str(Path(acts_dir) / "stats.safetensors"))["mean"]
        # activation metrics in training space (the training SAE, as trained); CE / KL through
        # the saved inference SAE, which normalises and inverts around the splice
        groups = {t["run_id"]: activation_metrics(load_training_sae(t, f, device), eval_x, input_norms_B=input_norms_B)
                  for f, t in items}
        saes = {t["run_id"]: SAE.load_from_disk(str(f / "sae"), device=device) for f, t in items}
        down = downstream_metrics(loaded.bridge, saes, manifest["hook"], tokens.to(device),
                                  manifest["separator_token_id"], mean_D.to(device), evaluation["batch_contexts"])
        eval_config = {
            "n_eval_tokens": len(eval_x),
            "ce_contexts": int(len(tokens)),
            "context_size": manifest["context_size"],
            "normalisation": "per-token sqrt(d); the splice normalises and inverts",
            "splice_positions": "all but position 0 and separators",
        }
        return {
            t["run_id"]: record_from_training(
                t, track="llm", dataset=dataset, eval_type_id=EVAL_TYPE_ID, eval_config=eval_config,
                groups={**groups[t["run_id"]], "downstream": down[t["run_id"]]}, acts_manifest=t["acts_manifest"])
            for _, t in items
        }

    identity = {"eval": {k: evaluation[k] for k in ("ce_contexts", "batch_contexts")},
                "acts": manifest_identity(acts_dir), "device": device, "code": code_hash(EVALUATION_CODE)}
    return evaluate_stage(trained_dir=trained_dir, out_dir=out_dir, label=f"{dataset} eval {Path(out_dir).name}",
                          evaluate=evaluate, identity=identity)


def crosscheck_with_sae_lens(
    sae_dir: str | Path, acts_dir: str | Path, resources_dir: str | Path, n_contexts: int, device: str = "cpu"
) -> dict[str, float]:
    """CE-loss score of one saved SAE by our code (in sae-lens's convention) and by
    ``sae_lens.evals.run_evals`` on the same eval contexts."""
    from aenbench.llm.models import load_model

    manifest = load_manifest(acts_dir)
    loaded = load_model(manifest["model"], resources_dir, device=device)
    sae = SAE.load_from_disk(str(sae_dir), device=device)
    tokens = load_file(str(Path(acts_dir) / "eval_contexts.safetensors"))["tokens"][:n_contexts].long()
    return crosscheck_ce(loaded, sae, tokens, manifest["hook"], manifest["separator_token_id"], device)


def crosscheck_ce(loaded: Any, sae: Any, tokens_BT: torch.Tensor, hook: str, separator_id: int,
                  device: str = "cpu") -> dict[str, float]:
    """Our ``downstream_metrics`` in sae-lens's convention against ``sae_lens.evals.run_evals``."""
    from datasets import Dataset
    from sae_lens.evals import EvalConfig, run_evals
    from sae_lens.training.activation_scaler import ActivationScaler
    from sae_lens.training.activations_store import ActivationsStore
    from sae_lens.util import get_special_token_ids

    n_ctx, ctx_len = tokens_BT.shape
    special = sorted(get_special_token_ids(loaded.tokenizer))
    ours = downstream_metrics(loaded.bridge, {"sae": sae}, hook, tokens_BT, separator_id,
                              torch.zeros(sae.cfg.d_in), batch_contexts=n_ctx,
                              sae_lens_convention=True, special_ids=special)["sae"]
    store = ActivationsStore(
        model=loaded.bridge, dataset=Dataset.from_dict({"input_ids": tokens_BT.tolist()}), streaming=False,
        hook_name=hook, hook_head_index=None, context_size=ctx_len, d_in=sae.cfg.d_in, n_batches_in_buffer=2,
        total_training_tokens=tokens_BT.numel(), store_batch_size_prompts=n_ctx,
        train_batch_size_tokens=tokens_BT.numel(), prepend_bos=False, normalize_activations="none",
        device=torch.device(device), dtype="float32",
    )
    sae.cfg.metadata.hook_name = hook
    cfg = EvalConfig(batch_size_prompts=n_ctx, n_eval_reconstruction_batches=1, compute_ce_loss=True,
                     compute_kl=True, n_eval_sparsity_variance_batches=0, compute_l2_norms=False,
                     compute_sparsity_metrics=False, compute_variance_metrics=False)
    theirs, _ = run_evals(sae, store, loaded.bridge, ActivationScaler(), cfg, exclude_special_tokens=special)
    return {
        "ours_ce_loss_score": ours["ce_recovered_zero"],
        "sae_lens_ce_loss_score": theirs["model_performance_preservation"]["ce_loss_score"],
        "ours_kl_with_sae": ours["kl_with_sae"],
        "sae_lens_kl_div_with_sae": theirs["model_behavior_preservation"]["kl_div_with_sae"],
    }
