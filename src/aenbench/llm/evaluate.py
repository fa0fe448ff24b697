"""Metrics of an SAE on LLM activations, including the downstream splice (method.md §4–5).

The SAEs are trained on per-token √d-normalised activations. The saved inference SAE carries
``normalize_activations="constant_norm_rescale"``, so its forward pass normalises its input and
undoes the scale on the output: spliced into the model it sees what it was trained on and hands
back activations at the model's own scale (the authors' pipeline fed raw activations instead).

Downstream convention (ours): at positions kept for training (not position 0, not separators)
the residual stream is replaced by the SAE's reconstruction, by zeros (zero-ablation) or by the
training mean (mean-ablation); position 0 and separators keep their clean activations. CE and KL
(clean ‖ patched) are averaged over next-token predictions made at kept positions.
``sae_lens_convention=True`` instead mirrors ``sae_lens.evals.get_recons_loss`` (splice where
the input is not a special token, zero-ablate everywhere), for the cross-check with
``sae_lens.evals.run_evals``.

:func:`core_metrics` adds, under the record group ``saebench_core`` (moved by
:func:`aenbench.records.make_record` into the record's ``eval_result_unstructured``), what
SAEBench's ``core`` eval reports and the other groups do not: see :mod:`aenbench.saebench`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from aenbench import metrics as M
from aenbench.records import SAEBENCH_CORE_GROUP


def latent_stats(acts_BM: torch.Tensor) -> dict[str, float]:
    """Firing-rate entropy (bits; max log2 m) and the share of firings by the top 10% latents."""
    fires_M = (acts_BM != 0).sum(0).double()
    total = fires_M.sum()
    if total == 0:
        return {"firing_entropy_bits": 0.0, "firing_entropy_norm": 0.0, "top10pct_mass": 0.0}
    p = fires_M / total
    nz = p[p > 0]
    entropy = -(nz * nz.log2()).sum().item()
    n_top = max(1, math.ceil(0.1 * len(p)))
    return {
        "firing_entropy_bits": entropy,
        "firing_entropy_norm": entropy / math.log2(len(p)),
        "top10pct_mass": (p.sort(descending=True).values[:n_top].sum()).item(),
    }


def decoder_coherence(w_dec_MN: torch.Tensor) -> dict[str, float]:
    """Per-atom max |cos| to any other atom: p50 / p90 / max."""
    cos = M.abs_cosine(w_dec_MN, w_dec_MN)
    cos.fill_diagonal_(0.0)
    per_atom = cos.max(dim=1).values
    return {
        "coherence_p50": per_atom.quantile(0.5).item(),
        "coherence_p90": per_atom.quantile(0.9).item(),
        "coherence_max": per_atom.max().item(),
    }


def activation_metrics(sae: Any, x_BD: torch.Tensor, batch: int = 4096,
                       input_norms_B: torch.Tensor | None = None) -> dict[str, dict[str, Any]]:
    """EV, MSE, shrinkage, L0, entropy and coherence of a training-space SAE on normalised inputs,
    and SAEBench ``core``'s own metrics (:func:`core_metrics`; ``input_norms_B``: see there)."""
    acts, recons = [], []
    with torch.no_grad():
        for s in range(0, len(x_BD), batch):
            a = sae.encode(x_BD[s:s + batch].to(sae.device))
            acts.append(a.cpu())
            recons.append(sae.decode(a).cpu())
    acts_BM, xhat_BD = torch.cat(acts), torch.cat(recons)
    groups: dict[str, dict[str, Any]] = M.by_group(M.reconstruction_metrics(x_BD, xhat_BD))
    groups["sparsity"] = {**M.sparsity_metrics(acts_BM), **latent_stats(acts_BM)}
    groups["dictionary"] = decoder_coherence(sae.W_dec.detach().cpu())
    groups[SAEBENCH_CORE_GROUP] = core_metrics(x_BD, xhat_BD, acts_BM, sae.W_enc.detach().cpu(),
                                               sae.W_dec.detach().cpu(), input_norms_B)
    return groups


def max_other_cosine(vectors_FD: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Per row, the largest (signed) cosine to any other row: SAEBench core's
    ``calculate_max_cosine_sim`` (on rows instead of columns), without the F × F matrix."""
    unit = F.normalize(vectors_FD.double(), dim=-1)
    out = torch.empty(len(unit), dtype=torch.float64)
    for s in range(0, len(unit), chunk):
        sims = unit[s:s + chunk] @ unit.T
        rows = torch.arange(len(sims))
        sims[rows, rows + s] = float("-inf")
        out[s:s + chunk] = sims.max(dim=1).values
    return out


def core_metrics(x_BD: torch.Tensor, xhat_BD: torch.Tensor, acts_BM: torch.Tensor, w_enc_DM: torch.Tensor,
                 w_dec_MD: torch.Tensor, input_norms_B: torch.Tensor | None = None) -> dict[str, Any]:
    """SAEBench ``core``'s sparsity / variance / shrinkage / misc metrics of one SAE on the eval
    activations, by the definitions of sae-lens 6.54's ``evals.get_sparsity_and_variance_metrics``
    (which SAEBench's core eval copies; :mod:`aenbench.saebench` lists where SAEBench 0.6.0's copy
    differs) and of SAEBench's ``calculate_misc_metrics``.

    ``x_BD`` / ``xhat_BD`` are the SAE's input and output in training space (per-token norm √d).
    With ``input_norms_B`` (each token's ℓ2 norm before that normalisation) the scale-dependent
    values are computed at the model's scale, x·‖x_raw‖/√d and x̂·‖x_raw‖/√d: what the saved
    inference SAE (``constant_norm_rescale``) reads and returns, and what SAEBench measures.
    Without it they are in training space, and ``activation_space`` says so. Latent statistics
    and weight cosines do not depend on the scale.
    """
    from sae_lens.evals import ExplainedVarianceCalculator

    x, xh = x_BD.double(), xhat_BD.double()
    space = "sae_input: per-token norm sqrt(d)"
    if input_norms_B is not None:
        scale_B = input_norms_B.double()[:, None] / x_BD.shape[-1] ** 0.5
        x, xh, space = x * scale_B, xh * scale_B, "model: raw activations"
    norm_in, norm_out = x.norm(dim=-1), xh.norm(dim=-1)
    div = torch.where(norm_in.abs() < 1e-4, torch.ones_like(norm_in), norm_in)  # sae-lens's guard
    resid_B = (x - xh).pow(2).sum(-1)
    ev = ExplainedVarianceCalculator()
    ev.add_batch(sae_output=xh, hidden_acts=x)
    fires = acts_BM != 0
    density_M = fires.double().mean(0)
    total = density_M.sum()

    def share_above(p: float) -> float:
        return (density_M[density_M > p].sum() / total).item() if total > 0 else 0.0

    return {
        "activation_space": space,
        "n_tokens": int(len(x)),
        "explained_variance": float(ev.compute()),
        "explained_variance_legacy": (1 - resid_B / (x - x.mean(0)).pow(2).sum(-1)).mean().item(),
        "mse": resid_B.mean().item(),  # ‖x − x̂‖² summed over dimensions, mean over tokens
        # cosine per token; a zero vector counts as cosine 0 (sae-lens divides by its norm: NaN)
        "cossim": (F.normalize(x, dim=-1, eps=1e-12) * F.normalize(xh, dim=-1, eps=1e-12)).sum(-1).mean().item(),
        "l2_norm_in": norm_in.mean().item(),
        "l2_norm_out": norm_out.mean().item(),
        "l2_ratio": (norm_out / div).mean().item(),
        "relative_reconstruction_bias": (norm_out.pow(2).mean() / (x * xh).sum(-1).mean()).item(),
        "l0": fires.double().sum(-1).mean().item(),
        "l1": acts_BM.double().abs().sum(-1).mean().item(),
        "frac_alive": (density_M > 0).double().mean().item(),
        "freq_over_1_percent": (density_M > 0.01).double().mean().item(),
        "freq_over_10_percent": (density_M > 0.1).double().mean().item(),
        "normalized_freq_over_1_percent": share_above(0.01),
        "normalized_freq_over_10_percent": share_above(0.1),
        "average_max_encoder_cosine_sim": max_other_cosine(w_enc_DM.T).mean().item(),
        "average_max_decoder_cosine_sim": max_other_cosine(w_dec_MD).mean().item(),
    }


def _masks(tokens_BT: torch.Tensor, separator_id: int, special_ids: list[int], sae_lens_convention: bool):
    if sae_lens_convention:
        keep = ~torch.isin(tokens_BT, torch.tensor(special_ids, dtype=tokens_BT.dtype))
        return keep, torch.ones_like(keep), keep
    from aenbench.llm.harvest import keep_mask

    keep = keep_mask(tokens_BT, separator_id)
    return keep, keep, keep  # splice, ablate, score


def _ce_kl(logits_BTV: torch.Tensor, clean_logp_BTV: torch.Tensor, tokens_BT: torch.Tensor):
    logp = F.log_softmax(logits_BTV.float(), dim=-1)
    ce_BT = -logp[:, :-1].gather(-1, tokens_BT[:, 1:, None]).squeeze(-1)
    kl_BT = (clean_logp_BTV.exp() * (clean_logp_BTV - logp)).sum(-1)[:, :-1]
    return ce_BT, kl_BT


@torch.no_grad()
def downstream_metrics(
    bridge: Any,
    saes: dict[str, Any],
    hook: str,
    tokens_BT: torch.Tensor,
    separator_id: int,
    mean_D: torch.Tensor,
    batch_contexts: int = 8,
    sae_lens_convention: bool = False,
    special_ids: list[int] | None = None,
) -> dict[str, dict[str, float]]:
    """CE loss recovered (zero- and mean-ablation) and KL for each SAE in ``saes``.

    Every SAE's forward pass (``sae(x)``) must map raw activations to raw reconstructions.
    The clean and ablated passes are shared by all SAEs. Returns ``{name: metrics}``.
    """
    sums: dict[str, dict[str, float]] = {name: {"ce": 0.0, "kl": 0.0} for name in ["clean", "zero", "mean", *saes]}
    n_scored = 0
    for s in range(0, len(tokens_BT), batch_contexts):
        ids = tokens_BT[s:s + batch_contexts]
        splice, ablate, score = _masks(ids, separator_id, special_ids or [], sae_lens_convention)
        score_BT = score[:, :-1]
        n_scored += int(score_BT.sum())
        clean_logp = F.log_softmax(bridge(ids).float(), dim=-1)

        def run(replace_fn, name):
            def hook_fn(act, hook):  # noqa: ARG001
                return replace_fn(act)

            logits = bridge.run_with_hooks(ids, fwd_hooks=[(hook, hook_fn)])
            ce, kl = _ce_kl(logits, clean_logp, ids)
            sums[name]["ce"] += ce[score_BT].sum().item()
            sums[name]["kl"] += kl[score_BT].sum().item()

        ce_clean = -clean_logp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
        sums["clean"]["ce"] += ce_clean[score_BT].sum().item()
        run(lambda a: torch.where(ablate[..., None], torch.zeros_like(a), a), "zero")
        run(lambda a: torch.where(ablate[..., None], mean_D.to(a.dtype).expand_as(a), a), "mean")
        for name, sae in saes.items():
            run(lambda a, sae=sae: torch.where(splice[..., None], sae(a.to(sae.dtype)).to(a.dtype), a), name)
    avg = {name: {k: v / n_scored for k, v in d.items()} for name, d in sums.items()}
    ce_clean = avg["clean"]["ce"]
    out = {}
    for name in saes:
        ce_sae = avg[name]["ce"]
        out[name] = {
            "ce_loss_clean": ce_clean,
            "ce_loss_with_sae": ce_sae,
            "ce_loss_zero_ablation": avg["zero"]["ce"],
            "ce_loss_mean_ablation": avg["mean"]["ce"],
            "ce_recovered_zero": (avg["zero"]["ce"] - ce_sae) / (avg["zero"]["ce"] - ce_clean),
            "ce_recovered_mean": (avg["mean"]["ce"] - ce_sae) / (avg["mean"]["ce"] - ce_clean),
            "kl_with_sae": avg[name]["kl"],
            "kl_zero_ablation": avg["zero"]["kl"],
            "kl_mean_ablation": avg["mean"]["kl"],
            "n_scored_tokens": n_scored,
        }
    return out
