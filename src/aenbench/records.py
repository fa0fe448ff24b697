"""The per-SAE result record, in SAEBench's layout, shared by every track.

``eval_type_id``, ``eval_config``, ``eval_id``, flat ``eval_result_metrics`` groups,
``eval_result_details``, ``sae_cfg_dict`` — plus a ``run`` block (track, dataset, family, seed,
hyperparameters, budget, wall time, versions, git commit) that the leaderboard reads.
"""

from __future__ import annotations

from typing import Any

from aenbench.provenance import git_commit, versions


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
