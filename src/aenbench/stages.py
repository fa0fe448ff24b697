"""The train and evaluate stages every track shares, with a per-run store that survives reruns.

A Snakemake training job trains the runs of one family on one dataset; its evaluation job then
evaluates them. Each stage keeps what it made in a store keyed by a fingerprint of exactly the
settings that made it, outside the jobs' outputs (which Snakemake deletes before it reruns a
job), so a rerun recomputes only what changed:

* ``train_stage`` → ``<out_dir>/<run_id>/{sae/, training.json}`` and ``<out_dir>/index.json``.
  A run is trained only when ``<store>/trained/<fingerprint>/`` is missing; its fingerprint is
  the architecture, the run's hyperparameters and seed, the training settings, the teacher or
  activations it trains on (by content hash), the device and a hash of the training code. Adding
  a grid point trains that point only; removing one drops it from the index (and so from the
  leaderboard).
* ``evaluate_stage`` → ``<out_dir>/<run_id>/{sae/, metrics.json}``: the saved SAE is read back
  with sae-lens's ``SAE.load_from_disk`` and evaluated, unless ``<store>/evals/<fingerprint>.json``
  already holds the record for the same trained SAE (by weights hash) and evaluation settings.

Files in the outputs are hard links into the store where the file system allows (copies
elsewhere). Every store entry records its fingerprint and the sha256 of its weights; an entry
whose weights no longer match is refused, naming its path and what to delete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from aenbench.io import atomic_dir, write_json
from aenbench.jobs import progress, summarise
from aenbench.llm.resources import sha256_file
from aenbench.provenance import git_commit, versions
from aenbench.sweeps import run_hyperparameters, train_settings
from aenbench.training import fingerprint

log = logging.getLogger(__name__)

INDEX = "index.json"
TRAINING = "training.json"
WEIGHTS = "sae_weights.safetensors"
TRAINING_STATE = "training_state.safetensors"  # the training SAE's own state dict (strict reload)
# The library code that decides trained weights / evaluation results: a change to it is a
# change of the fingerprint, so the store never hands out a stale result after a code change.
TRAINING_CODE = ("training.py", "stacked_training.py", "lockstep.py", "llm/stream.py", "saes/aen.py", "saes/topk_paper.py", "sweeps.py", "synthetic/spiked.py", "synthetic/synthsae.py",
                 "llm/harvest.py")
EVALUATION_CODE = ("metrics.py", "stability.py", "records.py", "stages.py", "synthetic/track.py",
                   "synthetic/synthsae_track.py", "synthetic/synthsae.py", "llm/evaluate.py", "llm/track.py",
                   "saes/aen.py")


class StoreError(RuntimeError):
    """A store entry or a trained folder that does not match what recorded it."""


def training_settings(train: dict[str, Any], architecture: str) -> dict[str, Any]:
    """The part of a `train` section that decides the trained weights of a run of ``architecture``:
    what a training job reads (``sweeps.train_settings``) but for ``checkpoint_every`` (it only
    makes a kill resumable) and ``stack_size`` (on CPU a SAE's weights do not depend on which SAEs
    share its stack, bit for bit: tests/test_stacked_training.py), with ``engine`` the one that
    trains it (:func:`run_engine`: ``per_sae`` for an architecture the stacked engine does not
    support, whatever the section asks)."""
    settings = {k: v for k, v in train_settings(train).items() if k not in ("checkpoint_every", "stack_size")}
    return {"max_grad_norm": DEFAULT_MAX_GRAD_NORM, **settings, "engine": run_engine(train, architecture)}


def code_hash(files: Iterable[str], extra: Iterable[str | Path] = ()) -> str:
    """sha256 over aenbench source files (relative to the package) and ``extra`` files, plus the
    sae-lens and torch versions."""
    root = Path(__file__).parent
    h = hashlib.sha256(json.dumps({k: versions().get(k) for k in ("sae_lens", "torch")}).encode())
    for name in [*(root / f for f in files), *(Path(p) for p in extra)]:
        h.update(str(Path(name).name).encode())
        h.update(Path(name).read_bytes() if Path(name).exists() else b"<missing>")
    return h.hexdigest()[:16]


def tree_sha256(folder: str | Path) -> str:
    """sha256 over the relative paths and contents of every file under ``folder``."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(sha256_file(path).encode())
    return h.hexdigest()


def store_root(out_dir: str | Path) -> Path:
    """The store of the results folder ``out_dir`` lies in: ``results/<rest>`` → ``results/store``;
    ``<parent>/.store`` for a folder outside a ``results`` folder."""
    parts = Path(out_dir).parts
    if "results" in parts:
        return Path(*parts[: parts.index("results") + 1], "store")
    return Path(out_dir).parent / ".store"


def _link_tree(src: Path, dst: Path) -> None:
    """``dst`` as a tree of hard links to ``src``'s files (copies where links are not possible)."""
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


# --------------------------------------------------------------------------- training


@dataclass
class Run:
    run_id: str
    row: dict[str, Any]
    params: dict[str, Any]
    seed: int
    fingerprint: str


def plan_runs(family: dict[str, Any], runs: Sequence[tuple[str, dict[str, Any]]],
              arch_defaults: dict[str, dict[str, Any]], identity: dict[str, Any]) -> list[Run]:
    """The runs of a family with their hyperparameters and training fingerprints; ``identity`` is
    what every run of the job shares (data by hash, training settings, device, code)."""
    planned = []
    for run_id, row in runs:
        params = run_hyperparameters(family, row, arch_defaults)
        seed = int(row["seed"])
        fp = fingerprint({"architecture": family["architecture"], "params": params, "seed": seed, **identity})
        planned.append(Run(run_id, dict(row), params, seed, fp))
    return planned


STACKABLE = ("aen",)  # architectures the stacked engine trains (aenbench.stacked_training)
ENGINES = ("stacked", "per_sae")
DEFAULT_ENGINE = "stacked"
DEFAULT_STACK_SIZE = 32
DEFAULT_MAX_GRAD_NORM = 1.0  # sae-lens's SAETrainer's fixed clip (None: no clip)


def run_engine(train: dict[str, Any], architecture: str) -> str:
    """The engine that trains a run of ``architecture`` under a `train` section's ``engine``:
    ``stacked`` only for the architectures it supports (``STACKABLE``), else ``per_sae``."""
    engine = train.get("engine", DEFAULT_ENGINE)
    if engine not in ENGINES:
        raise ValueError(f"train.engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return "stacked" if engine == "stacked" and architecture in STACKABLE else "per_sae"


def _stacks(runs: Sequence[Run], stack_size: int) -> list[list[Run]]:
    """The runs grouped into stacks: one seed (so one data stream) and one set of the
    hyperparameters a stack cannot vary (``aen.STACK_HYPERPARAMETERS`` aside), in their order,
    at most ``stack_size`` each; a group is cut into as few stacks as that allows, of sizes
    that differ by at most one (72 runs at 32: 24 + 24 + 24, not 32 + 32 + 8, whose small
    last stack would run at a third of the big ones' speed per SAE, bench/RESULTS.md row 11)."""
    from aenbench.saes.aen import STACK_HYPERPARAMETERS

    groups: dict[str, list[Run]] = {}
    for run in runs:
        shared = {k: v for k, v in run.params.items() if k not in STACK_HYPERPARAMETERS}
        groups.setdefault(json.dumps([run.seed, shared], sort_keys=True, default=str), []).append(run)
    stacks = []
    for group in groups.values():
        n_stacks = -(-len(group) // stack_size)
        bounds = [len(group) * i // n_stacks for i in range(n_stacks + 1)]
        stacks += [group[lo:hi] for lo, hi in zip(bounds, bounds[1:])]
    return stacks


class TrainingDiverged(RuntimeError):
    """SAEs of a stacked job diverged; the others were trained and are in the store."""


def train_stage(
    *,
    runs: Sequence[Run],
    out_dir: str | Path,
    label: str,
    family_name: str,
    family: dict[str, Any],
    build: Callable[[Run], Any],
    stream: Callable[[Run], Any],
    train: dict[str, Any],
    device: str,
    info: dict[str, Any],
    before_save: Callable[[Any], None] | None = None,
    store_dir: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 1000,
    stack_size: int = DEFAULT_STACK_SIZE,
) -> list[dict[str, Any]]:
    """Train the runs missing from the store, then lay every run out in ``out_dir`` (built aside,
    renamed into place). ``build(run)`` is the training SAE, ``stream(run)`` its data (a function
    of the run's seed only); ``info`` goes into each ``training.json`` (the teacher or
    activations it was trained on).

    Engines (``train["engine"]``, :func:`run_engine`): ``stacked`` trains the runs of an
    ``aen`` family in stacks of at most ``stack_size`` SAEs of one seed
    (:func:`aenbench.stacked_training.train_stack`); ``per_sae`` (and every other architecture)
    trains them one at a time with sae-lens's trainer (:func:`aenbench.training.train_sae`).
    A SAE of a stack that diverges is frozen and named; the others finish and are stored, then
    the job fails with ``TrainingDiverged`` naming the diverged runs, so a rerun retrains those
    only.

    Checkpoints go to ``checkpoint_dir`` (default ``training.checkpoint_root(out_dir)``) every
    ``checkpoint_every`` steps (0: never; a `train` section's ``checkpoint_every``, which is not
    in ``train`` here since it changes no weight), one per SAE or per stack, so a killed job
    resumes the unfinished run or stack; a finished run is in the store at once, so a rerun does
    not retrain it."""
    from aenbench.training import checkpoint_root, train_sae

    store = Path(store_dir) if store_dir is not None else store_root(out_dir)
    ckpt_root = Path(checkpoint_dir) if checkpoint_dir is not None else checkpoint_root(out_dir)
    entry_of = {run.run_id: store / "trained" / run.fingerprint for run in runs}
    pending = [run for run in runs if not (entry_of[run.run_id] / TRAINING).exists()]
    engine = run_engine(train, family["architecture"])
    groups = _groups(pending, engine, stack_size)
    diverged: list[str] = []
    for group in progress(groups, desc=f"{label} ({engine})"):
        if engine == "per_sae":
            run = group[0]
            sae = build(run)
            res = train_sae(
                sae, stream(run), steps=train["steps"], batch_size=train["batch_size"], lr=train["lr"],
                dead_window_steps=train["dead_window_steps"], auxk_dead_window_steps=train["auxk_dead_window_steps"],
                device=device, checkpoint_dir=ckpt_root / run.run_id, checkpoint_every=checkpoint_every,
                run_fingerprint=run.fingerprint, max_grad_norm=train.get("max_grad_norm", DEFAULT_MAX_GRAD_NORM),
            )
            _store_trained(entry_of[run.run_id], run, res, sae, {"name": "per_sae"}, label, family_name, family,
                           train, device, info, before_save)
            shutil.rmtree(ckpt_root / run.run_id, ignore_errors=True)
            continue
        from aenbench.stacked_training import train_stack

        saes = [build(run) for run in group]
        stack_fp = fingerprint([run.fingerprint for run in group])
        stacked = train_stack(
            saes, stream(group[0]), names=[run.run_id for run in group], steps=train["steps"],
            batch_size=train["batch_size"], lr=train["lr"], dead_window_steps=train["dead_window_steps"],
            auxk_dead_window_steps=train["auxk_dead_window_steps"], device=device,
            checkpoint_dir=ckpt_root / f"stack-{stack_fp}", checkpoint_every=checkpoint_every,
            run_fingerprint=stack_fp, label=f"{label} stack of {len(group)}",
            max_grad_norm=train.get("max_grad_norm", DEFAULT_MAX_GRAD_NORM),
        )
        engine_info = {"name": "stacked", "stack_size": stacked.stack_size, "stack_seconds": stacked.seconds,
                       "stack_runs": [run.run_id for run in group]}
        for run, sae, res in zip(group, saes, stacked.results):
            if res is not None:
                _store_trained(entry_of[run.run_id], run, res, sae, engine_info, label, family_name, family, train,
                               device, info, before_save)
        diverged += [str(d) for d in stacked.diverged]
        shutil.rmtree(ckpt_root / f"stack-{stack_fp}", ignore_errors=True)
    n_trained = len(pending) - len(diverged)
    if diverged:
        raise _diverged(label, diverged, n_trained, store)
    records = []
    pending_ids = {run.run_id for run in pending}
    with atomic_dir(out_dir) as tmp:
        for run in runs:
            entry = entry_of[run.run_id]
            record = verify_trained(entry, run.fingerprint)
            if run.run_id not in pending_ids:
                summarise("%s %s: trained before (store %s); not retrained", label, run.run_id, entry.name)
            _link_tree(entry, tmp / run.run_id)
            # The store entry is shared by every run with this fingerprint (the same weights),
            # e.g. a family's grid point and an ablation arm with the same settings; the
            # identity in this folder's training.json is this run's, not that of whichever job
            # trained it first. Replace the hard link (never write through it into the store).
            record = {**record, **_identity(run, family_name, family)}
            (tmp / run.run_id / TRAINING).unlink()
            write_json(tmp / run.run_id / TRAINING, record)
            records.append(record)
        write_json(tmp / INDEX, {"runs": [r.run_id for r in runs], "fingerprints": [r.fingerprint for r in runs]})
    shutil.rmtree(ckpt_root, ignore_errors=True)
    print(f"{label}: {n_trained} SAE(s) trained ({engine}), {len(runs) - len(pending)} reused from the store",
          file=sys.stderr)
    return records


@dataclass
class LockstepItem:
    """One family's runs for :func:`train_lockstep_stage`: as ``train_stage``'s arguments."""

    runs: Sequence[Run]
    out_dir: Path
    family_name: str
    family: dict[str, Any]
    build: Callable[[Run], Any]
    before_save: Callable[[Any], None] | None = None


def train_lockstep_stage(
    *,
    items: Sequence[LockstepItem],
    stream: Callable[[int], Any],
    train: dict[str, Any],
    device: str,
    info: dict[str, Any],
    label: str,
    checkpoint_dir: str | Path,
    checkpoint_every: int = 1000,
    stack_size: int = DEFAULT_STACK_SIZE,
) -> int:
    """Train the runs of several families that are missing from the store, all of one seed in
    lockstep from one stream (``stream(seed)``, drawn once per step for all of them:
    :func:`aenbench.lockstep.train_lockstep`), and store each; ``train_stage`` then lays each family
    out without training. The ``aen`` runs of all families go in stacks together (grouped as in
    ``train_stage``, so ℓ1, EN, AL and AEN runs of one seed share a stack), the others one
    trainer each. Returns the number of SAEs trained."""
    from aenbench.lockstep import train_lockstep

    by_seed: dict[int, list[tuple[LockstepItem, list[Run]]]] = {}
    for item in items:
        store = store_root(item.out_dir)
        pending = [r for r in item.runs if not (store / "trained" / r.fingerprint / TRAINING).exists()]
        for seed in sorted({r.seed for r in pending}):
            by_seed.setdefault(seed, []).append((item, [r for r in pending if r.seed == seed]))
    n_trained = 0
    diverged: list[str] = []
    for seed, parts in sorted(by_seed.items()):
        groups, owners = [], []
        pooled: list[Run] = []  # the stacked engine's runs of every family: stacks may mix families
        item_of: dict[int, LockstepItem] = {}
        for item, pending in parts:
            engine = run_engine(train, item.family["architecture"])
            if engine == "stacked":
                pooled += pending
                item_of.update((id(r), item) for r in pending)
                continue
            for group in _groups(pending, engine, stack_size):
                groups.append((engine, [item.build(r) for r in group], [r.run_id for r in group]))
                owners.append(([item] * len(group), group))
        for group in _groups(pooled, "stacked", stack_size):
            members = [item_of[id(r)] for r in group]
            groups.append(("stacked", [it.build(r) for it, r in zip(members, group)],
                           [f"{it.family_name}/{r.run_id}" for it, r in zip(members, group)]))
            owners.append((members, group))
        fp = fingerprint([r.fingerprint for _, g in owners for r in g])
        n = sum(len(g) for _, g in owners)
        summarise("%s: training %d SAE(s) of seed %d in lockstep from one stream (%d member(s))", label, n, seed,
                  len(groups))
        res = train_lockstep(
            groups, stream(seed), steps=train["steps"], batch_size=train["batch_size"], lr=train["lr"],
            dead_window_steps=train["dead_window_steps"], auxk_dead_window_steps=train["auxk_dead_window_steps"],
            device=device, checkpoint_dir=Path(checkpoint_dir) / f"lockstep-{fp}", checkpoint_every=checkpoint_every,
            run_fingerprint=fp, max_grad_norm=train.get("max_grad_norm", DEFAULT_MAX_GRAD_NORM),
            label=f"{label} seed {seed}")
        engine_info = {"name": "lockstep", "members": len(groups), "lockstep_saes": n,
                       "lockstep_seconds": res.seconds}
        for (members, group), (engine, saes, _), results in zip(owners, groups, res.results):
            for item, run, sae, r in zip(members, group, saes, results):
                if r is None:
                    continue
                _store_trained(store_root(item.out_dir) / "trained" / run.fingerprint, run, r, sae,
                               {**engine_info, "member_engine": engine, "member_size": len(group)}, label,
                               item.family_name, item.family, {**train, "engine": engine}, device, info,
                               item.before_save)
                n_trained += 1
        diverged += [str(d) for d in res.diverged]
        shutil.rmtree(Path(checkpoint_dir) / f"lockstep-{fp}", ignore_errors=True)
    if diverged:
        raise _diverged(label, diverged, n_trained, store_root(items[0].out_dir))
    return n_trained


def _groups(pending: Sequence[Run], engine: str, stack_size: int) -> list[list[Run]]:
    """The runs each trainer takes: stacks (:func:`_stacks`) on the stacked engine, else one each."""
    return _stacks(pending, stack_size) if engine == "stacked" else [[run] for run in pending]


def _diverged(label: str, diverged: Sequence[str], n_trained: int, store: Path) -> TrainingDiverged:
    return TrainingDiverged(
        f"{label}: {len(diverged)} SAE(s) diverged (non-finite loss) and were not saved: " + "; ".join(diverged)
        + f". The other {n_trained} trained SAE(s) are in the store ({store / 'trained'}); a rerun retrains only"
        " the diverged ones (lower their lr or coefficients, or drop them from the grid).")


def _identity(run: Run, family_name: str, family: dict[str, Any]) -> dict[str, Any]:
    """What names a trained run (not part of its fingerprint): its folder name, family and row."""
    return {"run_id": run.run_id, "family": family_name, "family_definition": family, "row": run.row}


def _store_trained(entry: Path, run: Run, res: Any, sae: Any, engine: dict[str, Any], label: str, family_name: str,
                   family: dict[str, Any], train: dict[str, Any], device: str, info: dict[str, Any],
                   before_save: Callable[[Any], None] | None) -> None:
    if before_save is not None:
        before_save(sae)
    record = _write_trained(entry, run, res, sae, family_name, family, train, device, {**info, "engine": engine})
    t = record["training_groups"]["sparsity"]
    summarise("%s %s: trained in %.1fs (%s), dead=%.1f%% over the last %d steps", label, run.run_id, res.seconds,
        engine["name"] if engine["name"] == "per_sae" else
        f"its share of a stack of {engine['stack_size']}" if engine["name"] == "stacked" else
        f"its share of {engine['lockstep_saes']} SAEs in lockstep",
        t["dead_pct"], res.dead_window_steps)


def _write_trained(entry: Path, run: Run, res: Any, sae: Any, family_name: str, family: dict[str, Any],
                   train: dict[str, Any], device: str, info: dict[str, Any]) -> dict[str, Any]:
    from aenbench.records import training_metrics

    record = {
        "fingerprint": run.fingerprint,
        "run_id": run.run_id,
        "family": family_name,
        "family_definition": family,
        "architecture": family["architecture"],
        "row": run.row,
        "hyperparameters": run.params,
        "seed": run.seed,
        "train": train,
        "device": device,
        "d_in": int(sae.cfg.d_in),
        "d_sae": int(sae.cfg.d_sae),
        "res": {"steps": res.steps, "seconds": res.seconds, "dead_window_steps": res.dead_window_steps},
        "training_groups": training_metrics(res, sae, train["batch_size"]),
        "adaptive_trace": getattr(sae, "adaptive_trace", None) or None,
        "sae_cfg_dict": sae.cfg.to_dict(),
        "git_commit": git_commit(),
        "versions": versions(),
        **info,
    }
    from safetensors.torch import save_file

    with atomic_dir(entry) as tmp:
        sae.save_inference_model(str(tmp / "sae"))
        save_file({k: v.detach().contiguous() for k, v in sae.state_dict().items()}, str(tmp / TRAINING_STATE))
        record["weights_sha256"] = sha256_file(tmp / "sae" / WEIGHTS)
        record["training_state_sha256"] = sha256_file(tmp / TRAINING_STATE)
        write_json(tmp / TRAINING, record)
    return record


def verify_trained(folder: Path, expect_fingerprint: str | None = None) -> dict[str, Any]:
    """The ``training.json`` of a trained folder, after checking its weights against the hash it
    records (and its fingerprint against ``expect_fingerprint``)."""
    path = folder / TRAINING
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise StoreError(f"{path}: unreadable ({err}); delete {folder} and rerun to retrain it") from err
    if expect_fingerprint is not None and record.get("fingerprint") != expect_fingerprint:
        raise StoreError(f"{path} records fingerprint {record.get('fingerprint')!r}, expected {expect_fingerprint!r};"
                         f" delete {folder} and rerun")
    for file, key in ((folder / "sae" / WEIGHTS, "weights_sha256"), (folder / TRAINING_STATE, "training_state_sha256")):
        if not file.exists() or sha256_file(file) != record.get(key):
            raise StoreError(f"{file}: missing or its sha256 differs from the one {path} records; "
                             f"delete {folder} and rerun to retrain it")
    return record


def trained_runs(trained_dir: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """(folder, verified training.json) of every run a train stage laid out, in its order."""
    trained_dir = Path(trained_dir)
    try:
        index = json.loads((trained_dir / INDEX).read_text())
    except (OSError, ValueError) as err:
        raise StoreError(f"{trained_dir / INDEX}: unreadable ({err}); rerun the training job of {trained_dir}") from err
    out = []
    for r, fp in zip(index["runs"], index["fingerprints"]):
        record = verify_trained(trained_dir / r, fp)
        if record.get("run_id") != r:
            raise StoreError(f"{trained_dir / r / TRAINING} names run {record.get('run_id')!r}, not {r!r} (laid out "
                             f"before the store's identity fix); rerun the training job of {trained_dir} "
                             "(--forcerun: it reuses the stored weights)")
        out.append((trained_dir / r, record))
    return out


def load_training_sae(trained: dict[str, Any], folder: Path, device: str) -> Any:
    """The training SAE of a trained run, rebuilt from its hyperparameters with its saved state
    dict (for what needs the training config, e.g. AEN's objective with λ₁, λ₂ and w̃)."""
    from safetensors.torch import load_file

    from aenbench.training import build_training_sae

    sae = build_training_sae(trained["architecture"], trained["d_in"], trained["d_sae"], trained["hyperparameters"],
                             trained["seed"], device)
    sae.load_state_dict(load_file(str(folder / TRAINING_STATE), device=device), strict=True)
    if hasattr(sae, "projected_after_step"):
        sae.projected_after_step = True  # the saved decoder is as training left it
    return sae


# --------------------------------------------------------------------------- evaluation


def evaluate_stage(
    *,
    trained_dir: str | Path,
    out_dir: str | Path,
    label: str,
    evaluate: Callable[[list[tuple[Path, dict[str, Any]]]], dict[str, tuple[dict[str, Any], dict[str, Any]]]],
    identity: dict[str, Any],
    store_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every run of ``trained_dir`` whose record is not in the store and lay out
    ``out_dir/<run_id>/{sae/, metrics.json}``. ``evaluate(items)`` takes the (folder, training
    record) pairs to evaluate and returns, per run id, the full record (see
    :func:`aenbench.records.record_from_training`)."""
    store = Path(store_dir) if store_dir is not None else store_root(out_dir)
    items = trained_runs(trained_dir)
    # the record names its run (eval_id, sae_lens_id, family, row), so a stored evaluation is
    # reused only by the same run of the same family, never by another run with the same weights
    keys = {t["run_id"]: fingerprint({"weights": t["weights_sha256"], "trained": t["fingerprint"], **identity,
                                      "run": {k: t.get(k) for k in ("run_id", "family", "row")}})
            for _, t in items}
    todo = [(f, t) for f, t in items if not (store / "evals" / f"{keys[t['run_id']]}.json").exists()]
    fresh = evaluate(todo) if todo else {}
    records = []
    with atomic_dir(out_dir) as tmp:
        for folder, t in progress(items, desc=label):
            cached = store / "evals" / f"{keys[t['run_id']]}.json"
            if t["run_id"] in fresh:
                record = fresh[t["run_id"]]
                write_json(cached, record)
            else:
                record = json.loads(cached.read_text())
                summarise("%s %s: evaluated before (store %s); not re-evaluated", label, t["run_id"], cached.name)
            _link_tree(folder / "sae", tmp / t["run_id"] / "sae")
            write_json(tmp / t["run_id"] / "metrics.json", record)
            records.append(record)
            flat = {k: v for g in record["eval_result_metrics"].values() for k, v in g.items()}
            summarise("%s %s: L0=%.2f dead=%.1f%% EV=%.3f", label, t["run_id"], flat.get("L0", float("nan")),
                flat.get("dead_pct", float("nan")), flat.get("EV", float("nan")))
    print(f"{label}: {len(fresh)} SAE(s) evaluated, {len(items) - len(fresh)} reused from the store", file=sys.stderr)
    return records
