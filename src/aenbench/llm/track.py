"""The LLM track's job functions: resources → harvest → one family of SAEs → metric JSONs."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from safetensors.torch import load_file
from sae_lens import SAE
from tqdm.auto import tqdm

from aenbench.io import atomic_dir, write_json
from aenbench.llm.evaluate import activation_metrics, downstream_metrics
from aenbench.llm.harvest import activation_stream, load_manifest, load_split, normalise
from aenbench.records import add_training_metrics, make_record, run_block
from aenbench.sweeps import run_hyperparameters
from aenbench.training import build_training_sae, checkpoint_root, fingerprint, resolve_device, train_sae

log = logging.getLogger(__name__)

EVAL_TYPE_ID = "aenbench_llm"


def dataset_name(model: str, hook: str) -> str:
    return f"{model}:{hook}"


def train_family(
    *,
    acts_dir: str | Path,
    out_dir: str | Path,
    family_name: str,
    family: dict[str, Any],
    runs: list[tuple[str, dict[str, Any]]],
    llm: dict[str, Any],
    resources_dir: str | Path = "resources",
    device: str = "auto",
    checkpoint_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Train every run of one family on the harvested shards, then evaluate all of them,
    sharing the clean and ablated model passes of the downstream evaluation.

    Checkpoints (every ``train.checkpoint_every`` steps, and each trained SAE) go to
    ``checkpoint_dir`` (default ``checkpoint_root(out_dir)``) as on the synthetic track; a rerun
    after a kill resumes the unfinished SAE and reuses the trained ones."""
    from aenbench.llm.models import load_model

    device = resolve_device(device)
    ckpt_root = Path(checkpoint_dir) if checkpoint_dir is not None else checkpoint_root(out_dir)
    every = int(llm["train"].get("checkpoint_every", 1000))
    train, ev = llm["train"], llm["eval"]
    manifest = load_manifest(acts_dir)
    d = manifest["d"]
    dataset = dataset_name(manifest["model"], manifest["hook"])
    eval_x = normalise(load_split(acts_dir, "eval")["acts"])
    trained = []
    with atomic_dir(out_dir) as tmp_dir:
        for run_id, row in tqdm(runs, desc=f"{dataset}/{family_name}", unit="sae"):
            params = run_hyperparameters(family, row, llm.get("arch_defaults", {}))
            seed = int(row["seed"])
            run_fp = fingerprint({"architecture": family["architecture"], "params": params, "seed": seed,
                                  "width": llm["width"], "train": train, "manifest": manifest, "device": device})
            run_ckpt = ckpt_root / run_id
            done = run_ckpt / "done"
            if (done / "trained.json").exists() and (done / "fingerprint").read_text() == run_fp:
                shutil.copytree(done / "sae", tmp_dir / run_id / "sae")
                t = json.loads((done / "trained.json").read_text())
                res = SimpleNamespace(**t["res"])
                trained.append((run_id, row, params, seed, res, t["groups"], t["cfg_dict"]))
                log.info("%s %s: trained before the job was interrupted; not retrained", family_name, run_id)
                continue
            sae = build_training_sae(family["architecture"], d, llm["width"], params, seed, device)
            stream = activation_stream(acts_dir, train["batch_size"], train["buffer_tokens"])
            res = train_sae(
                sae, stream, steps=train["steps"], batch_size=train["batch_size"], lr=train["lr"],
                dead_window_steps=train["dead_window_steps"],
                auxk_dead_window_steps=train["auxk_dead_window_steps"], device=device,
                checkpoint_dir=run_ckpt, checkpoint_every=every, run_fingerprint=run_fp,
            )
            groups = activation_metrics(sae, eval_x)
            add_training_metrics(groups, res, sae, train["batch_size"])
            # The saved SAE normalises its input to norm √d and undoes it on the output, so any
            # splice (ours, sae-lens's run_evals) sees the training normalisation.
            sae.cfg.normalize_activations = "constant_norm_rescale"
            sae.cfg.metadata.hook_name = manifest["hook"]
            sae.cfg.metadata.model_name = manifest["hub_name"]
            sae.cfg.metadata.context_size = manifest["context_size"]
            sae.cfg.metadata.prepend_bos = False
            sae.save_inference_model(str(tmp_dir / run_id / "sae"))
            trained.append((run_id, row, params, seed, res, groups, sae.cfg.to_dict()))
            with atomic_dir(done) as tmp_done:  # the trained SAE survives a kill of the job
                shutil.copytree(tmp_dir / run_id / "sae", tmp_done / "sae")
                res_fields = {"steps": res.steps, "seconds": res.seconds, "dead_window_steps": res.dead_window_steps}
                write_json(tmp_done / "trained.json", {"res": res_fields, "groups": groups,
                                                       "cfg_dict": sae.cfg.to_dict()})
                (tmp_done / "fingerprint").write_text(run_fp)
            shutil.rmtree(run_ckpt / "latest", ignore_errors=True)
            log.info("%s %s: L0=%.1f dead=%.1f%% EV=%.3f (%.0fs)", family_name, run_id,
                     groups["sparsity"]["L0"], groups["sparsity"]["dead_pct"],
                     groups["reconstruction"]["EV"], res.seconds)

        loaded = load_model(manifest["model"], resources_dir, device=device)
        tokens = load_file(str(Path(acts_dir) / "eval_contexts.safetensors"))["tokens"][: ev["ce_contexts"]].long()
        mean_D = load_file(str(Path(acts_dir) / "stats.safetensors"))["mean"]
        saes = {run_id: SAE.load_from_disk(str(tmp_dir / run_id / "sae"), device=device) for run_id, *_ in trained}
        down = downstream_metrics(loaded.bridge, saes, manifest["hook"], tokens.to(device),
                                  manifest["separator_token_id"], mean_D.to(device), ev["batch_contexts"])
        records = []
        for run_id, row, params, seed, res, groups, cfg_dict in trained:
            groups["downstream"] = down[run_id]
            record = make_record(
                eval_type_id=EVAL_TYPE_ID,
                eval_config={
                    "n_eval_tokens": len(eval_x),
                    "ce_contexts": int(len(tokens)),
                    "context_size": manifest["context_size"],
                    "dead_window_steps": res.dead_window_steps,
                    "dead_window_tokens": res.dead_window_steps * train["batch_size"],
                    "normalisation": "per-token sqrt(d); the splice normalises and inverts",
                    "splice_positions": "all but position 0 and separators",
                },
                eval_id=f"{dataset}/{family_name}/{run_id}",
                groups=groups,
                sae_cfg=cfg_dict,
                run_id=run_id,
                run=run_block(
                    track="llm", dataset=dataset, family_name=family_name, family=family, row=row,
                    params=params, seed=seed, res=res, train=train, device=device,
                    acts_manifest={k: manifest[k] for k in ("model", "hook", "corpus", "count", "seed")},
                ),
            )
            write_json(tmp_dir / run_id / "metrics.json", record)
            records.append(record)
    shutil.rmtree(ckpt_root, ignore_errors=True)
    return records


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
