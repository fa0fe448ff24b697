"""The leaderboard: derived from the per-SAE metric JSONs, never appended to.

Every build reads all ``metrics.json`` files it is given and rewrites the CSV atomically, so a
rerun cannot duplicate rows and a removed run's row disappears with its folder (or with its
family, when the family is dropped from the config: only the configured run folders are read).

Rows (one per SAE and seed, plus the paper's reference rows):

* ``source = ours``: one row per ``metrics.json``; ``kind`` is ``family`` for the configured
  families and ``variant`` for the entries of the config's ``variants:``. Wall time and peak
  memory come from the Snakemake ``benchmark:`` file of the job that trained the SAE. One job
  trains a whole family on one dataset, so ``job_wall_s`` / ``job_max_rss_mb`` describe that
  job (``job_n_saes`` SAEs), not one SAE; ``train_seconds`` is the SAE's own training loop.
* ``source = paper``: the authors' numbers from ``results/reference/paper/*.csv`` (copies of the
  spec's tables), described by ``results/reference/paper/sources.yaml``.

Column meanings and metric directions: :mod:`aenbench.metric_registry`. Imports nothing heavy
(pandas, yaml), so the CLI can use it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd
import yaml

from aenbench import metric_registry as R
from aenbench.io import write_text, write_with
from aenbench.sweeps import replicate_of

KEY_COLUMNS = ["track", "dataset", "scale", "family", "architecture", "params", "seed"]
SORT_COLUMNS = ["source", *KEY_COLUMNS]
REQUIRED_COLUMNS = [*KEY_COLUMNS, *R.column_list("leaderboard"), "train_seconds", "sae_lens_version", "git_commit"]
PROVENANCE_COLUMNS = [
    "source", "kind", "replicate", "n_seeds", "samples_seen", "steps", "batch_size", "grad_clip",
    "job_wall_s", "job_max_rss_mb", "job_cpu_s", "job_n_saes",
]


# --------------------------------------------------------------------------- our rows


def find_metric_files(roots: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        root = Path(root)
        if root.is_dir():
            # skip dot-named folders: unfinished atomic writes (``.name.XXXX.tmp``) live there
            files.extend(sorted(p for p in root.rglob("metrics.json")
                                if not any(part.startswith(".") for part in p.relative_to(root).parts)))
        else:
            files.append(root)
    return files


def scale_label(track: str, dataset: str, teacher: dict[str, Any] | None, steps: Any, batch_size: Any) -> str:
    """The scale a row was made at, so that rows at different scales never sort together unmarked:
    ``n=16 m=64 k=1; 300×64`` (spiked teacher n, m, k; steps × batch), ``F=128 d=16; 200×64``
    (sae_lens.synthetic teacher: features, hidden dim), ``smollm2-135m; 10,240 tokens`` (LLM: the
    model and the training tokens, steps × batch)."""
    teacher = teacher or {}
    budget = f"{int(steps)}×{int(batch_size)}" if _known(steps) and _known(batch_size) else "budget unknown"
    if track == "llm":
        tokens = f"{int(steps) * int(batch_size):,} tokens" if _known(steps) and _known(batch_size) else budget
        return f"{str(dataset).split(':')[0]}; {tokens}"
    if all(key in teacher for key in ("n", "m", "k")):
        return f"n={int(teacher['n'])} m={int(teacher['m'])} k={int(teacher['k'])}; {budget}"
    if "num_features" in teacher and "hidden_dim" in teacher:
        return f"F={int(teacher['num_features'])} d={int(teacher['hidden_dim'])}; {budget}"
    return budget


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


# the paper's short hyperparameter names (``l1=1e-3``) → ours; the labels below use the same
_PAPER_HP = {"l1": "l1_coefficient", "l2": "l2_coefficient", "gamma": "gamma", "beta": "beta", "p": "p", "k": "k",
             "aux": "aux_loss_coefficient", "l0": "l0_coefficient"}
_SHORT_HP = {v: k for k, v in _PAPER_HP.items()}
# the objective's hyperparameters a row's label names whenever the run has them and they act
LABEL_HP = ("l1_coefficient", "l2_coefficient", "gamma", "beta", "p", "k", "aux_loss_coefficient", "l0_coefficient")
ADAPTIVE_HP = ("gamma", "beta", "p")


def params_label(hyperparameters: dict[str, Any], swept: str = "") -> str:
    """The hyperparameters that tell a run apart, as the leaderboard's ``params``, e.g.
    ``l1=0.04 l2=0.002 gamma=1 beta=0.9 p=0.05`` for an AEN run whose grid swept only λ₁:
    λ₁; λ₂ when non-zero; γ, β, p when the weights are adaptive; k; the AuxK coefficient; the
    JumpReLU L0 coefficient (those of :data:`LABEL_HP` the run has), then every other key the
    run's swept label ``swept`` names (``aenbench.sweeps.params_label``, e.g. ``l1=0.04``), in its
    order. So ℓ1 (``l1=0.04``), EN (``l1=0.04 l2=0.002``), AL and AEN rows of one λ₁ differ."""
    hp = hyperparameters or {}
    swept_keys = [_PAPER_HP.get(t.partition("=")[0], t.partition("=")[0]) for t in str(swept or "").split()]

    def acts(key: str) -> bool:
        if key in swept_keys:
            return True
        if key == "l2_coefficient":
            return bool(hp[key])
        return bool(hp.get("adaptive")) if key in ADAPTIVE_HP else True

    keys = [k for k in LABEL_HP if k in hp and acts(k)]
    keys += [k for k in swept_keys if k in hp and k not in keys]
    return " ".join(f"{_SHORT_HP.get(k, k)}={_label_value(hp[k])}" for k in keys) or str(swept or "")


def _label_value(value: Any) -> str:
    """``1.0`` → ``1``, ``0.0001`` → ``0.0001``: numbers as short as they are exact."""
    return format(value, ".12g") if isinstance(value, float) else str(value)


def row_from_record(record: dict[str, Any], path: Path | None = None, kind: str = "family") -> dict[str, Any]:
    run = record["run"]
    teacher = run.get("teacher") if isinstance(run.get("teacher"), dict) else None
    row: dict[str, Any] = {
        "track": run["track"],
        "dataset": run["dataset"],
        "scale": scale_label(run["track"], run["dataset"], teacher, run.get("steps"), run.get("batch_size")),
        "family": run["family"],
        "architecture": run["architecture"],
        "params": params_label(run.get("hyperparameters", {}), run["params"]),
        "swept": run["params"],
        "seed": run["seed"],
    }
    for group in record["eval_result_metrics"].values():
        row.update(group)
    versions = run.get("versions", {})
    row.update({
        "source": "ours",
        "kind": kind,
        "n_seeds": 1,
        "samples_seen": run.get("samples_seen", run.get("tokens_seen")),
        "steps": run.get("steps"),
        "batch_size": run.get("batch_size"),
        # the gradient-norm clip: "none", its value, or empty for a record from before train.max_grad_norm
        # (those were clipped at sae-lens's fixed 1.0)
        "grad_clip": ("none" if run["max_grad_norm"] is None else str(float(run["max_grad_norm"])))
        if "max_grad_norm" in run else None,
        "train_seconds": run.get("train_seconds"),
        "sae_lens_version": record.get("sae_lens_version", versions.get("sae_lens")),
        "git_commit": run.get("git_commit"),
        "torch_version": versions.get("torch"),
        "device": run.get("device"),
        "metrics_path": str(path) if path else "",
    })
    if teacher is not None:
        for key in ("n", "m", "k", "rho", "dictionary_seed"):
            if key in teacher:
                row[f"teacher_{key}"] = teacher[key]
    for name, value in sorted(run.get("hyperparameters", {}).items()):
        row[f"hp_{name}"] = value
    return row


def read_benchmark(path: str | Path) -> dict[str, float]:
    """Wall time, peak RSS (MB) and CPU time of one Snakemake ``benchmark:`` file (mean wall and
    CPU, max RSS over its repeats)."""
    bm = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
    if bm.empty:
        raise ValueError(f"empty benchmark file {path}")
    return {
        "job_wall_s": float(bm["s"].mean()),
        "job_max_rss_mb": float(bm["max_rss"].max()),
        "job_cpu_s": float(bm["cpu_time"].mean()) if "cpu_time" in bm else math.nan,
    }


def build(
    paths: Sequence[str | Path], benchmarks: Sequence[str | Path] | None = None, kind: str = "family",
    replicates: bool = False,
) -> pd.DataFrame:
    """One row per metrics JSON under ``paths`` (files or folders), sorted by the key columns.

    ``benchmarks``, when given, is parallel to ``paths``: the benchmark file of the job that
    wrote each folder; its wall time / peak memory go to every row read from that folder.
    ``replicates``: ``paths`` are spread folders (:mod:`aenbench.synthetic.spread`), and each
    row's ``replicate`` is named by the folder below the root its JSON lies in
    (:func:`aenbench.sweeps.replicate_of`); otherwise ``replicate`` is empty.
    """
    paths = list(paths)
    if benchmarks is not None and len(benchmarks) != len(paths):
        raise ValueError(f"{len(benchmarks)} benchmark files for {len(paths)} run folders; need one per folder")
    rows = []
    for i, root in enumerate(paths):
        files = find_metric_files([root])
        job = read_benchmark(benchmarks[i]) if benchmarks is not None else {}
        for path in files:
            try:
                with open(path) as f:
                    row = row_from_record(json.load(f), path, kind)
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(f"{path}: not a valid metrics JSON ({type(err).__name__}: {err}); "
                                 "rerun the evaluation job that wrote it") from err
            row["replicate"] = replicate_of(path.relative_to(root).parts) if replicates else ""
            if job:
                row.update(job, job_n_saes=len(files), job_benchmark=str(benchmarks[i]))
            rows.append(row)
    return combine([pd.DataFrame(rows)])


# --------------------------------------------------------------------------- the paper's rows

def parse_paper_config(config: str) -> dict[str, Any]:
    """``"l1=1e-3 l2=5e-4 gamma=1"`` → ``{"hp_l1_coefficient": 0.001, ...}``; ``no-aux`` → aux 0."""
    out: dict[str, Any] = {}
    for token in str(config).split():
        if token == "no-aux":
            out["hp_aux_loss_coefficient"] = 0.0
            continue
        key, sep, value = token.partition("=")
        if not sep:
            raise ValueError(f"cannot read {token!r} in the paper config {config!r}")
        number = float(value)
        out[f"hp_{_PAPER_HP.get(key, key)}"] = int(number) if key == "k" else number
    return out


def paper_rows(reference_dir: str | Path) -> pd.DataFrame:
    """The authors' numbers as ``source = paper`` rows, one per line of every table listed in
    ``reference_dir/sources.yaml``. ``X_mean`` columns become ``X``; ``X_min``/``X_max`` stay."""
    reference_dir = Path(reference_dir)
    with open(reference_dir / "sources.yaml") as f:
        sources = yaml.safe_load(f)
    rows = []
    for name, meta in sources.items():
        table = pd.read_csv(reference_dir / name)
        for record in table.to_dict("records"):
            seeds = list(meta["seeds"])
            row: dict[str, Any] = {
                "track": meta["track"],
                "dataset": meta["dataset"].format(**record),
                "scale": scale_label(meta["track"], meta["dataset"].format(**record), meta.get("teacher"),
                                     meta["steps"], meta["batch_size"]),
                "family": record["model"],
                "architecture": "",
                "params": record["config"],
                "seed": seeds[0] if len(seeds) == 1 else math.nan,
                "source": "paper",
                "kind": "family",
                "n_seeds": len(seeds),
                "samples_seen": meta["steps"] * meta["batch_size"],
                "steps": meta["steps"],
                "batch_size": meta["batch_size"],
            }
            for key, value in (meta.get("teacher") or {}).items():
                row[f"teacher_{key}"] = value
            for column, value in record.items():
                if column in ("model", "config", "rho"):
                    continue
                row[column[: -len("_mean")] if column.endswith("_mean") else column] = value
            row.update(parse_paper_config(record["config"]))
            row["reference_file"] = f"results/reference/paper/{name}"
            rows.append(row)
    return combine([pd.DataFrame(rows)])


# --------------------------------------------------------------------------- the table


def combine(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate row sets, refuse duplicates, fix the column order and sort the rows."""
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=[*REQUIRED_COLUMNS, *PROVENANCE_COLUMNS])
    df = pd.concat(frames, ignore_index=True, sort=False)
    key = [c for c in ["source", *KEY_COLUMNS, "replicate"] if c in df.columns]
    duplicated = df.duplicated(subset=key, keep=False)
    if duplicated.any():
        where = df.loc[duplicated, "metrics_path"] if "metrics_path" in df else df.loc[duplicated, "params"]
        raise ValueError(
            "two rows describe the same run (same source/track/dataset/family/params/seed): "
            + ", ".join(map(str, where))
        )
    front = [c for c in [*REQUIRED_COLUMNS, *PROVENANCE_COLUMNS] if c in df.columns]
    hps = sorted(c for c in df.columns if c.startswith("hp_"))
    rest = [c for c in df.columns if c not in front and c not in hps]
    df = df[front + hps + rest]
    sort = [c for c in SORT_COLUMNS if c in df.columns]
    return df.sort_values(sort, kind="stable", na_position="last").reset_index(drop=True)


def write(df: pd.DataFrame, path: str | Path) -> None:
    write_with(path, lambda tmp: df.to_csv(tmp, index=False))


def read(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path)


# --------------------------------------------------------------------------- results/metrics.yaml


def write_metrics_yaml(path: str | Path) -> None:
    """Write the metric registry: every metric's group, meaning and direction, and the meaning of
    the other leaderboard columns."""
    header = (
        "# Generated from aenbench.metric_registry (METRICS, COLUMNS) by the leaderboard rule;\n"
        "# edit the code, not this file. direction: ↑ higher is better, ↓ lower is better,\n"
        "# — no preferred direction.\n"
    )
    body = yaml.safe_dump(
        {"metrics": R.metrics_dictionary(), "columns": R.COLUMNS}, allow_unicode=True, sort_keys=False, width=100
    )
    write_text(path, header + body)


def read_directions(path: str | Path) -> dict[str, bool | None]:
    """``metric → higher_is_better`` from a metrics.yaml written by :func:`write_metrics_yaml`."""
    with open(path) as f:
        data = yaml.safe_load(f)
    return {name: info["higher_is_better"] for name, info in data["metrics"].items()}


def metric_directions(metrics_yaml: str | Path | None = None) -> dict[str, bool | None]:
    """Directions from ``metrics_yaml`` when it exists, else from the metric registry."""
    if metrics_yaml is not None and Path(metrics_yaml).exists():
        return read_directions(metrics_yaml)
    return R.directions()
