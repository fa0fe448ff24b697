"""The SynthSAEBench-style track: a ``sae_lens.synthetic`` teacher (aenbench.synthetic.synthsae)
→ the SAEs of one family, trained through the same path as the spiked track
(``synthetic.track.train_runs``) → one SAEBench-style JSON per SAE.

Each record carries sae-lens's own synthetic evals (group ``synth_eval``: ``synthetic/mcc``,
``synthetic/uniqueness``, ``synthetic/classification/f1_score``, ... as sae-lens names them, so
they compare with the published SynthSAEBench table) and, on the same samples, our sparsity,
reconstruction and stability groups (the FISTA gap for aen SAEs too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from aenbench import metrics as M
from aenbench.io import write_json
from aenbench.provenance import git_commit, versions
from aenbench.stability import sae_stability
from aenbench.stages import tree_sha256
from aenbench.sweeps import eval_settings
from aenbench.synthetic import synthsae
from aenbench.synthetic.track import (
    STABILITY_SAMPLES, TeacherData, evaluate_runs, train_runs, trained_dir_of,
)

TRACK = "synthsae"


def make_teacher(spec: dict[str, Any], model_dir: str | Path, summary_path: str | Path) -> dict[str, Any]:
    """Build the teacher of ``spec`` (overrides over ``synthsae.DEFAULT_SPEC``), save it with
    sae-lens's format and write its summary (true L0, hierarchy size, superposition)."""
    model = synthsae.build_synthetic_model(spec)
    synthsae.save_model(model, model_dir)
    out = {"spec": synthsae.resolve_spec(spec), "summary": synthsae.teacher_summary(model),
           "git_commit": git_commit(), "versions": versions()}
    write_json(summary_path, out)
    return out


def synthsae_data(model_dir: str | Path, spec: dict[str, Any], width: int, evaluation: dict[str, Any]) -> TeacherData:
    """The teacher saved in ``model_dir`` as TeacherData; ``evaluation`` holds ``eval_samples`` and
    ``eval_seed`` (a train stage may pass ``{}``)."""
    train = evaluation
    model = synthsae.load_model(model_dir, spec=spec)  # refused when its files or settings do not match
    resolved = synthsae.resolve_spec(spec)

    def evaluate(inference_sae: Any, objective: Any | None) -> dict[str, dict[str, float]]:
        groups = synthsae.evaluate(inference_sae, model, train["eval_samples"], train["eval_seed"])
        x_BN = next(synthsae.SyntheticStream(model, min(train["eval_samples"], 8192), train["eval_seed"]))
        with torch.no_grad():
            acts_BM = inference_sae.encode(x_BN.to(inference_sae.device))
            xhat_BN = inference_sae.decode(acts_BM).cpu()
        x_stab_BN = x_BN[:STABILITY_SAMPLES].to(inference_sae.device)
        groups["sparsity"] = M.sparsity_metrics(acts_BM.cpu())
        groups.update(M.by_group(M.reconstruction_metrics(x_BN, xhat_BN)))
        groups["stability"] = sae_stability(
            inference_sae.encode, x_stab_BN, seed=train["eval_seed"],
            objective_sae=objective,
            code_scale_M=inference_sae.W_dec.detach().norm(dim=-1),
            w_dec_MN=inference_sae.W_dec.detach(), b_dec_N=inference_sae.b_dec.detach(),
        )
        return groups

    return TeacherData(
        track=TRACK, eval_type_id=synthsae.EVAL_TYPE_ID, d_in=resolved["hidden_dim"], d_sae=width,
        make_stream=lambda seed, batch: synthsae.activation_stream(model, batch, seed),
        evaluate=evaluate, teacher={**resolved, "width": width},
        eval_config={"n_eval_samples": train.get("eval_samples"), "eval_seed": train.get("eval_seed"),
                     "evaluator": "sae_lens.synthetic.eval_sae_on_synthetic_data"},
        teacher_sha256=tree_sha256(model_dir),
    )


def train_family(*, model_dir: str | Path, out_dir: str | Path, dataset: str, family_name: str,
                 family: dict[str, Any], runs: list[tuple[str, dict[str, Any]]], spec: dict[str, Any], width: int,
                 train: dict[str, Any], arch_defaults: dict[str, dict[str, Any]], device: str = "auto") -> list[dict]:
    """Both stages in one call (for scripts and tests): train into ``trained_dir_of(out_dir)``,
    then evaluate into ``out_dir``."""
    data = synthsae_data(model_dir, spec, width, eval_settings(train))
    trained = trained_dir_of(out_dir)
    train_runs(data=data, out_dir=trained, dataset=dataset, family_name=family_name, family=family, runs=runs,
               train=train, arch_defaults=arch_defaults, device=device)
    return evaluate_runs(data=data, trained_dir=trained, out_dir=out_dir, dataset=dataset, device=device)
