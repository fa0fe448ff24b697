"""The per-SAE result record, in SAEBench's layout, shared by every track.

``eval_type_id``, ``eval_config``, ``eval_id``, flat ``eval_result_metrics`` groups,
``eval_result_details``, ``sae_cfg_dict`` — plus a ``run`` block (track, dataset, family, seed,
hyperparameters, budget, wall time, the engine that trained it, versions, git commit) that the
leaderboard reads.
"""

from __future__ import annotations

from typing import Any

from aenbench.provenance import git_commit, versions
from aenbench.sweeps import params_label


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
    return {
        "eval_type_id": eval_type_id,
        "eval_config": eval_config,
        "eval_id": eval_id,
        "eval_result_metrics": groups,
        "eval_result_details": [],
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
