"""A second synthetic ground truth: a SynthSAEBench-style teacher built with sae-lens's own
``sae_lens.synthetic`` module (Chanin & Garriga-Alonso, arXiv 2602.14687), scaled down to CPU.

Everything ground-truth related is sae-lens's:

* the teacher is a :class:`sae_lens.synthetic.SyntheticModel` built from a
  :class:`~sae_lens.synthetic.SyntheticModelConfig` (Zipfian firing probabilities, a forest of
  hierarchical features with mutual exclusion, low-rank Gaussian-copula correlations between
  firings, per-feature magnitudes, an optionally orthogonalised dictionary and a bias);
* it is saved and loaded with ``SyntheticModel.save`` / ``SyntheticModel.load_from_disk``
  (``synthetic_model_config.json``, ``synthetic_model.safetensors``, ``hierarchy.json``);
* every metric comes from :func:`sae_lens.synthetic.eval_sae_on_synthetic_data`, under the
  names sae-lens itself logs (``SyntheticDataEvalResult.to_log_dict(prefix="synthetic/")``, the
  prefix ``SyntheticSAERunner`` uses for its periodic evals), so the numbers are comparable with
  the published SynthSAEBench table.

aenbench adds only what sae-lens leaves open: a flat dict spec (:data:`DEFAULT_SPEC`,
:func:`spec_to_config`), a stream whose batches depend on its own seed alone
(:class:`SyntheticStream`; sae-lens samples from torch's *global* RNG), and an ``evaluate`` that
seeds its samples and returns the record's flat metric groups.

Spec keys (all optional: a spec is merged over :data:`DEFAULT_SPEC`; unknown keys are errors)

=============================================  ===========================================================
key                                            sae-lens field
=============================================  ===========================================================
``num_features``                               ``SyntheticModelConfig.num_features`` (ground-truth features N)
``hidden_dim``                                 ``SyntheticModelConfig.hidden_dim`` (activation dim D = SAE d_in)
``seed``                                       ``SyntheticModelConfig.seed`` (int; fixes the whole teacher)
``zipf_exponent``                              ``ZipfianFiringProbabilityConfig.exponent``
``zipf_max_prob``                              ``ZipfianFiringProbabilityConfig.max_prob`` (feature 0)
``zipf_min_prob``                              ``ZipfianFiringProbabilityConfig.min_prob`` (feature N−1)
``hierarchy_root_nodes``                       ``HierarchyConfig.total_root_nodes``; 0 → no hierarchy
``hierarchy_branching_factor``                 ``HierarchyConfig.branching_factor`` (int or [min, max])
``hierarchy_max_depth``                        ``HierarchyConfig.max_depth``
``hierarchy_mutually_exclusive_portion``       ``HierarchyConfig.mutually_exclusive_portion``
``hierarchy_mutually_exclusive_min_depth``     ``HierarchyConfig.mutually_exclusive_min_depth``
``hierarchy_mutually_exclusive_max_depth``     ``HierarchyConfig.mutually_exclusive_max_depth`` (None: no cap)
``hierarchy_compensate_probabilities``         ``HierarchyConfig.compensate_probabilities``
``hierarchy_scale_children_by_parent``         ``HierarchyConfig.scale_children_by_parent``
``correlation_rank``                           ``LowRankCorrelationConfig.rank``; 0 → independent firings
``correlation_scale``                          ``LowRankCorrelationConfig.correlation_scale``
``magnitude_mean_start``, ``_end``             ``LinearMagnitudeConfig(start, end)`` for the mean magnitude
``magnitude_std_mean``, ``magnitude_std_std``  ``FoldedNormalMagnitudeConfig(mean, std)`` for the per-feature
                                               magnitude std; ``magnitude_std_std = 0`` → the constant
                                               ``magnitude_std_mean``
``orthogonalization_steps``, ``_lr``           ``OrthogonalizationConfig(num_steps, lr)``; 0 steps → none
``bias``                                       ``SyntheticModelConfig.bias`` (norm of the dictionary bias;
                                               0 → no bias)
=============================================  ===========================================================

Sizes. :data:`SYNTHSAEBENCH_16K_SPEC` is the published SynthSAEBench-16k model
(``decoderesearch/synth-sae-bench-16k-v1``: N = 16,384, D = 768, seed 42; its SAEs are 4096
wide, k = 25, 200M samples of batch 1024 at lr 3e-4 — GPU hours, not CPU seconds).
:data:`DEFAULT_SPEC` keeps every *shape* parameter of that preset (Zipf exponent and range,
ME hierarchy of branching 4 and depth 3 covering ≈ 66 % of the features, rank-25 correlations
of scale 0.1, magnitudes 5 → 4 with folded-normal stds, bias 0.5, 100 orthogonalisation steps)
and shrinks N and D: N = 512 features in D = 64 dims with 4 root trees (4 × 85 = 340 features in
the hierarchy, the preset's 128 × 85 / 16,384 share; features are numbered breadth-first, so
the roots, their children, … take the same relative Zipf ranks as in the preset). That gives a
true L0 ≈ 4.7, N/D = 8 and a mean max |cos| between atoms ≈ 0.38 (preset: L0 ≈ 34, N/D ≈ 21,
≈ 0.15): the per-sample compressed-sensing load L0·ln(N/L0)/D ≈ 0.34 is close to the preset's
≈ 0.27. Suggested SAEs: width 128 (= N/4, the preset's 4096/16,384), k ≈ 5 for TopK, 3000 steps
of batch 256: ≈ 15–17 s of CPU on one core, of which ≈ 10 s is sae-lens's sampler (hierarchy
modifier and Gaussian copula), so wider SAEs cost little more (width 512: ≈ 18–25 s).

Note on the hierarchy: with mutually exclusive children, sae-lens's
``compensate_probabilities`` cannot restore the configured Zipf marginals where the children's
probabilities sum past their parent's: each tree level fires about as often in total as the
level above, so the tree features fire below their configured rate (median ≈ 0.6×, 0.4×, 0.33×
at depths 1–3 here) and the true L0 (≈ 4.7) is about half the configured Σp (≈ 9.1). Roots and
features outside the trees fire at their configured rate.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from sae_lens.synthetic import (
    FoldedNormalMagnitudeConfig,
    HierarchyConfig,
    LinearMagnitudeConfig,
    LowRankCorrelationConfig,
    OrthogonalizationConfig,
    SyntheticModel,
    SyntheticModelConfig,
    ZipfianFiringProbabilityConfig,
    eval_sae_on_synthetic_data,
)

from aenbench.io import atomic_dir
from aenbench.metric_registry import SYNTHSAE_METRICS, SYNTHSAE_PREFIX

EVAL_TYPE_ID = "aenbench_synthetic_synthsae"
METRIC_PREFIX = SYNTHSAE_PREFIX

#: CPU default: the SynthSAEBench-16k shape at N = 512, D = 64 (see the module docstring).
DEFAULT_SPEC: dict[str, Any] = {
    "num_features": 512,
    "hidden_dim": 64,
    "seed": 42,
    "zipf_exponent": 0.5,
    "zipf_max_prob": 0.4,
    "zipf_min_prob": 5e-4,
    "hierarchy_root_nodes": 4,
    "hierarchy_branching_factor": 4,
    "hierarchy_max_depth": 3,
    "hierarchy_mutually_exclusive_portion": 1.0,
    "hierarchy_mutually_exclusive_min_depth": 0,
    "hierarchy_mutually_exclusive_max_depth": None,
    "hierarchy_compensate_probabilities": True,
    "hierarchy_scale_children_by_parent": True,
    "correlation_rank": 25,
    "correlation_scale": 0.1,
    "magnitude_mean_start": 5.0,
    "magnitude_mean_end": 4.0,
    "magnitude_std_mean": 0.5,
    "magnitude_std_std": 0.5,
    "orthogonalization_steps": 100,
    "orthogonalization_lr": 3e-4,
    "bias": 0.5,
}

#: The published SynthSAEBench-16k teacher (sae-lens docs, "SynthSAEBench"; HF
#: ``decoderesearch/synth-sae-bench-16k-v1``), in this module's spec keys.
SYNTHSAEBENCH_16K_SPEC: dict[str, Any] = {
    **DEFAULT_SPEC,
    "num_features": 16_384,
    "hidden_dim": 768,
    "seed": 42,
    "hierarchy_root_nodes": 128,
}

#: Metric names returned by :func:`evaluate` (without the prefix): the fields of sae-lens's
#: ``SyntheticDataEvalResult`` as its ``to_log_dict`` names them, with their meaning and
#: direction (None: no preferred direction; compare against ``true_l0`` / 1.0). Defined in the
#: metric registry (``aenbench.metric_registry.SYNTHSAE_METRICS``), with every other metric.
METRICS: dict[str, tuple[str, bool | None]] = SYNTHSAE_METRICS


# --------------------------------------------------------------------------- spec → model


def resolve_spec(spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """``spec`` merged over :data:`DEFAULT_SPEC`; raises ``ValueError`` on unknown keys."""
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(DEFAULT_SPEC))
    if unknown:
        raise ValueError(f"unknown synthsae spec keys {unknown}; allowed: {', '.join(sorted(DEFAULT_SPEC))}")
    full = {**DEFAULT_SPEC, **spec}
    if not isinstance(full["seed"], int) or isinstance(full["seed"], bool):
        # sae-lens regenerates the per-feature magnitudes from the seed on load: None would not round-trip
        raise ValueError(f"synthsae spec needs an integer seed, got {full['seed']!r}")
    return full


def spec_to_config(spec: dict[str, Any] | None = None) -> SyntheticModelConfig:
    """The sae-lens :class:`SyntheticModelConfig` of a flat spec (see the module docstring)."""
    s = resolve_spec(spec)
    branching = s["hierarchy_branching_factor"]
    if isinstance(branching, (list, tuple)):
        branching = (int(branching[0]), int(branching[1]))
    hierarchy = None
    if s["hierarchy_root_nodes"] > 0:
        hierarchy = HierarchyConfig(
            total_root_nodes=int(s["hierarchy_root_nodes"]),
            branching_factor=branching,
            max_depth=int(s["hierarchy_max_depth"]),
            mutually_exclusive_portion=float(s["hierarchy_mutually_exclusive_portion"]),
            mutually_exclusive_min_depth=int(s["hierarchy_mutually_exclusive_min_depth"]),
            mutually_exclusive_max_depth=s["hierarchy_mutually_exclusive_max_depth"],
            compensate_probabilities=bool(s["hierarchy_compensate_probabilities"]),
            scale_children_by_parent=bool(s["hierarchy_scale_children_by_parent"]),
        )
    correlation = None
    if s["correlation_rank"] > 0:
        correlation = LowRankCorrelationConfig(rank=int(s["correlation_rank"]),
                                               correlation_scale=float(s["correlation_scale"]))
    orthogonalization = None
    if s["orthogonalization_steps"] > 0:
        orthogonalization = OrthogonalizationConfig(num_steps=int(s["orthogonalization_steps"]),
                                                    lr=float(s["orthogonalization_lr"]))
    std: float | FoldedNormalMagnitudeConfig = float(s["magnitude_std_mean"])
    if s["magnitude_std_std"] > 0:
        std = FoldedNormalMagnitudeConfig(mean=float(s["magnitude_std_mean"]), std=float(s["magnitude_std_std"]))
    bias = float(s["bias"])
    return SyntheticModelConfig(
        num_features=int(s["num_features"]),
        hidden_dim=int(s["hidden_dim"]),
        firing_probability=ZipfianFiringProbabilityConfig(
            exponent=float(s["zipf_exponent"]), max_prob=float(s["zipf_max_prob"]), min_prob=float(s["zipf_min_prob"])
        ),
        hierarchy=hierarchy,
        orthogonalization=orthogonalization,
        correlation=correlation,
        mean_firing_magnitudes=LinearMagnitudeConfig(start=float(s["magnitude_mean_start"]),
                                                     end=float(s["magnitude_mean_end"])),
        std_firing_magnitudes=std,
        bias=bias if bias > 0 else False,
        seed=int(s["seed"]),
    )


def build_synthetic_model(spec: dict[str, Any] | None = None, device: str = "cpu") -> SyntheticModel:
    """Build the teacher of ``spec`` with sae-lens's ``SyntheticModel``.

    Deterministic given the spec: sae-lens draws every component under
    ``temporary_seed(seed)`` (and restores torch's global RNG afterwards)."""
    return SyntheticModel(spec_to_config(spec), device=device)


INTEGRITY_FILE = "aenbench_integrity.json"  # the sha256 of every file of the saved teacher


class TeacherIntegrityError(RuntimeError):
    """A saved teacher whose files do not match the sha256 recorded when it was saved."""


def _file_digests(folder: Path) -> dict[str, str]:
    from aenbench.io import sha256_file

    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != INTEGRITY_FILE}


def save_model(model: SyntheticModel, path: str | Path) -> None:
    """Write the teacher with sae-lens's ``SyntheticModel.save`` into the folder ``path``,
    built aside and renamed into place (a killed job leaves no partial teacher), with
    ``aenbench_integrity.json``: the sha256 of each file (sae-lens's config, which holds the
    settings that made it, included)."""
    from aenbench.io import write_json

    with atomic_dir(path) as tmp:
        model.save(tmp)
        write_json(tmp / INTEGRITY_FILE, {"format": 1, "files": _file_digests(tmp)})


def _rebuild_hint(path: str | Path) -> str:
    return (f"delete it and rebuild it: snakemake {path} --force --cores 1 (rule synthsae_teacher); the SAEs "
            "trained on it are retrained on the rebuilt one")


def verify_model_dir(path: str | Path) -> None:
    """Check a saved teacher against its ``aenbench_integrity.json``; raise TeacherIntegrityError
    naming the path, the file and the rule to rerun. A teacher saved before that file existed
    is loaded with a warning (it cannot be checked)."""
    import json
    import logging

    path = Path(path)
    fix = _rebuild_hint(path)
    side = path / INTEGRITY_FILE
    if not side.exists():
        logging.getLogger(__name__).warning("teacher %s has no %s (saved by an older version): its content cannot "
                                            "be checked; to check it, %s", path, INTEGRITY_FILE, fix)
        return
    try:
        want = json.loads(side.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise TeacherIntegrityError(f"teacher {path}: {INTEGRITY_FILE} is not readable ({err}); {fix}") from err
    got = _file_digests(path)
    # a hidden file (Snakemake's .snakemake_timestamp in a directory output) is not the teacher's
    for name in sorted(set(want) | {n for n in got if not n.startswith(".")}):
        if want.get(name) != got.get(name):
            why = ("is missing" if name not in got else "is not recorded" if name not in want
                   else f"has sha256 {got[name][:16]}…, {INTEGRITY_FILE} recorded {want[name][:16]}…")
            raise TeacherIntegrityError(f"teacher {path} is corrupted: {name} {why}; {fix}")


def load_model(path: str | Path, device: str = "cpu", spec: dict[str, Any] | None = None) -> SyntheticModel:
    """Load a teacher written by :func:`save_model` (``SyntheticModel.load_from_disk``), once its
    files match their recorded sha256 (:func:`verify_model_dir`); with ``spec``, its saved
    config must be the one ``spec`` resolves to.

    sae-lens's loader draws a throw-away random dictionary from torch's global RNG before it
    overwrites it with the saved one; the global RNG state is restored here so that loading the
    teacher does not shift anything seeded before it."""
    verify_model_dir(path)
    with _forked_rng(device):
        model = SyntheticModel.load_from_disk(path, device=device)
    if spec is not None and model.cfg != spec_to_config(spec):
        raise TeacherIntegrityError(
            f"teacher {path} was made with other settings than {resolve_spec(spec)}; {_rebuild_hint(path)}")
    return model


# --------------------------------------------------------------------------- stream


def _cuda_index(device: str | torch.device) -> int | None:
    d = torch.device(device)
    if d.type != "cuda":
        return None
    return d.index if d.index is not None else torch.cuda.current_device()


@contextlib.contextmanager
def _forked_rng(device: str | torch.device) -> Iterator[None]:
    idx = _cuda_index(device)
    with torch.random.fork_rng(devices=[] if idx is None else [idx]):
        yield


class SyntheticStream(Iterator[torch.Tensor]):
    """Infinite iterator of ``x_BD`` float32 batches from a sae-lens ``SyntheticModel``.

    sae-lens samples from torch's global RNG; this stream keeps its own RNG state (seeded once
    from ``seed``) and swaps it in only while a batch is drawn, so the batches depend on
    ``seed`` alone — not on what the SAE, the trainer or anything else draws in between — and
    the global RNG is left as it was. That is what ``aenbench.training.train_sae`` needs to
    resume a checkpoint by rebuilding the stream and fast-forwarding it.

    ``with_features=True`` makes ``next`` return ``(x_BD, features_BN)`` (the true feature
    activations) for diagnostics.
    """

    def __init__(self, model: SyntheticModel, batch_size: int, seed: int, with_features: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self.model = model
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.with_features = with_features
        self._cuda = _cuda_index(model.device)
        with _forked_rng(model.device):
            torch.manual_seed(self.seed)
            self._cpu_state = torch.get_rng_state()
            self._cuda_state = torch.cuda.get_rng_state(self._cuda) if self._cuda is not None else None

    def __iter__(self) -> SyntheticStream:
        return self

    def __next__(self):  # type: ignore[override]
        with _forked_rng(self.model.device):
            torch.set_rng_state(self._cpu_state)
            if self._cuda is not None:
                torch.cuda.set_rng_state(self._cuda_state, self._cuda)
            x_BD, f_BN = self.model.sample_with_features(self.batch_size)
            self._cpu_state = torch.get_rng_state()
            if self._cuda is not None:
                self._cuda_state = torch.cuda.get_rng_state(self._cuda)
        x_BD = x_BD.to(torch.float32)
        return (x_BD, f_BN) if self.with_features else x_BD


def activation_stream(model: SyntheticModel, batch_size: int, seed: int) -> SyntheticStream:
    """The training stream for ``train_sae``: infinite, deterministic per ``seed``."""
    return SyntheticStream(model, batch_size, seed)


# --------------------------------------------------------------------------- evaluation


def evaluate(
    sae: Any,
    model: SyntheticModel,
    n_samples: int,
    seed: int,
    *,
    batch_size: int = 8192,
    activation_scaler: Any = None,
    prefix: str = METRIC_PREFIX,
) -> dict[str, dict[str, float]]:
    """sae-lens's synthetic evaluation of ``sae`` (training or inference SAE) against ``model``.

    Runs :func:`sae_lens.synthetic.eval_sae_on_synthetic_data` on ``n_samples`` fresh samples
    drawn with torch's RNG seeded by ``seed`` (the global RNG is restored afterwards; sae-lens's
    call leaves the SAE in eval mode, the SAE's own mode is restored too) and returns
    ``{"synth_eval": result.to_log_dict(prefix)}`` with every value a float. Names, with the
    default prefix ``"synthetic/"`` (sae-lens's own for ``SyntheticSAERunner`` evals), are
    ``synthetic/`` + each key of :data:`METRICS`. The prefix keeps them apart from the spiked
    track's ``MCC`` and ``shrinkage`` (another definition) in a flattened leaderboard row.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be ≥ 1, got {n_samples}")
    was_training = sae.training
    try:
        with _forked_rng(model.device):
            torch.manual_seed(int(seed))
            result = eval_sae_on_synthetic_data(
                sae=sae,
                feature_dict=model.feature_dict,
                activations_generator=model.activation_generator,
                num_samples=int(n_samples),
                batch_size=min(int(batch_size), int(n_samples)),
                activation_scaler=activation_scaler,
            )
    finally:
        sae.train(was_training)
    values = {name: float(value) for name, value in result.to_log_dict(prefix=prefix).items()}
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    if bad:
        raise ValueError(f"non-finite synthetic eval metrics: {bad}")
    return {"synth_eval": values}


def teacher_summary(model: SyntheticModel, n_samples: int = 20_000, seed: int = 0) -> dict[str, float]:
    """A few teacher diagnostics for the teacher's JSON: true L0 on ``n_samples`` samples
    (seeded), features in the hierarchy, and sae-lens's superposition statistics."""
    from sae_lens.synthetic import compute_superposition_stats

    _, f_BN = next(SyntheticStream(model, n_samples, seed, with_features=True))
    sup = compute_superposition_stats(model.feature_dict)
    n_hier = len(model.hierarchy.feature_indices_used) if model.hierarchy is not None else 0
    probs = model.activation_generator.firing_probabilities
    return {
        "true_l0": float((f_BN > 0).sum(dim=1).float().mean()),
        "n_features_in_hierarchy": float(n_hier),
        "n_probabilities_clamped_at_1": float((probs >= 1.0).sum()),
        "mean_max_abs_cos_sim": float(sup.mean_max_abs_cos_sim),
    }
