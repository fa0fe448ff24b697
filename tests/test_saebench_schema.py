"""Our JSONs against SAEBench's own pydantic classes (sae-bench 0.6.0, installed by
scripts/install.sh): every per-SAE ``metrics.json`` is a ``BaseEvalOutput``, an LLM SAE's
``core.json`` a ``CoreEvalOutput``. The records are built by the code that builds them in the
eval jobs (``aenbench.records``, ``aenbench.llm.evaluate``, ``aenbench.saebench``) on tiny inputs."""

import copy
import json
import warnings
from types import SimpleNamespace

import pytest
import torch
from pydantic import TypeAdapter, ValidationError

with warnings.catch_warnings():  # sae-bench 0.6.0's classmethod validators, deprecated since pydantic 2.12
    warnings.filterwarnings("ignore", message="Using `@model_validator` with mode='after' on a classmethod")
    from sae_bench.evals.base_eval_output import BaseEvalOutput
    from sae_bench.evals.core.eval_output import CoreEvalOutput

from aenbench.llm.evaluate import activation_metrics, core_metrics, downstream_metrics
from aenbench.records import SAEBENCH_CORE_GROUP, record_from_training, sae_bench_commit_hash, training_metrics
from aenbench.saebench import CORE_FILE, write_core
from aenbench.training import build_training_sae

N, M = 8, 16


def validate(cls, text: str):
    return TypeAdapter(cls).validate_json(text)


def error_locs(cls, text: str) -> set[tuple]:
    with pytest.raises(ValidationError) as err:
        validate(cls, text)
    return {e["loc"] for e in err.value.errors()}


def trained_json(sae, architecture: str, params: dict, run_id: str) -> dict:
    """A trained run's training.json, with the fields aenbench.stages._write_trained gives it."""
    res = SimpleNamespace(steps=10, seconds=0.5, dead_window_steps=5, dead_mask_M=torch.zeros(M, dtype=torch.bool))
    train = {"batch_size": 4, "lr": 1e-3, "max_grad_norm": None}
    return {
        "fingerprint": "f" * 16, "run_id": run_id, "family": architecture.upper(),
        "family_definition": {"architecture": architecture}, "architecture": architecture, "row": params,
        "hyperparameters": params, "seed": 0, "train": train, "device": "cpu", "d_in": N, "d_sae": M,
        "res": {"steps": res.steps, "seconds": res.seconds, "dead_window_steps": res.dead_window_steps},
        "training_groups": training_metrics(res, sae, train["batch_size"]), "adaptive_trace": None,
        "sae_cfg_dict": sae.cfg.to_dict(), "git_commit": "abc", "versions": {}, "weights_sha256": "0" * 64,
        "engine": {"name": "per_sae"},
        "acts_manifest": {"model": "tiny", "hook": "hook", "corpus": "packaged", "count": {}, "seed": 0},
    }


@pytest.fixture(scope="module")
def llm_record(one_layer_bridge):
    """An LLM SAE's record as aenbench.llm.track.evaluate_family builds it: activation metrics of
    the training SAE on normalised activations (with the raw norms), CE / KL of the splice."""
    from aenbench.llm.harvest import normalise

    torch.manual_seed(0)
    sae = build_training_sae("topk", N, M, {"k": 3, "aux_loss_coefficient": 0.0}, seed=0)
    raw = torch.randn(64, N) * 5 + 2
    groups = activation_metrics(sae, normalise(raw), input_norms_B=raw.norm(dim=-1))

    class Splice:  # the inference SAE: normalise, reconstruct, undo the scale
        dtype = torch.float32

        def __call__(self, x):
            s = x.norm(dim=-1, keepdim=True) / N ** 0.5
            return (sae.decode(sae.encode(x / s)) * s).detach()

    tokens = torch.randint(1, 11, (4, 6), generator=torch.Generator().manual_seed(2))
    groups["downstream"] = downstream_metrics(one_layer_bridge(N, scale=3.0), {"r": Splice()}, "hook", tokens, separator_id=0,
                                              mean_D=torch.zeros(N))["r"]
    trained = trained_json(sae, "topk", {"k": 3, "aux_loss_coefficient": 0.0}, "k~3_seed~0")
    eval_config = {"n_eval_tokens": len(raw), "ce_contexts": len(tokens), "context_size": tokens.shape[1],
                   "splice_positions": "all but position 0 and separators"}
    return record_from_training(trained, track="llm", dataset="tiny:hook", eval_type_id="aenbench_llm",
                                eval_config=eval_config, groups=groups, acts_manifest=trained["acts_manifest"])


def test_llm_metrics_json_is_a_base_eval_output_and_core_json_a_core_eval_output(llm_record, tmp_path):
    from aenbench.io import write_json

    write_json(tmp_path / "k~3_seed~0" / "metrics.json", llm_record)
    out = validate(BaseEvalOutput, (tmp_path / "k~3_seed~0" / "metrics.json").read_text())
    assert out.sae_bench_commit_hash == sae_bench_commit_hash() and out.sae_bench_commit_hash.startswith("aenbench@")
    assert 1.7e12 < out.datetime_epoch_millis < 1e13
    # the core-only values are not leaderboard metrics: they sit in eval_result_unstructured
    assert SAEBENCH_CORE_GROUP not in llm_record["eval_result_metrics"]
    assert SAEBENCH_CORE_GROUP in llm_record["eval_result_unstructured"]

    path = write_core(tmp_path, llm_record, batch_contexts=2)
    assert path == tmp_path / "k~3_seed~0" / CORE_FILE
    core = validate(CoreEvalOutput, path.read_text())
    m, down = core.eval_result_metrics, llm_record["eval_result_metrics"]["downstream"]
    assert core.eval_type_id == "core" and core.eval_config.n_eval_reconstruction_batches == 2
    assert m.model_performance_preservation.ce_loss_score == down["ce_recovered_zero"]
    assert m.model_performance_preservation.ce_loss_without_sae == down["ce_loss_clean"]
    assert m.model_behavior_preservation.kl_div_score == pytest.approx(
        1 - down["kl_with_sae"] / down["kl_zero_ablation"])
    assert m.sparsity.l0 == pytest.approx(llm_record["eval_result_metrics"]["sparsity"]["L0"])
    dead_pct_eval = llm_record["eval_result_metrics"]["sparsity"]["dead_pct_eval"]
    assert m.misc_metrics.frac_alive == pytest.approx(1 - dead_pct_eval / 100)
    assert m.token_stats.total_tokens_eval_reconstruction == 4 * 6
    assert m.token_stats.total_tokens_eval_sparsity_variance == 64
    assert core.eval_result_unstructured["activation_space"].startswith("model")


def test_synthetic_record_is_a_base_eval_output(tmp_path):
    from aenbench.io import write_json
    from aenbench.synthetic.spiked import spiked_dictionary
    from aenbench.synthetic.track import evaluate_on_spiked

    sae = build_training_sae("aen", N, M, {"adaptive": True, "l1_coefficient": 1e-3, "l2_coefficient": 1e-4}, seed=0)
    groups = evaluate_on_spiked(sae, spiked_dictionary(N, M, 0.5, seed=0), k=2, n_samples=32, seed=0,
                                magnitude=(0.5, 1.5), objective_sae=sae)
    trained = trained_json(sae, "aen", {"adaptive": True, "l1_coefficient": 1e-3, "l2_coefficient": 1e-4}, "r")
    record = record_from_training(trained, track="synthetic", dataset="rho0.5", eval_type_id="aenbench_synthetic",
                                  eval_config={}, groups=groups, teacher={"n": N, "m": M, "k": 2})
    write_json(tmp_path / "metrics.json", record)
    validate(BaseEvalOutput, (tmp_path / "metrics.json").read_text())
    assert record["eval_result_unstructured"] is None


def test_validation_catches_missing_fields(llm_record):
    old = copy.deepcopy(llm_record)
    for key in ("datetime_epoch_millis", "sae_bench_commit_hash"):
        del old[key]
    assert error_locs(BaseEvalOutput, json.dumps(old)) == {("datetime_epoch_millis",), ("sae_bench_commit_hash",)}
    # metrics.json is not a core output, and a core output missing a metric is caught
    assert ("eval_result_metrics", "model_behavior_preservation") in error_locs(CoreEvalOutput, json.dumps(llm_record))
    from aenbench.saebench import core_record

    core = core_record(llm_record, batch_contexts=2)
    del core["eval_result_metrics"]["sparsity"]["l1"]
    assert error_locs(CoreEvalOutput, json.dumps(core)) == {("eval_result_metrics", "sparsity", "l1")}


def test_core_metrics_at_model_scale_are_those_of_the_raw_activations():
    """With the raw norms, core_metrics of the training-space pair equals core_metrics of the
    rescaled pair (what the constant_norm_rescale inference SAE reads and returns)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, N, generator=g) * 4 + 1
    norms = x.norm(dim=-1)
    xn = x * (N ** 0.5 / norms[:, None])
    xhat_n = xn * 0.8 + 0.1 * torch.randn(50, N, generator=g)
    acts = torch.relu(torch.randn(50, M, generator=g))
    w_enc, w_dec = torch.randn(N, M, generator=g), torch.randn(M, N, generator=g)
    scaled = core_metrics(xn, xhat_n, acts, w_enc, w_dec, input_norms_B=norms)
    direct = core_metrics(x, xhat_n * (norms[:, None] / N ** 0.5), acts, w_enc, w_dec)
    for key, value in scaled.items():
        if key != "activation_space":
            assert value == pytest.approx(direct[key], rel=1e-6), key  # float32 inputs
    # SAEBench's weight metric: mean over latents of the max cosine to another latent
    unit = torch.nn.functional.normalize(w_dec.double(), dim=-1)
    cos = unit @ unit.T
    cos.fill_diagonal_(-2.0)
    assert scaled["average_max_decoder_cosine_sim"] == pytest.approx(cos.max(1).values.mean().item())
