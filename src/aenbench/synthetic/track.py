"""The synthetic track: teacher → SAEs of one family → one SAEBench-style JSON per SAE.

These are the functions the Snakemake rules call (``workflow/scripts/synthetic_*.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import save_file
from sae_lens import SAE

from aenbench import metrics as M
from aenbench.io import write_json, write_with
from aenbench.llm.resources import sha256_file
from aenbench.provenance import git_commit, versions
from aenbench.records import record_from_training
from aenbench.saes.aen import ARCHITECTURE as AEN_ARCHITECTURE
from aenbench.stability import sae_stability
from aenbench.stages import (
    DEFAULT_STACK_SIZE, EVALUATION_CODE, TRAINING_CODE, LockstepItem, code_hash, evaluate_stage, load_training_sae,
    plan_runs, train_lockstep_stage, train_stage, training_settings,
)
from aenbench.sweeps import eval_settings
from aenbench.synthetic.spiked import SpikedStream, spiked_dictionary, teacher_diagnostics
from aenbench.training import build_training_sae, checkpoint_root, resolve_device

log = logging.getLogger(__name__)

EVAL_TYPE_ID = "aenbench_synthetic_spiked"


TEACHER_FORMAT = "2"  # 2: the metadata records the sha256 of D_MN
TEACHER_SETTINGS = ("n", "m", "rho", "dictionary_seed")  # what decides the dictionary's content


class TeacherError(RuntimeError):
    """A teacher dictionary that does not match its recorded hash or the settings asked for."""


def _tensor_sha256(t: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def make_teacher(spec: dict[str, Any], dictionary_path: str | Path, diagnostics_path: str | Path) -> dict[str, Any]:
    """Draw the spiked dictionary of ``spec`` (n, m, k, rho, dictionary_seed) and its diagnostics.
    The safetensors metadata records the settings that made it and the sha256 of ``D_MN``
    (checked by :func:`load_teacher_dictionary`)."""
    d_MN = spiked_dictionary(spec["n"], spec["m"], spec["rho"], spec["dictionary_seed"])
    meta = {k: str(spec[k]) for k in ("n", "m", "k", "rho", "dictionary_seed")}
    meta.update(format=TEACHER_FORMAT, D_MN_sha256=_tensor_sha256(d_MN))
    write_with(dictionary_path, lambda tmp: save_file({"D_MN": d_MN.contiguous()}, str(tmp), metadata=meta))
    diag = teacher_diagnostics(d_MN, spec["k"], spec["n_diagnostic_supports"], seed=spec["dictionary_seed"])
    out = {"spec": spec, "diagnostics": diag, "git_commit": git_commit(), "versions": versions(),
           "dictionary_sha256": sha256_file(dictionary_path)}
    write_json(diagnostics_path, out)
    return out


def teacher_rerun_hint(dictionary_path: str | Path) -> str:
    """How to rebuild a teacher dictionary: its Snakemake target and rule (workflow/rules/synthetic.smk)."""
    path = Path(dictionary_path)
    rule = "synthetic_teacher_replicate" if path.parent.name.startswith("teacher-d") else "synthetic_teacher"
    return (f"delete it and rebuild it: snakemake {path} --force --cores 1 (rule {rule}); the SAEs trained on it "
            "are retrained on the rebuilt one")


def load_teacher_dictionary(dictionary_path: str | Path, spec: dict[str, Any]) -> torch.Tensor:
    """``D_MN`` of the teacher at ``dictionary_path``, verified: readable, its settings (n, m, ρ,
    dictionary seed) those of ``spec``, its content the sha256 in its metadata. A dictionary
    written before the hash was recorded is accepted only when it equals the one ``spec`` draws.
    Raises TeacherError naming the path and the rule to rerun."""
    from safetensors import safe_open

    path = Path(dictionary_path)
    fix = teacher_rerun_hint(path)
    if not path.exists():
        raise TeacherError(f"teacher dictionary {path} is missing; {fix}")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            d_MN = f.get_tensor("D_MN")
    except Exception as err:  # truncated, a flipped header byte, no D_MN
        raise TeacherError(f"teacher dictionary {path} cannot be read ({type(err).__name__}: {err}); {fix}") from err
    wrong = [f"{k} {meta.get(k)!r} (asked for {str(spec[k])!r})" for k in TEACHER_SETTINGS
             if meta.get(k) != str(spec[k])]
    if wrong:
        raise TeacherError(f"teacher dictionary {path} was made with other settings: {', '.join(wrong)}; {fix}")
    want = meta.get("D_MN_sha256")
    if want is None:  # written before the hash was recorded: it must be what its settings draw
        if not torch.equal(d_MN, spiked_dictionary(spec["n"], spec["m"], spec["rho"], spec["dictionary_seed"])):
            raise TeacherError(f"teacher dictionary {path} records no content hash and differs from the dictionary "
                               f"its settings draw; {fix}")
        log.info("teacher dictionary %s: no recorded hash (older format); equal to the one its settings draw", path)
        return d_MN
    got = _tensor_sha256(d_MN)
    if got != want:
        raise TeacherError(f"teacher dictionary {path} is corrupted: D_MN has sha256 {got[:16]}…, its metadata "
                           f"recorded {want[:16]}…; {fix}")
    return d_MN


STABILITY_SAMPLES = 1024


def evaluate_on_spiked(
    sae: SAE[Any], d_MN: torch.Tensor, k: int, n_samples: int, seed: int, magnitude: tuple[float, float],
    objective_sae: Any | None = None,
) -> dict[str, dict[str, float]]:
    """Reconstruction, sparsity, shrinkage, dictionary and support metrics on fresh samples, and
    the stability group (``aenbench.stability.sae_stability``) on the first
    ``STABILITY_SAMPLES`` of them; ``objective_sae`` is the training SAE when its architecture
    has a convex coding objective (aen), for the FISTA gap."""
    stream = SpikedStream(d_MN, k, n_samples, seed=seed, low=magnitude[0], high=magnitude[1], with_codes=True)
    x_BN, h_BM = next(stream)
    with torch.no_grad():
        acts_BM = sae.encode(x_BN.to(sae.device)).cpu()
        xhat_BN = sae.decode(acts_BM.to(sae.device)).cpu()
        w_dec_MN = sae.W_dec.detach().cpu()
    dictionary, true_of_latent = M.dictionary_metrics(w_dec_MN, d_MN)
    x_stab_BN = x_BN[:STABILITY_SAMPLES].to(sae.device)
    # codes in units of their decoder rows (h_j ‖W_dec[j]‖), so that architectures whose decoder
    # rows are not unit-norm (sae-lens TopK, gated, ...) are on the same scale as AEN's
    stability = sae_stability(
        sae.encode, x_stab_BN, seed=seed, objective_sae=objective_sae, code_scale_M=sae.W_dec.detach().norm(dim=-1),
        w_dec_MN=sae.W_dec.detach(), b_dec_N=sae.b_dec.detach(),
    )
    return {
        "sparsity": M.sparsity_metrics(acts_BM),
        **M.by_group(M.reconstruction_metrics(x_BN, xhat_BN)),
        "dictionary": dictionary,
        "support": M.support_metrics(acts_BM, h_BM, true_of_latent, w_dec_MN.norm(dim=-1)),
        "stability": stability,
    }


@dataclass
class TeacherData:
    """What training on one synthetic ground truth needs, whatever the generator.

    ``make_stream(seed, batch_size)`` gives the training stream of a run (an iterator of x_BN
    batches that depends on its seed alone, so a resumed run replays it); ``evaluate(inference,
    objective)`` the metric groups of a trained SAE (``objective``: its training SAE when its
    architecture has a convex coding objective, for the FISTA gap; else None); ``teacher``
    identifies the ground truth in the run's record, ``teacher_sha256`` its content in the
    fingerprints."""

    track: str
    eval_type_id: str
    d_in: int
    d_sae: int
    make_stream: Callable[[int, int], Any]
    evaluate: Callable[[SAE[Any], Any], dict[str, dict[str, float]]]
    teacher: dict[str, Any]
    eval_config: dict[str, Any]
    teacher_sha256: str


def spiked_data(dictionary_path: str | Path, spec: dict[str, Any], evaluation: dict[str, Any]) -> TeacherData:
    """The spiked teacher of ``spec`` (its dictionary from ``dictionary_path``) as TeacherData;
    ``evaluation`` holds ``eval_samples`` and ``eval_seed`` (a train stage may pass ``{}``)."""
    d_MN = load_teacher_dictionary(dictionary_path, spec)
    magnitude = tuple(spec["magnitude"])

    def evaluate(inference_sae: SAE[Any], objective: Any | None) -> dict[str, dict[str, float]]:
        return evaluate_on_spiked(inference_sae, d_MN, spec["k"], evaluation["eval_samples"],
                                  evaluation["eval_seed"], magnitude, objective_sae=objective)

    return TeacherData(
        track="synthetic", eval_type_id=EVAL_TYPE_ID, d_in=spec["n"], d_sae=spec["m"],
        make_stream=lambda seed, batch: SpikedStream(d_MN, spec["k"], batch, seed=seed, low=magnitude[0],
                                                     high=magnitude[1]),
        evaluate=evaluate, teacher=spec,
        eval_config={"n_eval_samples": evaluation.get("eval_samples"), "eval_seed": evaluation.get("eval_seed")},
        teacher_sha256=sha256_file(dictionary_path),
    )


def trained_dir_of(runs_dir: str | Path) -> Path:
    """Where the train stage lays out the SAEs that the evaluation stage writes to ``runs_dir``:
    the last ``runs`` / ``ablations`` / ``variants`` component of the path becomes ``trained`` /
    ``ablations_trained`` / ``variants_trained`` (the DAG's layout, workflow/rules/*.smk)."""
    parts = list(Path(runs_dir).parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in ("runs", "ablations", "variants"):
            parts[i] = "trained" if parts[i] == "runs" else f"{parts[i]}_trained"
            return Path(*parts)
    return Path(runs_dir).with_name(Path(runs_dir).name + ".trained")


def train_family(
    *,
    dictionary_path: str | Path,
    out_dir: str | Path,
    dataset: str,
    family_name: str,
    family: dict[str, Any],
    runs: list[tuple[str, dict[str, Any]]],
    spec: dict[str, Any],
    train: dict[str, Any],
    arch_defaults: dict[str, dict[str, Any]],
    device: str = "auto",
    checkpoint_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Both stages in one call (for scripts and tests): train every run of one family on one
    spiked dataset into ``trained_dir_of(out_dir)``, then evaluate them into ``out_dir``.
    Checkpoints go to ``checkpoint_dir`` (default ``checkpoint_root(out_dir)``)."""
    data = spiked_data(dictionary_path, spec, eval_settings(train))
    trained = trained_dir_of(out_dir)
    train_runs(data=data, out_dir=trained, dataset=dataset, family_name=family_name, family=family, runs=runs,
               train=train, arch_defaults=arch_defaults, device=device,
               checkpoint_dir=checkpoint_dir if checkpoint_dir is not None else checkpoint_root(out_dir))
    return evaluate_runs(data=data, trained_dir=trained, out_dir=out_dir, dataset=dataset, device=device)


def train_runs(
    *,
    data: TeacherData,
    out_dir: str | Path,
    dataset: str,
    family_name: str,
    family: dict[str, Any],
    runs: list[tuple[str, dict[str, Any]]],
    train: dict[str, Any],
    arch_defaults: dict[str, dict[str, Any]],
    device: str = "auto",
    checkpoint_dir: str | Path | None = None,
    code_files: tuple[str | Path, ...] = (),
) -> list[dict[str, Any]]:
    """The train stage of one family on one synthetic ground truth (:func:`aenbench.stages.train_stage`):
    ``out_dir/<run_id>/{sae/, training.json}``, training only the runs not in the store.
    ``code_files`` are extra files whose content decides the weights (a variant's plugin)."""
    device = resolve_device(device)
    planned, settings = _planned(data, family, runs, train, arch_defaults, device, code_files)
    return train_stage(
        runs=planned, out_dir=out_dir, label=f"{dataset}/{family_name}", family_name=family_name, family=family,
        build=lambda r: build_training_sae(family["architecture"], data.d_in, data.d_sae, r.params, r.seed, device),
        stream=lambda r: data.make_stream(r.seed, train["batch_size"]), train=settings, device=device,
        info={"track": data.track, "dataset": dataset, "teacher": data.teacher,
              "teacher_sha256": data.teacher_sha256},
        checkpoint_dir=checkpoint_dir, checkpoint_every=int(train.get("checkpoint_every", 1000)),
        stack_size=int(train.get("stack_size", DEFAULT_STACK_SIZE)),
    )


def _planned(data: TeacherData, family: dict[str, Any], runs: list[tuple[str, dict[str, Any]]], train: dict[str, Any],
             arch_defaults: dict[str, dict[str, Any]], device: str, code_files: tuple[str | Path, ...] = ()):
    """A family's runs on ``data`` with their fingerprints, and the training settings they name."""
    settings = training_settings(train, family["architecture"])
    identity = {"track": data.track, "teacher": data.teacher, "teacher_sha256": data.teacher_sha256,
                "train": settings, "device": device, "code": code_hash(TRAINING_CODE, code_files)}
    return plan_runs(family, runs, arch_defaults, identity), settings


def train_runs_lockstep(*, data: TeacherData, parts: list[tuple[str | Path, str, dict[str, Any],
                                                               list[tuple[str, dict[str, Any]]], dict[str, dict[str, Any]]]],
                        dataset: str, train: dict[str, Any], device: str = "auto") -> list[list[dict[str, Any]]]:
    """The train stage of several families on one ground truth at once: ``parts`` is
    ``(out_dir, family_name, family, runs, arch_defaults)`` per family. The runs missing from the
    store train in lockstep per seed, the ``aen`` runs of every family in shared stacks
    (:func:`aenbench.stages.train_lockstep_stage`; one batch of the seed's stream per step for all,
    the batch each would get alone), then each family is laid out as :func:`train_runs` does
    (from the store, training nothing). The weights are those of :func:`train_runs` per family:
    on CPU a SAE's weights do not depend on which SAEs share its stack."""
    device = resolve_device(device)
    items = []
    for out_dir, family_name, family, runs, arch_defaults in parts:
        planned, _ = _planned(data, family, runs, train, arch_defaults, device)
        items.append(LockstepItem(planned, Path(out_dir), family_name, family,
                                  lambda r, a=family["architecture"]: build_training_sae(a, data.d_in, data.d_sae,
                                                                                         r.params, r.seed, device)))
    train_lockstep_stage(
        items=items, stream=lambda seed: data.make_stream(seed, train["batch_size"]),
        train=training_settings(train, AEN_ARCHITECTURE), device=device,
        info={"track": data.track, "dataset": dataset, "teacher": data.teacher, "teacher_sha256": data.teacher_sha256},
        label=f"{dataset} ({len(items)} families in lockstep)", checkpoint_dir=checkpoint_root(Path(parts[0][0])),
        checkpoint_every=int(train.get("checkpoint_every", 1000)),
        stack_size=int(train.get("stack_size", DEFAULT_STACK_SIZE)))
    return [train_runs(data=data, out_dir=out_dir, dataset=dataset, family_name=name, family=family, runs=runs,
                       train=train, arch_defaults=defaults, device=device)
            for out_dir, name, family, runs, defaults in parts]


def evaluate_runs(*, data: TeacherData, trained_dir: str | Path, out_dir: str | Path, dataset: str,
                  device: str = "auto", code_files: tuple[str | Path, ...] = ()) -> list[dict[str, Any]]:
    """The evaluation stage (:func:`aenbench.stages.evaluate_stage`): each saved SAE read back with
    sae-lens's ``SAE.load_from_disk`` and evaluated on fresh teacher samples; the FISTA gap of
    an ``aen`` SAE uses its training objective (its training SAE rebuilt from the store)."""
    device = resolve_device(device)

    def evaluate(items: list[tuple[Path, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        out = {}
        for folder, trained in items:
            inference = SAE.load_from_disk(str(folder / "sae"), device=device)
            objective = (load_training_sae(trained, folder, device)
                         if trained["architecture"] == AEN_ARCHITECTURE else None)
            groups = data.evaluate(inference, objective)
            out[trained["run_id"]] = record_from_training(
                trained, track=data.track, dataset=dataset, eval_type_id=data.eval_type_id,
                eval_config=data.eval_config, groups=groups, teacher=data.teacher)
        return out

    identity = {"eval": data.eval_config, "teacher_sha256": data.teacher_sha256, "device": device,
                "code": code_hash(EVALUATION_CODE, code_files)}
    return evaluate_stage(trained_dir=trained_dir, out_dir=out_dir, label=f"{dataset} eval {Path(out_dir).name}",
                          evaluate=evaluate, identity=identity)
