"""The synthetic track: teacher → SAEs of one family → one SAEBench-style JSON per SAE.

These are the functions the Snakemake rules call (``workflow/scripts/synthetic_*.py``).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from sae_lens import SAE
from tqdm.auto import tqdm

from aenbench import metrics as M
from aenbench.io import atomic_dir, write_json, write_with
from aenbench.provenance import git_commit, versions
from aenbench.records import add_training_metrics, make_record, run_block
from aenbench.saes.aen import ARCHITECTURE as AEN_ARCHITECTURE
from aenbench.stability import sae_stability
from aenbench.sweeps import run_hyperparameters
from aenbench.synthetic.spiked import SpikedStream, spiked_dictionary, teacher_diagnostics
from aenbench.training import build_training_sae, checkpoint_root, fingerprint, resolve_device, train_sae

log = logging.getLogger(__name__)

EVAL_TYPE_ID = "aenbench_synthetic_spiked"


def make_teacher(spec: dict[str, Any], dictionary_path: str | Path, diagnostics_path: str | Path) -> dict[str, Any]:
    """Draw the spiked dictionary of ``spec`` (n, m, k, rho, dictionary_seed) and its diagnostics."""
    d_MN = spiked_dictionary(spec["n"], spec["m"], spec["rho"], spec["dictionary_seed"])
    meta = {k: str(spec[k]) for k in ("n", "m", "k", "rho", "dictionary_seed")}
    write_with(dictionary_path, lambda tmp: save_file({"D_MN": d_MN.contiguous()}, str(tmp), metadata=meta))
    diag = teacher_diagnostics(d_MN, spec["k"], spec["n_diagnostic_supports"], seed=spec["dictionary_seed"])
    out = {"spec": spec, "diagnostics": diag, "git_commit": git_commit(), "versions": versions()}
    write_json(diagnostics_path, out)
    return out


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
    training)`` the metric groups of a trained SAE; ``teacher`` identifies the ground truth in the
    run's fingerprint and record."""

    track: str
    eval_type_id: str
    d_in: int
    d_sae: int
    make_stream: Callable[[int, int], Any]
    evaluate: Callable[[SAE[Any], Any], dict[str, dict[str, float]]]
    teacher: dict[str, Any]
    eval_config: dict[str, Any]


def spiked_data(dictionary_path: str | Path, spec: dict[str, Any], train: dict[str, Any]) -> TeacherData:
    """The spiked teacher of ``spec`` (its dictionary from ``dictionary_path``) as TeacherData."""
    d_MN = load_file(str(dictionary_path))["D_MN"]
    magnitude = tuple(spec["magnitude"])

    def evaluate(inference_sae: SAE[Any], sae: Any) -> dict[str, dict[str, float]]:
        objective = sae if sae.cfg.architecture() == AEN_ARCHITECTURE else None
        return evaluate_on_spiked(inference_sae, d_MN, spec["k"], train["eval_samples"], train["eval_seed"],
                                  magnitude, objective_sae=objective)

    return TeacherData(
        track="synthetic", eval_type_id=EVAL_TYPE_ID, d_in=spec["n"], d_sae=spec["m"],
        make_stream=lambda seed, batch: SpikedStream(d_MN, spec["k"], batch, seed=seed, low=magnitude[0],
                                                     high=magnitude[1]),
        evaluate=evaluate, teacher=spec,
        eval_config={"n_eval_samples": train["eval_samples"], "eval_seed": train["eval_seed"]},
    )


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
    """Train every run of one family on one spiked dataset (:func:`train_runs`)."""
    return train_runs(data=spiked_data(dictionary_path, spec, train), out_dir=out_dir, dataset=dataset,
                      family_name=family_name, family=family, runs=runs, train=train, arch_defaults=arch_defaults,
                      device=device, checkpoint_dir=checkpoint_dir)


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
) -> list[dict[str, Any]]:
    """Train every run of one family on one synthetic ground truth, in one process (sae-lens
    costs seconds to import), and write ``out_dir/<run_id>/{sae/, metrics.json}``. The folder is
    built aside and renamed into place, so a killed job leaves no partial results.

    Checkpoints go to ``checkpoint_dir`` (default: ``checkpoint_root(out_dir)``, outside the
    job's output): every ``train.checkpoint_every`` steps per run, and each finished run in full,
    so a rerun after a kill resumes the unfinished run and copies the finished ones. They are
    deleted once the family's folder is in place."""
    device = resolve_device(device)
    ckpt_root = Path(checkpoint_dir) if checkpoint_dir is not None else checkpoint_root(out_dir)
    every = int(train.get("checkpoint_every", 1000))
    results = []
    with atomic_dir(out_dir) as tmp_dir:
        for run_id, row in tqdm(runs, desc=f"{dataset}/{family_name}", unit="sae"):
            params = run_hyperparameters(family, row, arch_defaults)
            seed = int(row["seed"])
            fp_obj = {"architecture": family["architecture"], "params": params, "seed": seed,
                      "spec": data.teacher, "train": train, "device": device}
            if data.track != "synthetic":
                fp_obj["track"] = data.track
            run_fp = fingerprint(fp_obj)
            run_ckpt = ckpt_root / run_id
            done = run_ckpt / "done"
            if (done / "metrics.json").exists() and (done / "fingerprint").read_text() == run_fp:
                shutil.copytree(done, tmp_dir / run_id, ignore=shutil.ignore_patterns("fingerprint"))
                results.append(json.loads((done / "metrics.json").read_text()))
                log.info("%s %s: finished before the job was interrupted; not retrained", family_name, run_id)
                continue
            sae = build_training_sae(family["architecture"], data.d_in, data.d_sae, params, seed, device)
            res = train_sae(
                sae, data.make_stream(seed, train["batch_size"]), steps=train["steps"],
                batch_size=train["batch_size"], lr=train["lr"],
                dead_window_steps=train["dead_window_steps"],
                auxk_dead_window_steps=train["auxk_dead_window_steps"], device=device,
                checkpoint_dir=run_ckpt, checkpoint_every=every, run_fingerprint=run_fp,
            )
            run_dir = tmp_dir / run_id
            sae.save_inference_model(str(run_dir / "sae"))
            inference_sae = SAE.load_from_disk(str(run_dir / "sae"), device=device)
            groups = data.evaluate(inference_sae, sae)
            add_training_metrics(groups, res, sae, train["batch_size"])
            record = make_record(
                eval_type_id=data.eval_type_id,
                eval_config={
                    **data.eval_config,
                    "dead_window_steps": res.dead_window_steps,
                    "dead_window_tokens": res.dead_window_steps * train["batch_size"],
                },
                eval_id=f"{dataset}/{family_name}/{run_id}",
                groups=groups,
                sae_cfg=sae.cfg.to_dict(),
                run_id=run_id,
                run=run_block(
                    track=data.track, dataset=dataset, family_name=family_name, family=family, row=row,
                    params=params, seed=seed, res=res, train=train, device=device,
                    teacher=data.teacher,
                ),
            )
            if getattr(sae, "adaptive_trace", None):
                # the EMA / adaptive-weight state over training (every TRACE_EVERY steps)
                record["adaptive_trace"] = sae.adaptive_trace
            write_json(run_dir / "metrics.json", record)
            results.append(record)
            with atomic_dir(done) as tmp_done:  # the finished run survives a kill of the job
                shutil.copytree(run_dir, tmp_done, dirs_exist_ok=True)
                (tmp_done / "fingerprint").write_text(run_fp)
            shutil.rmtree(run_ckpt / "latest", ignore_errors=True)
            flat = {k: v for g in groups.values() for k, v in g.items()}
            log.info("%s %s: L0=%.2f dead=%.1f%% EV=%.3f (%.1fs)", family_name, run_id,
                     flat.get("L0", float("nan")), flat.get("dead_pct", float("nan")),
                     flat.get("EV", float("nan")), res.seconds)
    shutil.rmtree(ckpt_root, ignore_errors=True)
    return results
