"""The per-SAE result record, in SAEBench's layout, shared by every track.

``eval_type_id``, ``eval_config``, ``eval_id``, ``datetime_epoch_millis``, flat
``eval_result_metrics`` groups, ``eval_result_details``, ``eval_result_unstructured``,
``sae_bench_commit_hash``, ``sae_lens_*``, ``sae_cfg_dict`` (every field of SAEBench's
``BaseEvalOutput``; ``tests/test_saebench_schema.py`` validates it with sae-bench's own class) —
plus a ``run`` block (track, dataset, family, seed, hyperparameters, budget, wall time, the engine
that trained it, versions, git commit) that the leaderboard reads.

``sae_bench_commit_hash``: SAEBench writes the ``git rev-parse HEAD`` of the SAEBench checkout
that ran the eval. No SAEBench code runs here, so the field names the producer instead:
``aenbench@<commit>`` (:func:`sae_bench_commit_hash`), never a bare hash that could be taken for
a SAEBench commit.
"""

from __future__ import annotations

import time
from typing import Any

from aenbench.provenance import git_commit, versions
from aenbench.sweeps import params_label

# Metric groups an evaluation hands over that are not leaderboard metrics: make_record moves them
# from ``eval_result_metrics`` to ``eval_result_unstructured`` (SAEBench's field for outputs that
# fit neither the metric groups nor the details). ``saebench_core``: the values of SAEBench's
# core eval that only the SAEBench-layout ``core.json`` of an LLM SAE uses (aenbench.saebench).
SAEBENCH_CORE_GROUP = "saebench_core"
UNSTRUCTURED_GROUPS = (SAEBENCH_CORE_GROUP,)


def sae_bench_commit_hash() -> str:
    """What the record puts in SAEBench's ``sae_bench_commit_hash``: ``aenbench@<commit>`` (the
    aenbench checkout that evaluated it, ``-dirty`` when modified; see the module docstring)."""
    return f"aenbench@{git_commit()}"


def make_record(
    *,
    eval_type_id: str,
    eval_config: dict[str, Any],
    eval_id: str,
    groups: dict[str, dict[str, Any]],
    sae_cfg: dict[str, Any],
    run_id: str,
    run: dict[str, Any],
) -> dict[str, Any]:
    v = versions()
    unstructured = {g: groups[g] for g in UNSTRUCTURED_GROUPS if g in groups}
    return {
        "eval_type_id": eval_type_id,
        "eval_config": eval_config,
        "eval_id": eval_id,
        "datetime_epoch_millis": int(time.time() * 1000),  # when this evaluation ran
        "eval_result_metrics": {g: m for g, m in groups.items() if g not in UNSTRUCTURED_GROUPS},
        "eval_result_details": [],
        "eval_result_unstructured": unstructured or None,
        "sae_bench_commit_hash": sae_bench_commit_hash(),
        "sae_lens_id": run_id,
        "sae_lens_release_id": "aenbench-local",
        "sae_lens_version": v["sae_lens"],
        "sae_cfg_dict": sae_cfg,
        "run": {**run, "git_commit": git_commit(), "versions": v},
    }


def training_metrics(res: Any, sae: Any, batch_size: int) -> dict[str, dict[str, Any]]:
    """Metrics that come from training rather than evaluation: dead % over the final window
    (from sae-lens's trainer counters) and, for adaptive architectures, the weight summary."""
    groups: dict[str, dict[str, Any]] = {"sparsity": {
        "dead_pct": 100.0 * res.dead_mask_M.float().mean().item(),
        "dead_window_tokens": res.dead_window_steps * batch_size,
    }}
    if hasattr(sae, "weight_summary"):
        groups["adaptive"] = sae.weight_summary()
    return groups


def merge_groups(evaluated: dict[str, dict[str, Any]], trained: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The evaluation's metric groups with the training's laid over them, group by group."""
    out = {g: dict(v) for g, v in evaluated.items()}
    for group, values in trained.items():
        out.setdefault(group, {}).update(values)
    return out


def record_from_training(
    trained: dict[str, Any], *, track: str, dataset: str, eval_type_id: str, eval_config: dict[str, Any],
    groups: dict[str, dict[str, Any]], **extra: Any,
) -> dict[str, Any]:
    """The SAEBench-style record of one trained run (its ``training.json``, see
    :mod:`aenbench.stages`) with the evaluation's metric ``groups``."""
    from types import SimpleNamespace

    res = SimpleNamespace(**trained["res"])
    train = trained["train"]
    record = make_record(
        eval_type_id=eval_type_id,
        eval_config={**eval_config, "dead_window_steps": res.dead_window_steps,
                     "dead_window_tokens": res.dead_window_steps * train["batch_size"]},
        eval_id=f"{dataset}/{trained['family']}/{trained['run_id']}",
        groups=merge_groups(groups, trained["training_groups"]),
        sae_cfg=trained["sae_cfg_dict"],
        run_id=trained["run_id"],
        run=run_block(track=track, dataset=dataset, family_name=trained["family"],
                      family=trained["family_definition"], row=trained["row"], params=trained["hyperparameters"],
                      seed=trained["seed"], res=res, train=train, device=trained["device"],
                      training_fingerprint=trained["fingerprint"], weights_sha256=trained["weights_sha256"],
                      trained_git_commit=trained["git_commit"],
                      engine=trained.get("engine", {"name": "per_sae"}), **extra),
    )
    if trained.get("adaptive_trace"):
        record["adaptive_trace"] = trained["adaptive_trace"]  # EMA / adaptive-weight state over training
    return record


def run_block(
    *, track: str, dataset: str, family_name: str, family: dict[str, Any], row: dict[str, Any],
    params: dict[str, Any], seed: int, res: Any, train: dict[str, Any], device: str, **extra: Any,
) -> dict[str, Any]:
    """The ``run`` block shared by every track; ``extra`` adds the track's own provenance."""
    return {
        "track": track,
        "dataset": dataset,
        "family": family_name,
        "architecture": family["architecture"],
        "params": params_label(row),
        "hyperparameters": params,
        "seed": seed,
        "steps": res.steps,
        "batch_size": train["batch_size"],
        "lr": train["lr"],
        "samples_seen": res.steps * train["batch_size"],
        "max_grad_norm": train.get("max_grad_norm"),  # None: no gradient clip
        "train_seconds": res.seconds,
        "device": device,
        **extra,
    }
