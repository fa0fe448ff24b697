"""SAEBench compatibility (sae-bench 0.6.0's pydantic classes): the ``core`` eval JSON of an LLM SAE.

Every per-SAE record (``metrics.json``, :mod:`aenbench.records`) holds every field of SAEBench's
``BaseEvalOutput``. An LLM SAE also gets ``core.json`` next to its ``metrics.json``: the same
evaluation in the layout of SAEBench's ``core`` eval (``CoreEvalOutput``), built from the record
alone by :func:`core_record`; ``tests/test_saebench_schema.py`` validates both with sae-bench's
own classes. Nothing here imports sae-bench.

Where each ``core`` field comes from (record groups: ``eval_result_metrics``; ``saebench_core``:
``eval_result_unstructured.saebench_core``, computed by :func:`aenbench.llm.evaluate.core_metrics`):

* ``model_behavior_preservation``: ``kl_div_with_sae`` ← ``downstream.kl_with_sae``,
  ``kl_div_with_ablation`` ← ``downstream.kl_zero_ablation``, ``kl_div_score`` = SAEBench's
  (ablation − SAE) / ablation of those two.
* ``model_performance_preservation``: ``ce_loss_score`` ← ``downstream.ce_recovered_zero`` (the
  same formula), ``ce_loss_with_ablation`` ← ``ce_loss_zero_ablation``, ``ce_loss_with_sae`` ←
  ``ce_loss_with_sae``, ``ce_loss_without_sae`` ← ``ce_loss_clean``.
* ``reconstruction_quality``, ``shrinkage``, ``sparsity``, ``misc_metrics``: ``saebench_core``
  (sae-lens 6.54's definitions, see below).
* ``token_stats``: ``total_tokens_eval_reconstruction`` = CE contexts × context size (SAEBench
  counts every token of the contexts run through the model), ``total_tokens_eval_sparsity_variance``
  = the eval activations the SAE read (``saebench_core.n_tokens``).
* ``eval_result_details`` (per-latent metrics, optional in SAEBench): not computed, ``[]``.

Conventions that differ from a SAEBench run (also written into ``eval_result_unstructured``):

* CE / KL: our splice (method.md §4–5) replaces and zero-ablates the residual stream only at kept
  positions (not position 0, not separators) and scores the next-token predictions made there;
  SAEBench zero-ablates every position and, with ``exclude_special_tokens_from_reconstruction``,
  keeps special tokens clean in the SAE pass.
* The reconstruction metrics are over the harvested eval activations (kept positions only), at
  the scale ``saebench_core.activation_space`` names: the model's raw activations (as SAEBench),
  or the SAE's training-space input (per-token norm √d) when the eval job did not pass the raw
  norms; EV, MSE, ℓ2 norms and relative bias depend on that scale, the rest do not.
* The definitions are sae-lens 6.54's ``get_sparsity_and_variance_metrics``, of which SAEBench
  0.6.0's core eval is an older copy that differs in three places: its ``explained_variance``
  subtracts (mean of x²)² instead of ‖E x‖² from E‖x‖², its ``mse`` is further divided by the
  batch's token count, and its ``l1`` sums the signed latents and its densities count ``> 0``
  (sae-lens: absolute values, ``≠ 0``; the same for ReLU-type SAEs).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from aenbench.io import write_json
from aenbench.records import SAEBENCH_CORE_GROUP

CORE_FILE = "core.json"
EVAL_TYPE_ID_CORE = "core"  # SAEBench's id of its core eval
LLM_DTYPE = "float32"  # aenbench.llm.models loads every model in float32

RECONSTRUCTION_QUALITY = ("explained_variance", "explained_variance_legacy", "mse", "cossim")
SHRINKAGE = ("l2_norm_in", "l2_norm_out", "l2_ratio", "relative_reconstruction_bias")
SPARSITY = ("l0", "l1")
MISC = ("freq_over_1_percent", "freq_over_10_percent", "normalized_freq_over_1_percent",
        "normalized_freq_over_10_percent", "average_max_encoder_cosine_sim", "average_max_decoder_cosine_sim",
        "frac_alive")


def core_record(record: dict[str, Any], batch_contexts: int) -> dict[str, Any]:
    """SAEBench's ``core`` eval output (``CoreEvalOutput``) of one LLM SAE's record;
    ``batch_contexts``: the contexts per model pass of the CE / KL evaluation."""
    unstructured = record.get("eval_result_unstructured") or {}
    if SAEBENCH_CORE_GROUP not in unstructured or "downstream" not in record["eval_result_metrics"]:
        raise ValueError(f"{record.get('eval_id')}: not an LLM record with the {SAEBENCH_CORE_GROUP!r} and "
                         "'downstream' metrics (re-evaluate it with this version of aenbench)")
    core = unstructured[SAEBENCH_CORE_GROUP]
    down = record["eval_result_metrics"]["downstream"]
    cfg = record["eval_config"]
    run = record["run"]

    def pick(names: tuple[str, ...]) -> dict[str, float]:
        return {n: float(core[n]) for n in names}

    eval_config = {
        "model_name": record["sae_cfg_dict"].get("metadata", {}).get("model_name", ""),
        "llm_dtype": LLM_DTYPE,
        "batch_size_prompts": int(batch_contexts),
        "n_eval_reconstruction_batches": math.ceil(cfg["ce_contexts"] / batch_contexts),
        # one exact pass over every eval activation: the same as a single batch of all of them
        "n_eval_sparsity_variance_batches": 1,
        "dataset": run.get("acts_manifest", {}).get("corpus", ""),
        "context_size": int(cfg["context_size"]),
        "compute_kl": True,
        "compute_ce_loss": True,
        "compute_l2_norms": True,
        "compute_sparsity_metrics": True,
        "compute_variance_metrics": True,
        "compute_featurewise_density_statistics": False,
        "compute_featurewise_weight_based_metrics": False,
        "exclude_special_tokens_from_reconstruction": True,  # position 0 and separators stay clean
        "verbose": False,
    }
    metrics = {
        "model_behavior_preservation": {
            "kl_div_score": (down["kl_zero_ablation"] - down["kl_with_sae"]) / down["kl_zero_ablation"],
            "kl_div_with_ablation": down["kl_zero_ablation"],
            "kl_div_with_sae": down["kl_with_sae"],
        },
        "model_performance_preservation": {
            "ce_loss_score": down["ce_recovered_zero"],
            "ce_loss_with_ablation": down["ce_loss_zero_ablation"],
            "ce_loss_with_sae": down["ce_loss_with_sae"],
            "ce_loss_without_sae": down["ce_loss_clean"],
        },
        "reconstruction_quality": pick(RECONSTRUCTION_QUALITY),
        "shrinkage": pick(SHRINKAGE),
        "sparsity": pick(SPARSITY),
        "token_stats": {
            "total_tokens_eval_reconstruction": int(cfg["ce_contexts"]) * int(cfg["context_size"]),
            "total_tokens_eval_sparsity_variance": int(core["n_tokens"]),
        },
        "misc_metrics": pick(MISC),
    }
    return {
        "eval_type_id": EVAL_TYPE_ID_CORE,
        "eval_config": eval_config,
        "eval_id": record["eval_id"],
        "datetime_epoch_millis": record["datetime_epoch_millis"],
        "eval_result_metrics": metrics,
        "eval_result_details": [],
        "eval_result_unstructured": {
            "produced_by": "aenbench, not SAEBench: the same evaluation as metrics.json, in SAEBench's core layout",
            "aenbench_eval_type_id": record["eval_type_id"],
            "activation_space": core["activation_space"],
            "ce_kl_positions": cfg.get("splice_positions", ""),
            "ablation": "zero-ablation at the spliced positions only (SAEBench: every position)",
            "n_scored_tokens": down["n_scored_tokens"],
            "definitions": "sae-lens 6.54 evals.get_sparsity_and_variance_metrics (see aenbench.saebench)",
        },
        "sae_bench_commit_hash": record["sae_bench_commit_hash"],
        "sae_lens_id": record["sae_lens_id"],
        "sae_lens_release_id": record["sae_lens_release_id"],
        "sae_lens_version": record["sae_lens_version"],
        "sae_cfg_dict": record["sae_cfg_dict"],
    }


def write_core(runs_dir: str | Path, record: dict[str, Any], batch_contexts: int) -> Path:
    """Write ``runs_dir/<run_id>/core.json`` (atomically) beside the run's ``metrics.json``."""
    path = Path(runs_dir) / record["sae_lens_id"] / CORE_FILE
    write_json(path, core_record(record, batch_contexts))
    return path
