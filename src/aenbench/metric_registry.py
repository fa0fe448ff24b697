"""Every leaderboard column in one place: what it means and, for a metric, its direction.

* :data:`METRICS`: every metric a track writes to a record's ``eval_result_metrics`` (and so to
  a leaderboard column): its group, its meaning and whether higher is better (``True`` ↑,
  ``False`` ↓, ``None`` no preferred direction, e.g. L0 or shrinkage). The spiked track's
  metrics, the stability and adaptive groups, the LLM track's (``ce_recovered_*``, ``kl_*``,
  ``coherence_*``, ``firing_entropy_*``, ...) and sae-lens's synthetic evals of the synthsae
  track (``synthetic/*``).
* :data:`COLUMNS`: the meaning of every other leaderboard column (keys, provenance, budgets).
* :data:`COLUMN_LISTS`: the metric columns that each table, figure, report and the CLI show,
  by name; :func:`column_list` looks one up. :data:`L0_TOLERANCE`: how far (relatively) a
  matched-L0 or closest-to-k pick may be from its target L0 before it counts as not matched.

``results/metrics.yaml`` is written from here (``aenbench.leaderboard.write_metrics_yaml``), and
the CLI, the tables and the comparison reports take their directions and column lists from here.
Pure Python: importing it costs nothing (no pandas, no torch), so any job or tool may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class MetricInfo:
    group: str
    meaning: str
    higher_is_better: bool | None  # None: no preferred direction (e.g. L0, shrinkage)


def _metrics(group: str, entries: dict[str, tuple[str, bool | None]], prefix: str = "") -> dict[str, MetricInfo]:
    return {prefix + name: MetricInfo(group, meaning, hib) for name, (meaning, hib) in entries.items()}


#: Prefix of sae-lens's synthetic evals in the synthsae track's records (sae-lens's own, from
#: ``SyntheticDataEvalResult.to_log_dict(prefix="synthetic/")``).
SYNTHSAE_PREFIX = "synthetic/"

#: sae-lens's synthetic evals by their unprefixed names (``aenbench.synthetic.synthsae.METRICS``).
SYNTHSAE_METRICS: dict[str, tuple[str, bool | None]] = {
    "mcc": ("mean |cos| of the Hungarian matching of SAE decoder rows to true features "
            "(sae_lens.synthetic.mean_correlation_coefficient)", True),
    "uniqueness": ("distinct true features that are some latent's best match / d_sae "
                   "(sae_lens.synthetic.feature_uniqueness)", True),
    "classification/precision": ("mean over latents of TP/(TP+FP), each latent a detector of its "
                                 "best-matching true feature (ClassificationMetricsCalculator)", True),
    "classification/recall": ("mean over latents of TP/(TP+FN) (ClassificationMetricsCalculator)", True),
    "classification/f1_score": ("mean over latents of the per-latent F1 (ClassificationMetricsCalculator)", True),
    "classification/accuracy": ("mean over latents of (TP+TN)/total (ClassificationMetricsCalculator)", True),
    "explained_variance": ("1 − E‖x−x̂‖²/Var(x) (sae_lens.evals.ExplainedVarianceCalculator)", True),
    "dead_latents": ("number of latents that never fired on the eval samples (DeadLatentsCalculator)", False),
    "sae_l0": ("mean number of non-zero latents per sample (L0Calculator)", None),
    "true_l0": ("mean number of firing true features per sample (L0Calculator; a teacher property)", None),
    "shrinkage": ("mean ‖x̂‖₂/‖x‖₂ (ShrinkageCalculator; 1.0 = none)", None),
}

METRICS: dict[str, MetricInfo] = {
    **_metrics("sparsity", {
        "L0": ("mean number of active latents per sample", None),
        "dead_pct": ("% latents that never fired in the last dead_window_tokens training samples", False),
        "dead_pct_eval": ("% latents that never fired on the evaluation samples", False),
        "dead_window_tokens": ("training samples (LLM: tokens) in the window dead_pct is counted over", None),
        "firing_entropy_bits": ("LLM: entropy (bits) of the latents' firing frequencies; at most log2 of the width",
                                None),
        "firing_entropy_norm": ("LLM: firing entropy / log2(width); 1 = every latent fires equally often", True),
        "top10pct_mass": ("LLM: share of all firings made by the 10 % most frequent latents", False),
    }),
    **_metrics("reconstruction", {
        "EV": ("explained variance 1 − ΣVar(x−x̂)/ΣVar(x)", True),
        "EV_saelens": ("sae-lens explained variance 1 − E‖x−x̂‖²/Var(x)", True),
        "MSE": ("mean squared error, averaged over samples and dimensions", False),
    }),
    **_metrics("shrinkage", {
        "shrinkage": ("Σ‖x̂‖₁/Σ‖x‖₁ (authors' definition)", None),
        "l2_ratio": ("mean ‖x̂‖₂/‖x‖₂ (sae-lens)", None),
        "relative_reconstruction_bias": ("E‖x̂‖²/E⟨x,x̂⟩ (sae-lens)", None),
    }),
    **_metrics("dictionary", {
        "MCC": ("mean |cos| of Hungarian-matched atoms", True),
        "MMCS": ("mean over true atoms of max |cos| to a learned atom", True),
        "dict_frob_error": ("‖D − P·Ŵ_dec‖_F/√m after alignment (unit rows, signs fixed)", False),
        "coherence_p50": ("LLM: median over decoder atoms of the max |cos| to any other atom", None),
        "coherence_p90": ("LLM: 90th percentile of that per-atom max |cos|", None),
        "coherence_max": ("LLM: largest |cos| between two decoder atoms", None),
    }),
    **_metrics("support", {
        "support_precision": ("micro support precision after alignment", True),
        "support_recall": ("micro support recall after alignment", True),
        "support_f1": ("micro support F1 after alignment", True),
        "code_rel_l2_error": ("‖ĥ − h*‖/‖h*‖ with ĥ_i = h_π(i)‖W_dec[π(i)]‖", False),
    }),
    **_metrics("stability", {
        "lipschitz_median": ("median of ‖h(x+δ) − h(x)‖/‖δ‖ over samples and draws, ‖δ‖ = 1 % ‖x‖, "
                             "δ isotropic", None),
        "lipschitz_p99": ("99th percentile of that ratio", None),
        "lipschitz_max": ("largest ratio seen", None),
        "support_flip_rate": ("mean |supp h(x+δ) Δ supp h(x)| / max(1, |supp h(x)|)", None),
        "support_flip_any": ("share of (sample, δ) pairs whose support changes at all", None),
        "fista_code_gap_median": ("median ‖h − h*‖/‖h*‖, h* the exact minimiser of the SAE's own objective "
                                  "(FISTA); NaN without a convex objective", None),
        "fista_code_gap_p90": ("90th percentile of that code gap", None),
        "fista_objective_gap_median": ("median (F(h) − F(h*))/|F(h*)|", None),
        "fista_support_f1": ("support F1 of the amortised code against h*", None),
        "fista_converged": ("1 when FISTA met its tolerance within its iteration budget", None),
    }),
    **_metrics("adaptive", {
        "pct_w_at_min": ("% raw adaptive weights pinned at w_min", None),
        "pct_w_at_max": ("% raw adaptive weights pinned at w_max", None),
        "w_tilde_mean": ("mean effective adaptive weight w̃ at the end of training", None),
        "ema_median": ("median EMA firing activity a_j at the end of training", None),
        "n_resampled": ("examples/l1_resample.py: latents resampled over training", None),
        "n_resample_events": ("examples/l1_resample.py: resampling steps over training", None),
    }),
    **_metrics("downstream", {
        "ce_loss_clean": ("LLM: next-token CE loss of the model alone, at the scored positions", None),
        "ce_loss_with_sae": ("LLM: CE loss with the SAE's reconstruction spliced in", False),
        "ce_loss_zero_ablation": ("LLM: CE loss with the hooked activations zeroed", None),
        "ce_loss_mean_ablation": ("LLM: CE loss with the hooked activations replaced by their training mean", None),
        "ce_recovered_zero": ("LLM: (CE_zero − CE_sae)/(CE_zero − CE_clean): CE loss recovered over zero-ablation",
                              True),
        "ce_recovered_mean": ("LLM: (CE_mean − CE_sae)/(CE_mean − CE_clean): CE loss recovered over "
                              "mean-ablation", True),
        "kl_with_sae": ("LLM: KL(clean ‖ with SAE) of the next-token distributions", False),
        "kl_zero_ablation": ("LLM: KL(clean ‖ zero-ablated)", None),
        "kl_mean_ablation": ("LLM: KL(clean ‖ mean-ablated)", None),
        "n_scored_tokens": ("LLM: next-token predictions CE and KL are averaged over", None),
    }),
    **_metrics("synth_eval", SYNTHSAE_METRICS, prefix=SYNTHSAE_PREFIX),
}

#: Meaning of every leaderboard column that is not a metric.
COLUMNS: dict[str, str] = {
    "track": "synthetic (spiked teacher), synthsae (sae_lens.synthetic teacher) or llm",
    "dataset": "synthetic: rho<ρ> (coherence of the spiked teacher); llm: model:hook",
    "family": "family or variant name from the config (paper rows: the paper's model name)",
    "architecture": "sae-lens architecture the SAE was trained as (empty for paper rows)",
    "scale": "the scale the row was made at: synthetic n=<n> m=<m> k=<k>; <steps>×<batch> (synthsae: F=<features> "
             "d=<hidden dim>; llm: <model>; <training tokens>); rows of one dataset at different scales sort apart",
    "params": "the hyperparameters that tell the run apart: λ₁ (l1), λ₂ (l2) when non-zero, γ, β, p when adaptive, k, "
              "the AuxK (aux) and JumpReLU L0 (l0) coefficients, and every swept key (paper rows: the paper's config)",
    "swept": "the swept values of the run's grid point alone (its run folder's label)",
    "seed": "training seed (empty for paper rows that are means over seeds)",
    "source": "ours (trained by this workflow) or paper (the authors' reference numbers)",
    "kind": "family (a leaderboard family) or variant (an entry of the config's variants:); "
            "ablation in the ablation summaries",
    "n_seeds": "seeds behind the row (1 for ours: one row per seed)",
    "samples_seen": "training samples (synthetic) or tokens (llm) seen: steps × batch_size",
    "steps": "optimiser steps",
    "batch_size": "samples (tokens) per step",
    "grad_clip": "gradient-norm clip of training (train.max_grad_norm): none or its value; empty for runs from "
                 "before that setting, which sae-lens clipped at 1.0",
    "train_seconds": "wall time of this SAE's training loop (seconds)",
    "job_wall_s": "wall time of the Snakemake job that trained this SAE (its benchmark file); "
                  "one job trains job_n_saes SAEs",
    "job_max_rss_mb": "peak resident memory (MB) of that job (its benchmark file): an upper bound for each SAE in it",
    "job_cpu_s": "CPU time (seconds) of that job",
    "job_n_saes": "number of SAEs trained by that job",
    "job_benchmark": "the Snakemake benchmark file job_* come from",
    "sae_lens_version": "sae-lens version used for training",
    "torch_version": "torch version used for training",
    "device": "device the SAE was trained on (cpu, cuda, ...)",
    "git_commit": "aenbench commit the SAE was trained from (-dirty: with uncommitted changes)",
    "teacher_n": "synthetic: input dimension n of the spiked teacher",
    "teacher_m": "synthetic: number of teacher atoms m (= SAE width)",
    "teacher_k": "synthetic: active atoms per sample k",
    "teacher_rho": "synthetic: coherence ρ of the spiked teacher",
    "teacher_dictionary_seed": "synthetic: seed the teacher dictionary was drawn with",
    "replicate": "empty for a grid run; seed / teacher: the selected configuration (closest to L0 = k) trained "
                 "again with another seed / on another teacher dictionary (synthetic.spread)",
    "hp_*": "one column per hyperparameter of the run (architecture defaults, fixed and swept values)",
    "*_min, *_max": "paper rows averaged over seeds: min and max over the seeds",
    "target_L0": "LLM target-L0 table (and the paper's LLM rows): the target L0 the row was selected for",
    "L0_matched": "the row's L0 lies within ±L0_TOLERANCE (relative) of the L0 it was matched to (the target L0, "
                  "or the variant's L0 in a comparison); otherwise it is only the closest config",
    "metrics_path": "the per-SAE SAEBench-style JSON the row was read from",
    "reference_file": "paper rows: the reference table the row was read from",
}

#: The metric columns each table, figure, report and CLI view shows, in its order.
COLUMN_LISTS: dict[str, tuple[str, ...]] = {
    # results/leaderboard.csv: the metrics right after the key columns
    "leaderboard": ("L0", "dead_pct", "EV", "MSE", "shrinkage", "MCC", "support_f1"),
    # `aenbench leaderboard` without --columns (after source, kind and the keys)
    "cli": ("L0", "dead_pct", "EV", "MSE", "MCC", "support_f1"),
    # results/compare/<variant>.md and `aenbench compare`, unless the variant's compare.metrics says otherwise
    "compare_report": ("dead_pct", "EV", "MSE", "MCC", "support_f1"),
    # the panels of the dead/EV-vs-L0 figures and of the comparison's Pareto plot
    "dead_ev": ("dead_pct", "EV"),
    # T-syn: per family the run with L0 closest to k
    "closest_to_k": ("L0", "dead_pct", "EV", "shrinkage", "MCC", "support_f1", "support_precision", "support_recall"),
    "stability": ("lipschitz_median", "lipschitz_p99", "support_flip_rate", "fista_code_gap_median",
                  "fista_objective_gap_median"),
    # our paper-scale runs beside the authors' numbers
    "replication": ("L0", "dead_pct", "EV", "shrinkage"),
    # results/reference/replication_ours.csv (after the keys, before the budget and provenance)
    "replication_export": ("L0", "dead_pct", "EV", "MSE", "shrinkage", "MCC", "support_f1", "support_precision",
                           "support_recall", "lipschitz_median", "lipschitz_p99", "support_flip_rate",
                           "fista_code_gap_median", "pct_w_at_max", "pct_w_at_min", "dead_window_tokens"),
    "ablation_summary": ("L0", "dead_pct", "EV", "MCC", "support_f1", "pct_w_at_max", "lipschitz_median",
                         "support_flip_rate"),
    "ablation_plot": ("dead_pct", "L0", "EV", "pct_w_at_max"),
    # the LLM table at target L0s
    "llm_target_l0": ("L0", "dead_pct", "EV", "coherence_p50", "shrinkage", "firing_entropy_norm",
                      "ce_recovered_zero", "ce_recovered_mean", "kl_with_sae"),
    # the synthsae table: per family the run with L0 closest to the teacher's true L0
    "synthsae": ("L0", "dead_pct", "EV", "synthetic/mcc", "synthetic/uniqueness", "synthetic/classification/f1_score",
                 "synthetic/classification/precision", "synthetic/classification/recall", "synthetic/shrinkage",
                 "lipschitz_median", "support_flip_rate"),
}


#: Relative L0 gap beyond which a matched-L0 (comparisons) or closest-to-k (T-syn) pick is
#: flagged as not matched.
L0_TOLERANCE = 0.25


def column_list(name: str) -> list[str]:
    """The columns of :data:`COLUMN_LISTS` ``name`` (a fresh list)."""
    return list(COLUMN_LISTS[name])


def directions(metrics: dict[str, MetricInfo] | None = None) -> dict[str, bool | None]:
    """``metric → higher_is_better``."""
    return {name: info.higher_is_better for name, info in (metrics or METRICS).items()}


def meanings() -> dict[str, str]:
    return {name: info.meaning for name, info in METRICS.items()}


def direction_symbol(higher_is_better: bool | None) -> str:
    """↑, ↓ or — (no preferred direction)."""
    return {True: "↑", False: "↓", None: "—"}[higher_is_better]


def arrow(higher_is_better: bool | None) -> str:
    """`` ↑`` / `` ↓`` to append to a column header; empty without a direction."""
    return {True: " ↑", False: " ↓"}.get(higher_is_better, "")


def describe(column: str) -> str | None:
    """The meaning of any leaderboard column (metrics, the other columns, ``hp_*`` and the paper
    rows' ``<metric>_min`` / ``<metric>_max``); None for a column nothing here describes."""
    if column in METRICS:
        return METRICS[column].meaning
    if column in COLUMNS:
        return COLUMNS[column]
    if column.startswith("hp_"):
        return COLUMNS["hp_*"]
    base, _, stat = column.rpartition("_")
    if stat in ("min", "max") and base in METRICS:
        return f"{COLUMNS['*_min, *_max']} ({base})"
    return None


def unregistered(columns: Iterable[str]) -> list[str]:
    """The columns :func:`describe` knows nothing about."""
    return [c for c in columns if describe(c) is None]


def metrics_dictionary(metrics: dict[str, MetricInfo] | None = None) -> dict[str, dict[str, object]]:
    """:data:`METRICS` as plain data (for ``results/metrics.yaml``): group, meaning, direction."""
    return {
        name: {
            "group": info.group,
            "meaning": info.meaning,
            "direction": direction_symbol(info.higher_is_better),
            "higher_is_better": info.higher_is_better,
        }
        for name, info in (metrics or METRICS).items()
    }
