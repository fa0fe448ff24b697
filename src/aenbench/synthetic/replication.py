"""The replication runs (issue 8): our paper-scale SAEs at the reference configurations of
``reference_synthetic_v1.csv``, exported as a small CSV that is committed under
``results/reference/replication_ours.csv`` so the replication table rebuilds without retraining.

Every exported row keeps what defines and dates it: ρ, the reference model and config string it
replicates, our family / params / seed, the metrics, the training budget, the device, the git
commit and the sae-lens / torch versions of the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from aenbench.io import write_with
from aenbench.metric_registry import column_list

EXPORT_COLUMNS = [
    "dataset", "model", "reference_config", "family", "architecture", "params", "seed",
    *column_list("replication_export"),
    "steps", "batch_size", "samples_seen", "grad_clip", "train_seconds", "device", "git_commit", "sae_lens_version", "torch_version",
]


def export(leaderboard: pd.DataFrame, families: Mapping[str, Mapping[str, Any]], out_csv: str | Path) -> pd.DataFrame:
    """Our synthetic rows of the families named in ``families`` (family -> {model, config}),
    with the reference model and config they replicate. Refuses a mapping that names a family
    with no rows, so a missing run cannot drop out of the table unnoticed."""
    ours = leaderboard[(leaderboard["source"] == "ours") & (leaderboard["track"] == "synthetic")]
    missing = [f for f in families if f not in set(ours["family"])]
    if missing:
        raise ValueError(f"replication.families names {missing}, which have no rows in the leaderboard; "
                         "train them first (synthetic.pairs) or remove them from replication.families")
    df = ours[ours["family"].isin(list(families))].copy()
    df["model"] = df["family"].map(lambda f: families[f]["model"])
    df["reference_config"] = df["family"].map(lambda f: families[f]["config"])
    df = df[[c for c in EXPORT_COLUMNS if c in df.columns]].sort_values(["dataset", "model", "seed"])
    write_with(out_csv, lambda tmp: df.to_csv(tmp, index=False))
    return df


def clip_statement(ours: pd.DataFrame) -> str:
    """How the exported rows were clipped, for the captions of the tables built from them: the
    ``grad_clip`` values, or sae-lens's fixed 1.0 when a row predates ``train.max_grad_norm``
    (no ``grad_clip`` column, or an empty value)."""
    if "grad_clip" in ours.columns and ours["grad_clip"].notna().all():
        return f"gradient clip: {', '.join(sorted(set(ours['grad_clip'].astype(str))))}"
    return ("gradient clip: sae-lens's fixed 1.0 (these rows predate train.max_grad_norm; the authors do not clip "
            "synthetic runs and configs/replication_synthetic.yaml now says null: rerun it to replace them)")
