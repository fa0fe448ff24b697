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
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from aenbench import metrics as M


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


def activation_metrics(sae: Any, x_BD: torch.Tensor, batch: int = 4096) -> dict[str, dict[str, float]]:
    """EV, MSE, shrinkage, L0, entropy and coherence of a training-space SAE on normalised inputs."""
    acts, recons = [], []
    with torch.no_grad():
        for s in range(0, len(x_BD), batch):
            a = sae.encode(x_BD[s:s + batch].to(sae.device))
            acts.append(a.cpu())
            recons.append(sae.decode(a).cpu())
    acts_BM, xhat_BD = torch.cat(acts), torch.cat(recons)
    groups = M.by_group(M.reconstruction_metrics(x_BD, xhat_BD))
    groups["sparsity"] = {**M.sparsity_metrics(acts_BM), **latent_stats(acts_BM)}
    groups["dictionary"] = decoder_coherence(sae.W_dec.detach().cpu())
    return groups


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
