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

Every record is checked before a row is made of it (:func:`read_record`): a malformed, empty,
binary or incomplete ``metrics.json``, one of the wrong schema, a NaN where a number is needed, a
record lying in another run's folder and two records claiming one run are refused in one line
naming the path, the field and what to rerun (:class:`RecordError`). The workflow's
``check_records`` job does the whole build first (:func:`check_inputs`) and writes
``results/checked_records.json`` (each record's sha256 and the settings that made it: training
fingerprint, weights hash, evaluation config hash); only then does the leaderboard job start,
which Snakemake begins by deleting the previous ``leaderboard.csv``. So a bad record fails the
check and the previous leaderboard survives; the leaderboard job then reads only records whose
sha256 is the one the check recorded.

Column meanings and metric directions: :mod:`aenbench.metric_registry`. Imports nothing heavy
(pandas, yaml), so the CLI can use it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

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


class RecordError(ValueError):
    """An input of the leaderboard (a per-SAE record, a benchmark file, the paper's tables) that
    cannot be trusted; the message is one line naming the path, the cause and what to rerun."""


# the metrics every record must carry as numbers (every track's evaluation writes them)
NEEDED_METRICS = ("L0", "dead_pct")
_RUN_STRINGS = ("track", "dataset", "family", "architecture", "params")


def _rerun(root: str | Path) -> str:
    return (f"rerun the job that wrote it: `snakemake {root} --force --cores 1` (with the --configfile / "
            "--profile you ran with)")


def _what(value: Any) -> str:
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return kind.get(type(value), f"a {type(value).__name__}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def record_problem(record: Any) -> str | None:
    """What makes ``record`` (a parsed ``metrics.json``) unusable for a leaderboard row, or None."""
    if not isinstance(record, dict):
        return f"the top level is {_what(record)}, not a JSON object (a metrics record is one)"
    if "run" not in record:
        return "the field 'run' is missing (the run block: track, dataset, family, seed, ...)"
    run = record["run"]
    if not isinstance(run, dict):
        return f"the field 'run' is {_what(run)}, not an object"
    for key in _RUN_STRINGS:
        if key not in run:
            return f"run.{key} is missing"
        if not isinstance(run[key], str) or (key != "params" and not run[key]):
            return f"run.{key} is {run[key]!r} ({_what(run[key])}), not a non-empty string"
    if "seed" not in run:
        return "run.seed is missing"
    for key, optional in (("seed", False), ("steps", True), ("batch_size", True)):
        value = run.get(key)
        if optional and value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            return f"run.{key} is {value!r} ({_what(value)}), not an integer"
    for key in ("max_grad_norm", "train_seconds"):
        value = run.get(key)
        if value is not None and not _is_number(value):
            return f"run.{key} is {value!r} ({_what(value)}), not a number"
    for key in ("hyperparameters", "teacher", "versions"):
        if run.get(key) is not None and not isinstance(run[key], dict):
            return f"run.{key} is {_what(run[key])}, not an object"
    if record.get("sae_lens_id") is not None and not isinstance(record["sae_lens_id"], str):
        return f"sae_lens_id is {_what(record['sae_lens_id'])}, not a string"
    if "eval_result_metrics" not in record:
        return "eval_result_metrics (the metric groups) is missing"
    groups = record["eval_result_metrics"]
    if not isinstance(groups, dict) or not groups:
        return f"eval_result_metrics is {_what(groups)}{' with no groups' if groups == {} else ''}, not an object of metric groups"
    found: dict[str, Any] = {}
    for group, metrics in groups.items():
        where = f"eval_result_metrics.{group}"
        if not isinstance(metrics, dict):
            return f"{where} is {_what(metrics)}, not an object of metrics"
        for name, value in metrics.items():
            if value is None or isinstance(value, bool):
                pass
            elif not _is_number(value):
                return f"{where}.{name} is {value!r} ({_what(value)}), not a number"
            elif not math.isfinite(value):
                return f"{where}.{name} is {'NaN' if math.isnan(value) else value}, where a finite number is needed"
            found.setdefault(name, value)
    for name in NEEDED_METRICS:
        if found.get(name) is None:
            return f"the metric {name} is {'missing' if name not in found else 'null'} in eval_result_metrics"
    return None


def read_record(path: str | Path, root: str | Path | None = None) -> tuple[dict[str, Any], bytes]:
    """The checked record at ``path`` and its bytes. ``root``: the run folder the job wrote (a
    ``runs/<family>``, ``variants/<variant>`` or ``spread`` folder); the record must lie in the
    folder of the run it names (its ``sae_lens_id``) and, in the workflow's layout (a root named
    ``spread`` or below ``runs/`` / ``variants/``), below a folder of its family.
    Refusals: :class:`RecordError`."""
    path = Path(path)
    hint = _rerun(root if root is not None and Path(root).is_dir() else path.parent)

    def fail(problem: str) -> RecordError:
        return RecordError(f"{path}: {problem}; {hint}")

    try:
        data = path.read_bytes()
    except OSError as err:
        raise fail(f"cannot be read ({err.strerror or err})") from err
    if not data.strip():
        raise fail("is empty (a metrics JSON was expected)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise fail("is not UTF-8 text (binary or damaged), so not a metrics JSON") from err
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise fail(f"is not valid JSON ({err.msg}: line {err.lineno} column {err.colno}; "
                   "cut short or edited by hand?)") from err
    problem = record_problem(record)
    if problem:
        raise fail(problem)
    if root is not None and Path(root).is_dir():
        root = Path(root)
        folder = path.parent.name
        if record.get("sae_lens_id") is not None and record["sae_lens_id"] != folder:
            raise fail(f"names the run {record['sae_lens_id']!r} (sae_lens_id) but lies in the folder {folder!r}: "
                       "copied or moved from another run's folder")
        family = record["run"]["family"]
        folders = [root.name, *path.relative_to(root).parts[:-2]]
        layout = root.name == "spread" or root.parent.name in ("runs", "variants")
        if layout and family not in folders:
            raise fail(f"is a record of family {family!r} but lies under {root} (folders "
                       f"{', '.join(map(repr, folders))}): moved from another family's folder")
    return record, data


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
    hint = "rerun the job it times (its `benchmark:` file), e.g. with `--forcerun` on that rule"
    try:
        bm = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise RecordError(f"{path}: not a readable Snakemake benchmark file ({type(err).__name__}: "
                          f"{str(err).strip().splitlines()[0] if str(err).strip() else 'no detail'}); {hint}") from err
    if bm.empty:
        raise RecordError(f"{path}: empty benchmark file (a header and no rows); {hint}")
    missing = [c for c in ("s", "max_rss") if c not in bm.columns]
    if missing:
        raise RecordError(f"{path}: not a Snakemake benchmark file (no column {', '.join(missing)}); {hint}")
    if not (pd.api.types.is_numeric_dtype(bm["s"]) and pd.api.types.is_numeric_dtype(bm["max_rss"])):
        raise RecordError(f"{path}: the benchmark's s / max_rss columns are not numbers; {hint}")
    return {
        "job_wall_s": float(bm["s"].mean()),
        "job_max_rss_mb": float(bm["max_rss"].max()),
        "job_cpu_s": float(bm["cpu_time"].mean()) if "cpu_time" in bm else math.nan,
    }


def build(
    paths: Sequence[str | Path], benchmarks: Sequence[str | Path] | None = None, kind: str = "family",
    replicates: bool = False, checked: list[dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """One row per metrics JSON under ``paths`` (files or folders), sorted by the key columns.

    ``benchmarks``, when given, is parallel to ``paths``: the benchmark file of the job that
    wrote each folder; its wall time / peak memory go to every row read from that folder.
    ``replicates``: ``paths`` are spread folders (:mod:`aenbench.synthetic.spread`), and each
    row's ``replicate`` is named by the folder below the root its JSON lies in
    (:func:`aenbench.sweeps.replicate_of`); otherwise ``replicate`` is empty.
    ``checked``, when given, gets one entry per record read (:func:`checked_entry`).
    Every record is checked (:func:`read_record`); a bad one raises :class:`RecordError`.
    """
    paths = list(paths)
    if benchmarks is not None and len(benchmarks) != len(paths):
        raise ValueError(f"{len(benchmarks)} benchmark files for {len(paths)} run folders; need one per folder")
    rows = []
    for i, root in enumerate(paths):
        files = find_metric_files([root])
        job = read_benchmark(benchmarks[i]) if benchmarks is not None else {}
        for path in files:
            record, data = read_record(path, root)
            try:
                row = row_from_record(record, path, kind)
            except (KeyError, TypeError, ValueError) as err:  # what record_problem does not foresee
                raise RecordError(f"{path}: not a valid metrics record ({type(err).__name__}: {err}); "
                                  f"{_rerun(root)}") from err
            row["replicate"] = replicate_of(path.relative_to(root).parts) if replicates else ""
            if checked is not None:
                checked.append(checked_entry(path, record, data, row))
            if job:
                row.update(job, job_n_saes=len(files), job_benchmark=str(benchmarks[i]))
            rows.append(row)
    return combine([pd.DataFrame(rows)])


def checked_entry(path: Path, record: dict[str, Any], data: bytes, row: dict[str, Any]) -> dict[str, Any]:
    """What ``checked_records.json`` keeps of one record: its path, size and sha256, the run it
    names and the settings that made it (training fingerprint, weights hash, evaluation config)."""
    run = record["run"]
    return {
        "path": str(path), "bytes": len(data), "sha256": _sha256(data),
        "run_id": record.get("sae_lens_id", path.parent.name), "track": run["track"], "dataset": run["dataset"], "family": run["family"],
        "kind": row["kind"], "params": row["params"], "seed": run["seed"], "replicate": row["replicate"],
        "training_fingerprint": run.get("training_fingerprint"), "weights_sha256": run.get("weights_sha256"),
        "eval_type_id": record.get("eval_type_id"),
        "eval_config_sha256": _sha256(json.dumps(record.get("eval_config"), sort_keys=True).encode()),
    }


# the rule inputs check_inputs reads (workflow/rules/leaderboard.smk); runs and benchmarks are parallel
INPUT_KEYS = ("runs", "benchmarks", "spread", "spread_benchmarks", "variant_runs", "variant_benchmarks", "reference")
CHECKED_RECORDS = "results/checked_records.json"


def inputs_of(named: Any) -> dict[str, list[str]]:
    """The :data:`INPUT_KEYS` of a Snakemake job's ``input`` as lists of paths."""
    out = {}
    for key in INPUT_KEYS:
        value = getattr(named, key, [])
        out[key] = [value] if isinstance(value, str) else [str(v) for v in value]
    return out


def check_inputs(
    inputs: Mapping[str, Sequence[str]], checked: dict[str, Any] | None = None,
    checked_path: str | Path = CHECKED_RECORDS,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The whole leaderboard from the rule's ``inputs`` (:data:`INPUT_KEYS`) and the manifest of
    what it read: each record's sha256 and settings (:func:`checked_entry`), each benchmark and
    reference file's sha256, the row count. ``checked``: a manifest written before (by the
    ``check_records`` job, at ``checked_path``); every record read must be one it lists, with the
    same sha256, and none it lists gone; each one that is not is a note in the returned manifest's
    ``changed_since_check`` (:func:`verify_checked`). Refusals: :class:`RecordError`."""
    records: list[dict[str, Any]] = []
    get = lambda key: list(inputs.get(key) or [])  # noqa: E731
    frames = [
        build(get("runs"), benchmarks=get("benchmarks") if "benchmarks" in inputs else None, kind="family",
              checked=records),
        build(get("spread"), benchmarks=get("spread_benchmarks") if "spread_benchmarks" in inputs else None,
              kind="family", replicates=True, checked=records),
        build(get("variant_runs"), benchmarks=get("variant_benchmarks") if "variant_benchmarks" in inputs else None,
              kind="variant", checked=records),
    ]
    for folder in sorted({str(Path(p).parent) for p in get("reference")}):
        try:
            frames.append(paper_rows(folder))
        except (OSError, KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as err:
            raise RecordError(f"{folder}: the paper's reference tables (sources.yaml and its CSVs) cannot be read "
                              f"({type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}); "
                              f"restore them: `git checkout -- {folder}`") from err
    df = combine(frames)
    files = [*get("benchmarks"), *get("spread_benchmarks"), *get("variant_benchmarks"), *get("reference")]
    manifest = {
        "checked": "every per-SAE record the leaderboard reads (aenbench.leaderboard.check_inputs)",
        "rows": int(len(df)),
        "records": records,
        "files": [{"path": str(p), "sha256": _sha256(Path(p).read_bytes())} for p in files],
    }
    if checked is not None:
        manifest["changed_since_check"] = notes = verify_checked(records, checked, checked_path)
        for note in notes:
            logging.getLogger("aenbench.summary").warning("leaderboard: %s", note)
    return df, manifest


def verify_checked(records: Sequence[dict[str, Any]], checked: dict[str, Any], checked_path: str | Path) -> list[str]:
    """Compare the records read with those ``checked`` (the check's manifest) recorded: one note per
    record that changed (another sha256), appeared or went since the check. Each record read has
    passed the same checks here (:func:`read_record`), so a changed one is reported, not refused:
    refusing it would cost the previous leaderboard (``--forcerun leaderboard`` reruns this job
    without the check); the notes go to the log and the terminal."""
    rerun = "rerun `snakemake results/leaderboard.csv --forcerun check_records --cores 1` to record it"
    try:
        expected = {e["path"]: e["sha256"] for e in checked["records"]}
    except (KeyError, TypeError) as err:
        raise RecordError(f"{checked_path}: not a manifest written by check_records ({type(err).__name__}: {err}); "
                          "rerun `snakemake results/leaderboard.csv --forcerun check_records --cores 1`") from err
    notes = []
    for entry in records:
        want = expected.pop(entry["path"], None)
        if want is None:
            notes.append(f"{entry['path']}: not among the records {checked_path} checked (added since); "
                         f"checked again here; {rerun}")
        elif want != entry["sha256"]:
            notes.append(f"{entry['path']}: its sha256 {entry['sha256'][:12]}… differs from the {want[:12]}… "
                         f"{checked_path} recorded (changed since the check); checked again here; {rerun}")
    notes += [f"{path}: checked by {checked_path} but gone now; its row is dropped" for path in expected]
    return notes


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
        raise RecordError(
            "two records claim the same run (same source/track/dataset/scale/family/params/seed/replicate): "
            + ", ".join(map(str, where)) + "; remove the one that does not belong (a copied run folder?) "
            "and rerun the job that wrote its folder"
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
