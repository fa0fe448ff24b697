"""The leaderboard: derived from the per-SAE metric JSONs, never appended to.

Every build reads all ``metrics.json`` files it is given and rewrites the CSV atomically, so a
rerun cannot duplicate rows and a removed run's row disappears with its folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from aenbench.io import write_with

KEY_COLUMNS = ["track", "dataset", "family", "architecture", "params", "seed"]
REQUIRED_COLUMNS = [
    *KEY_COLUMNS,
    "L0", "dead_pct", "EV", "MSE", "shrinkage", "MCC", "support_f1",
    "train_seconds", "sae_lens_version", "git_commit",
]


def find_metric_files(roots: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        root = Path(root)
        files.extend(sorted(root.rglob("metrics.json")) if root.is_dir() else [root])
    return files


def row_from_record(record: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    run = record["run"]
    row: dict[str, Any] = {
        "track": run["track"],
        "dataset": run["dataset"],
        "family": run["family"],
        "architecture": run["architecture"],
        "params": run["params"],
        "seed": run["seed"],
    }
    for group in record["eval_result_metrics"].values():
        row.update(group)
    row.update({
        "samples_seen": run["samples_seen"],
        "steps": run["steps"],
        "train_seconds": run["train_seconds"],
        "sae_lens_version": record["sae_lens_version"],
        "git_commit": run["git_commit"],
        "torch_version": run["versions"]["torch"],
        "device": run["device"],
        "source": "ours",
        "metrics_path": str(path) if path else "",
    })
    for name, value in sorted(run["hyperparameters"].items()):
        row[f"hp_{name}"] = value
    return row


def build(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per metrics JSON under ``paths`` (files or folders), sorted by the key columns."""
    rows = []
    for path in find_metric_files(paths):
        with open(path) as f:
            rows.append(row_from_record(json.load(f), path))
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=REQUIRED_COLUMNS)
    duplicated = df.duplicated(subset=KEY_COLUMNS, keep=False)
    if duplicated.any():
        raise ValueError(
            "two metric files describe the same run (same track/dataset/family/params/seed): "
            + ", ".join(df.loc[duplicated, "metrics_path"])
        )
    front = [c for c in REQUIRED_COLUMNS if c in df.columns]
    rest = [c for c in df.columns if c not in front]
    return df[front + rest].sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)


def write(df: pd.DataFrame, path: str | Path) -> None:
    write_with(path, lambda tmp: df.to_csv(tmp, index=False))
