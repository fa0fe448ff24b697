"""The paper's claims, each checked against the leaderboard: ``figures/tables/claims.{md,csv}``.

Pandas only (no torch, no sae-lens). Every claim is judged on the *selected configuration* of
each (ρ, family) of the spiked synthetic track (:func:`selected_configs`):

* the grid run (``replicate`` empty) whose L0 is closest to k, ties going to the lower dead %
  (:func:`aenbench.tables.closest_row`, the rule of T-syn and of the ``synthetic_spread`` stage);
* plus every replicate row of that configuration (same ``params``): ``replicate == "seed"``
  (seeds 1, 2) and ``"teacher"`` (a second teacher dictionary). Its numbers are
  "mean [min, max]" over those runs (:func:`aenbench.tables.seed_summary`).

A selected run is *at matched L0* when ``|L0 − k| ≤ L0_TOLERANCE · k``
(:data:`aenbench.metric_registry.L0_TOLERANCE`, judged on the grid run's L0).

Each claim is a conjunction of elementary checks ("AEN's dead % ≤ ℓ1's at ρ = 0.5"). A check
compares [min, max] intervals, not means: it passes when every run of one side is on the right
side of every run of the other (the intervals do not overlap, or a threshold is cleared by the
whole interval), fails when the intervals say the opposite, and is *undecided* when they overlap
(within the seed spread), when a family involved is missing or its metric is NaN, or when its
selected run is not at matched L0. A claim **holds** when every check passes, **does not hold**
when at least one fails, and is **inconclusive** otherwise (no check failed, some undecided). With
one run per configuration (no replicate rows) the intervals are points: the verdict then rests
on single runs, and ``why`` says so.

The thresholds are module constants, fixed before any result was seen. One function per claim
(``claim_*``), :func:`scorecard` for all of them, :func:`write_scorecard` for the files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import pandas as pd

from aenbench.io import write_text, write_with
from aenbench.metric_registry import L0_TOLERANCE
from aenbench.tables import closest_row, markdown_table, mean_range, seed_summary

#: Family roles: which leaderboard family plays which part of the paper's claims. ``aen``, ``l1``,
#: ``en`` and ``topk`` (the paper's TopK without AuxK) are the claims' subjects; ``al`` joins the
#: other paper families in claims 3 and 7; ``topk_saelens`` (sae-lens TopK without AuxK) is
#: reported beside the paper's TopK in claim 1 but does not enter its verdict. A role mapped to
#: None (or to a family absent from the leaderboard) makes the checks that need it undecided.
DEFAULT_ROLES: dict[str, str | None] = {
    "aen": "AEN", "l1": "L1", "en": "EN", "topk": "TopK-paper", "al": "AL", "topk_saelens": "TopK",
}

#: The roles of the paper's own families, in display order: the comparators of claims 3 and 7.
PAPER_ROLES: tuple[str, ...] = ("aen", "l1", "en", "al", "topk")

#: Claim 1: a family *starves* at a ρ when its selected configuration has dead % ≥ this (%).
STARVE_DEAD_PCT = 10.0

#: Claim 1: TopK starves at every ρ ≥ this.
STARVE_MIN_RHO = 0.3

#: Claim 2: "starves more as ρ grows": dead % at the largest ρ exceeds dead % at the smallest ρ
#: by at least this many percentage points ...
STARVE_RISE_PP = 5.0

#: ... and no step between consecutive ρs lowers dead % by more than this many points.
STARVE_STEP_DROP_PP = 2.0

#: Claim 5: the ρ at which AEN's support F1 must beat TopK's and ℓ1's.
SUPPORT_RHO = 0.9

#: Claim 7: AEN's EV is *competitive* when it is at least every other paper family's EV minus this
#: (i.e. within this of the best of them) at every ρ.
EV_MARGIN = 0.05

#: The metrics a claim reads (``shrinkage_gap`` = |shrinkage − 1|, computed per run).
CLAIM_METRICS: tuple[str, ...] = ("L0", "dead_pct", "EV", "shrinkage", "shrinkage_gap", "support_f1",
                                  "lipschitz_median", "support_flip_rate")

VERDICTS = ("holds", "does not hold", "inconclusive")
COLUMNS = ("id", "claim", "rule", "numbers", "verdict", "why")

#: The decision procedure shared by every rule (the markdown file's preamble).
DECISION_RULE = (
    "Per (ρ, family) the selected configuration is the grid run with L0 closest to k (ties: lower dead %) "
    "plus its replicate rows (seeds 1, 2; a second teacher dictionary); numbers are mean [min, max] over its "
    "runs. Each claim is a set of checks on those [min, max] intervals: a check passes when the whole interval "
    "is on the claimed side (of the other family's interval or of the threshold), fails when it is wholly on "
    "the other side, and is undecided when the intervals overlap (within the seed spread), a family is missing, "
    f"or a selected run is not at matched L0 (|L0 − k| > {L0_TOLERANCE:g}·k; † after the number). "
    "holds: every check passes; does not hold: some check fails; inconclusive: none fails, some undecided.")


# ------------------------------------------------------------------------------------- selection

def _rho_of(dataset: str) -> float:
    return float(dataset[3:]) if str(dataset).startswith("rho") else math.nan


def _is_grid(rows: pd.DataFrame) -> pd.Series:
    if "replicate" not in rows.columns:
        return pd.Series(True, index=rows.index)
    rep = rows["replicate"]
    return rep.isna() | (rep.astype(str).str.strip() == "")


def synthetic_rows(leaderboard: pd.DataFrame) -> pd.DataFrame:
    """Our family rows of the spiked synthetic track (``source`` ours, ``kind`` family, ``track``
    synthetic; a filter column that is absent is not applied)."""
    keep = pd.Series(True, index=leaderboard.index)
    for column, value in (("source", "ours"), ("kind", "family"), ("track", "synthetic")):
        if column in leaderboard.columns:
            keep &= leaderboard[column] == value
    return leaderboard[keep]


def selected_configs(rows: pd.DataFrame, k: float | None = None,
                     families: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (dataset, family) of ``rows`` (synthetic family rows, replicate rows included):
    the selected configuration (module docstring) with ``dataset``, ``rho``, ``family``, ``k``,
    ``params``, ``L0_selected`` (the grid run's L0), ``L0_matched``, ``n_runs``, ``n_seeds``,
    ``replicates`` (the replicate labels of its runs, e.g. ``"seed,seed,teacher"``) and
    ``<metric>_mean/_min/_max`` over its runs for each metric of :data:`CLAIM_METRICS` present.

    ``k``: the teacher's k (default: the ``teacher_k`` column, which must agree with it when both
    are given). ``families``: keep only these families (default: all)."""
    rows = rows.copy()
    if families is not None:
        rows = rows[rows["family"].isin(list(families))]
    rows["params"] = rows["params"].fillna("").astype(str) if "params" in rows.columns else ""
    if "shrinkage" in rows.columns:
        rows["shrinkage_gap"] = (rows["shrinkage"] - 1.0).abs()
    grid_mask = _is_grid(rows)
    metrics = [m for m in CLAIM_METRICS if m in rows.columns]
    out, chosen = [], []
    for (dataset, family), fam in rows.groupby(["dataset", "family"], sort=True):
        kk = _k_of(fam, k, dataset)
        grid = fam[grid_mask.loc[fam.index]]
        best = closest_row(grid if len(grid) else fam, "L0", kk, tiebreak=["dead_pct"] if "dead_pct" in fam else [])
        runs = fam[fam["params"] == best["params"]]
        chosen.append(runs.index)
        reps = runs.loc[~grid_mask.loc[runs.index], "replicate"].astype(str).tolist() if "replicate" in runs else []
        rho = float(fam["teacher_rho"].dropna().iloc[0]) if "teacher_rho" in fam and fam["teacher_rho"].notna().any() \
            else _rho_of(dataset)
        l0 = float(best["L0"])
        out.append({"dataset": dataset, "rho": rho, "family": family, "k": kk, "params": best["params"],
                    "L0_selected": l0, "L0_matched": bool(abs(l0 - kk) <= L0_TOLERANCE * kk),
                    "n_runs": len(runs), "replicates": ",".join(sorted(reps))})
    cols = ["dataset", "rho", "family", "k", "params", "L0_selected", "L0_matched", "n_runs", "n_seeds", "replicates"]
    if not out:
        return pd.DataFrame(columns=cols)
    keys = ["dataset", "family", "params"]
    summary = seed_summary(rows.loc[[i for idx in chosen for i in idx]], metrics, keys)  # one call: pandas is slow
    table = pd.DataFrame(out).merge(summary, on=keys, how="left", validate="one_to_one")
    return table[[*cols, *(c for c in table.columns if c not in cols)]]


def _k_of(fam: pd.DataFrame, k: float | None, dataset: str) -> float:
    values = fam["teacher_k"].dropna().unique() if "teacher_k" in fam.columns else []
    if len(values) > 1:
        raise ValueError(f"{dataset}: expected one teacher_k, got {sorted(values)}")
    if k is not None:
        if len(values) and float(values[0]) != float(k):
            raise ValueError(f"{dataset}: k = {k} but the leaderboard's teacher_k is {values[0]}")
        return float(k)
    if not len(values):
        raise ValueError(f"{dataset}: no teacher_k column and no k given")
    return float(values[0])


# ---------------------------------------------------------------------------------------- checks

@dataclass(frozen=True)
class Interval:
    mean: float
    lo: float
    hi: float
    n_runs: int = 1


@dataclass
class Check:
    """One elementary comparison: ``ok`` True (passes), False (fails) or None (undecided)."""
    ok: bool | None
    label: str
    reason: str = ""


class _Selection:
    """Lookup of the selected configurations by (ρ, family)."""

    def __init__(self, selected: pd.DataFrame, roles: Mapping[str, str | None]):
        self.table = selected
        self.roles = roles
        self.rhos = sorted(selected["rho"].dropna().unique().tolist()) if len(selected) else []
        self._rows = {(r["rho"], r["family"]): r for _, r in selected.iterrows()} if len(selected) else {}

    def fam(self, role: str) -> str | None:
        return self.roles.get(role)

    def row(self, rho: float, family: str | None) -> pd.Series | None:
        if family is None:
            return None
        for (r, f), row in self._rows.items():
            if f == family and math.isclose(r, rho, abs_tol=1e-9):
                return row
        return None

    def present(self, family: str | None) -> bool:
        return family is not None and any(f == family for _, f in self._rows)

    def interval(self, rho: float, family: str | None, metric: str) -> Interval | None:
        row = self.row(rho, family)
        if row is None or f"{metric}_mean" not in row.index or pd.isna(row[f"{metric}_mean"]):
            return None
        return Interval(float(row[f"{metric}_mean"]), float(row[f"{metric}_min"]), float(row[f"{metric}_max"]),
                        int(row["n_runs"]))

    def unavailable(self, rho: float, families: Sequence[str | None], metric: str, role_names: Sequence[str] = ()
                    ) -> str:
        """Why a check on these families at ρ cannot be decided ("" when it can)."""
        reasons = []
        for i, family in enumerate(families):
            if family is None:
                reasons.append(f"no family for role {role_names[i] if i < len(role_names) else '?'}")
                continue
            row = self.row(rho, family)
            if row is None:
                reasons.append(f"{family} missing at ρ{rho:g}" if self.present(family)
                               else f"family {family} missing from the leaderboard")
            elif not row["L0_matched"]:
                reasons.append(f"{family} at ρ{rho:g} not at matched L0 (L0 {row['L0_selected']:.3g}, "
                               f"k {row['k']:g}: |L0 − k| > {L0_TOLERANCE:g}·k)")
            elif self.interval(rho, family, metric) is None:
                reasons.append(f"{family} has no {metric} at ρ{rho:g}")
        return "; ".join(reasons)

    def value(self, rho: float, family: str | None, metric: str) -> str:
        """``"1.2 [0.8, 1.6]"`` (one run: ``"1.2"``; ``†``: not at matched L0; ``n/a``: missing)."""
        iv = self.interval(rho, family, metric)
        if iv is None:
            return "n/a"
        dagger = "" if self.row(rho, family)["L0_matched"] else "†"
        return f"{mean_range(iv.mean, iv.lo, iv.hi, spread=iv.n_runs > 1)}{dagger}"

    def cell(self, rho: float, family: str | None, metric: str) -> str:
        """``"AEN 1.2 [0.8, 1.6]"``; empty without a family."""
        return "" if family is None else f"{family} {self.value(rho, family, metric)}"

    def single_run(self, families: Sequence[str | None], rhos: Sequence[float]) -> str:
        """Which of these selected configs have a single run (no replicate rows): "" for none."""
        rows = [(rho, f, row) for rho in rhos for f in dict.fromkeys(families) if (row := self.row(rho, f)) is not None]
        single = [f"{f} ρ{rho:g}" for rho, f, row in rows if int(row["n_runs"]) <= 1]
        if not single:
            return ""
        which = "every selected config" if len(single) == len(rows) else ", ".join(single)
        return f"no seed spread (a single run, no replicate rows) for {which}: comparisons rest on single runs"


def _decide(lo: float, hi: float, threshold: float, strict: bool) -> bool | None:
    """Is a quantity in [lo, hi] > (strict) or ≥ ``threshold``? True when all of [lo, hi] is,
    False when none of it is, None when the interval straddles it."""
    if strict:
        return True if lo > threshold else False if hi <= threshold else None
    return True if lo >= threshold else False if hi < threshold else None


def _diff_check(sel: _Selection, rho: float, a: str | None, b: str | None, metric: str, *, sign: float,
                threshold: float, strict: bool, label: str, roles: Sequence[str] = ()) -> Check:
    """The check ``sign·(a − b) > threshold`` (``≥`` unless ``strict``) on [min, max] intervals:
    the difference ranges over [a.lo − b.hi, a.hi − b.lo]."""
    why = sel.unavailable(rho, [a, b], metric, roles)
    if why:
        return Check(None, label, why)
    ia, ib = sel.interval(rho, a, metric), sel.interval(rho, b, metric)
    lo, hi = ia.lo - ib.hi, ia.hi - ib.lo
    if sign < 0:
        lo, hi = -hi, -lo
    ok = _decide(lo, hi, threshold, strict)
    return Check(ok, label, "within the seed spread ([min, max] overlap)" if ok is None else "")


def _level_check(sel: _Selection, rho: float, family: str | None, metric: str, *, threshold: float, label: str,
                 role: str = "") -> Check:
    """The check ``metric ≥ threshold`` on the family's [min, max] interval."""
    why = sel.unavailable(rho, [family], metric, [role])
    if why:
        return Check(None, label, why)
    iv = sel.interval(rho, family, metric)
    ok = _decide(iv.lo, iv.hi, threshold, strict=False)
    return Check(ok, label, f"[min, max] straddles {threshold:g}" if ok is None else "")


def _verdict(checks: Sequence[Check], extra: str = "", single: str = "") -> tuple[str, str]:
    """(verdict, why) of a conjunction of checks (Kleene: a failure decides, then an undecided)."""
    if not checks:
        return "inconclusive", "; ".join(x for x in ("nothing to check", extra) if x)
    failed = [c for c in checks if c.ok is False]
    undecided = [c for c in checks if c.ok is None]
    parts = []
    if failed:
        verdict = "does not hold"
        parts.append("fails: " + "; ".join(f"{c.label}" + (f" ({c.reason})" if c.reason else "") for c in failed))
        if undecided:
            parts.append(f"{len(undecided)} other check(s) undecided")
    elif undecided:
        verdict = "inconclusive"
        by_reason: dict[str, list[str]] = {}
        for c in undecided:
            by_reason.setdefault(c.reason, []).append(c.label)
        parts.append("undecided: " + "; ".join(f"{', '.join(labels)}: {why}" for why, labels in by_reason.items()))
    else:
        verdict = "holds"
    if single:
        parts.append(single)
    if extra:
        parts.append(extra)
    return verdict, "; ".join(parts)


def _row(claim_id: int, claim: str, rule: str, numbers: Sequence[str], checks: Sequence[Check],
         sel: _Selection, families: Sequence[str | None], rhos: Sequence[float], extra: str = "") -> dict[str, object]:
    single = sel.single_run(families, rhos)
    verdict, why = _verdict(checks, extra, single)
    return {"id": claim_id, "claim": claim, "rule": rule, "numbers": "; ".join(n for n in numbers if n),
            "verdict": verdict, "why": why}


def _numbers(sel: _Selection, rhos: Sequence[float], families: Sequence[str | None], metric: str) -> list[str]:
    return [f"ρ{rho:g} " + ", ".join(c for c in (sel.cell(rho, f, metric) for f in families) if c) for rho in rhos]


def _others(sel: _Selection, exclude: str) -> list[str]:
    """The other paper families (roles of :data:`PAPER_ROLES` but ``exclude``), deduplicated."""
    return list(dict.fromkeys(f for r in PAPER_ROLES if r != exclude and (f := sel.fam(r)) is not None))


# ---------------------------------------------------------------------------------------- claims

def claim_topk_starves(sel: _Selection) -> dict[str, object]:
    """1. TopK without AuxK starves at ρ ≥ :data:`STARVE_MIN_RHO`: the paper's TopK (role
    ``topk``) has dead % ≥ :data:`STARVE_DEAD_PCT` at every such ρ. sae-lens TopK (role
    ``topk_saelens``) is judged the same way, reported in ``numbers`` and ``why`` only."""
    topk, saelens = sel.fam("topk"), sel.fam("topk_saelens")
    rhos = [r for r in sel.rhos if r >= STARVE_MIN_RHO - 1e-9]
    rule = (f"{topk}'s selected config has dead % ≥ {STARVE_DEAD_PCT:g} at every ρ ≥ {STARVE_MIN_RHO:g}"
            + (f" ({saelens}, sae-lens TopK without AuxK, judged alike, reported but not in the verdict)"
               if saelens and saelens != topk else ""))

    def checks_for(family: str | None, role: str) -> list[Check]:
        return [_level_check(sel, rho, family, "dead_pct", threshold=STARVE_DEAD_PCT, role=role,
                             label=f"{family} dead % ≥ {STARVE_DEAD_PCT:g} at ρ{rho:g}") for rho in rhos]

    checks = checks_for(topk, "topk")
    extra = "" if rhos else f"no dataset with ρ ≥ {STARVE_MIN_RHO:g}"
    families: list[str | None] = [topk]
    if saelens and saelens != topk and sel.present(saelens):
        families.append(saelens)
        v, w = _verdict(checks_for(saelens, "topk_saelens"))
        extra = "; ".join(x for x in (extra, f"{saelens} (not in the verdict): {v}" + (f" ({w})" if w else "")) if x)
    return _row(1, f"TopK without AuxK starves at ρ ≥ {STARVE_MIN_RHO:g}", rule,
                _numbers(sel, rhos, families, "dead_pct"), checks, sel, families, rhos, extra)


def claim_l1_en_starve_with_rho(sel: _Selection) -> dict[str, object]:
    """2. ℓ1 and EN starve more as ρ grows: for each of roles ``l1`` and ``en``, dead % at the
    largest ρ ≥ dead % at the smallest ρ + :data:`STARVE_RISE_PP`, and no step between consecutive
    ρs lowers it by more than :data:`STARVE_STEP_DROP_PP` points."""
    fams = [sel.fam("l1"), sel.fam("en")]
    rhos = sel.rhos
    rule = (f"for each of {' and '.join(str(f) for f in fams)}: dead % at the largest ρ ≥ dead % at the smallest ρ "
            f"+ {STARVE_RISE_PP:g} points, and no step between consecutive ρs lowers dead % by more than "
            f"{STARVE_STEP_DROP_PP:g} points")
    checks: list[Check] = []
    for role, family in zip(("l1", "en"), fams):
        if len(rhos) < 2:
            checks.append(Check(None, f"{family} trend", "fewer than two ρs"))
            continue
        first, last = rhos[0], rhos[-1]
        checks.append(_rise_check(sel, family, role, first, last, STARVE_RISE_PP, strict=False,
                                  label=f"{family} dead % ρ{last:g} − ρ{first:g} ≥ {STARVE_RISE_PP:g}"))
        for a, b in zip(rhos, rhos[1:]):
            checks.append(_rise_check(sel, family, role, a, b, -STARVE_STEP_DROP_PP, strict=False,
                                      label=f"{family} dead % ρ{b:g} − ρ{a:g} ≥ −{STARVE_STEP_DROP_PP:g}"))
    numbers = [f"{f}: " + ", ".join(f"ρ{r:g} {sel.value(r, f, 'dead_pct')}" for r in rhos) for f in fams if f]
    return _row(2, "ℓ1 and EN starve more as ρ grows", rule, numbers, checks, sel, fams, rhos)


def _rise_check(sel: _Selection, family: str | None, role: str, rho_a: float, rho_b: float, threshold: float, *,
                strict: bool, label: str) -> Check:
    """``dead %(ρ_b) − dead %(ρ_a) ≥ threshold`` on the two [min, max] intervals of one family."""
    why = "; ".join(x for x in (sel.unavailable(rho_a, [family], "dead_pct", [role]),
                                sel.unavailable(rho_b, [family], "dead_pct", [role])) if x)
    if why:
        return Check(None, label, why)
    ia, ib = sel.interval(rho_a, family, "dead_pct"), sel.interval(rho_b, family, "dead_pct")
    ok = _decide(ib.lo - ia.hi, ib.hi - ia.lo, threshold, strict)
    return Check(ok, label, "within the seed spread ([min, max] overlap)" if ok is None else "")


def claim_aen_fewest_dead(sel: _Selection) -> dict[str, object]:
    """3. AEN has the fewest dead latents at every ρ at matched L0: at every ρ, AEN's dead % ≤
    each other paper family's (roles ``l1``, ``en``, ``al``, ``topk``); ties pass."""
    aen, others = sel.fam("aen"), _others(sel, "aen")
    rule = (f"at every ρ, {aen}'s dead % ≤ the dead % of each of {', '.join(others)} (ties pass), "
            "every selected run at matched L0")
    checks = [_diff_check(sel, rho, o, aen, "dead_pct", sign=1, threshold=0.0, strict=False, roles=["", "aen"],
                          label=f"{aen} ≤ {o} at ρ{rho:g}") for rho in sel.rhos for o in others]
    return _row(3, "AEN has the fewest dead latents at every ρ at matched L0", rule,
                _numbers(sel, sel.rhos, [aen, *others], "dead_pct"), checks, sel, [aen, *others], sel.rhos)


def claim_aen_no_shrinkage(sel: _Selection) -> dict[str, object]:
    """4. AEN removes shrinkage: at every ρ, AEN's |shrinkage − 1| < ℓ1's (shrinkage =
    Σ‖x̂‖₁/Σ‖x‖₁, 1 = none; per run, then [min, max])."""
    aen, l1 = sel.fam("aen"), sel.fam("l1")
    rule = f"at every ρ, {aen}'s |shrinkage − 1| < {l1}'s (shrinkage Σ‖x̂‖₁/Σ‖x‖₁; numbers: |shrinkage − 1|)"
    checks = [_diff_check(sel, rho, aen, l1, "shrinkage_gap", sign=-1, threshold=0.0, strict=True,
                          roles=["aen", "l1"], label=f"{aen} |s − 1| < {l1} at ρ{rho:g}") for rho in sel.rhos]
    return _row(4, "AEN removes shrinkage (shrinkage closer to 1 than ℓ1's)", rule,
                _numbers(sel, sel.rhos, [aen, l1], "shrinkage_gap"), checks, sel, [aen, l1], sel.rhos)


def claim_aen_support_f1(sel: _Selection) -> dict[str, object]:
    """5. AEN's support F1 at ρ = :data:`SUPPORT_RHO` beats the paper's TopK's and ℓ1's (strictly)."""
    aen, rivals = sel.fam("aen"), [sel.fam("topk"), sel.fam("l1")]
    rhos = [r for r in sel.rhos if math.isclose(r, SUPPORT_RHO, abs_tol=1e-9)]
    rule = f"at ρ = {SUPPORT_RHO:g}, {aen}'s support F1 > {rivals[0]}'s and > {rivals[1]}'s"
    checks = [_diff_check(sel, rho, aen, o, "support_f1", sign=1, threshold=0.0, strict=True, roles=["aen", role],
                          label=f"{aen} > {o} at ρ{rho:g}") for rho in rhos for o, role in zip(rivals, ("topk", "l1"))]
    extra = "" if rhos else f"no dataset with ρ = {SUPPORT_RHO:g}"
    return _row(5, f"AEN's support F1 at ρ = {SUPPORT_RHO:g} beats TopK's and ℓ1's", rule,
                _numbers(sel, rhos, [aen, *rivals], "support_f1"), checks, sel, [aen, *rivals], rhos, extra)


def claim_aen_stable(sel: _Selection) -> dict[str, object]:
    """6. AEN's coding map is more stable than ℓ1's: at every ρ, AEN's median Lipschitz ratio
    ``lipschitz_median`` < ℓ1's and its ``support_flip_rate`` < ℓ1's."""
    aen, l1 = sel.fam("aen"), sel.fam("l1")
    metrics = ("lipschitz_median", "support_flip_rate")
    rule = f"at every ρ, {aen}'s lipschitz_median < {l1}'s and {aen}'s support_flip_rate < {l1}'s"
    checks = [_diff_check(sel, rho, aen, l1, m, sign=-1, threshold=0.0, strict=True, roles=["aen", "l1"],
                          label=f"{aen} {m} < {l1} at ρ{rho:g}") for rho in sel.rhos for m in metrics]
    numbers = [f"{m}: " + "; ".join(_numbers(sel, sel.rhos, [aen, l1], m)) for m in metrics]
    return _row(6, "AEN's coding map is more stable than ℓ1's (Lipschitz, support flips)", rule, numbers, checks,
                sel, [aen, l1], sel.rhos)


def claim_aen_ev_competitive(sel: _Selection) -> dict[str, object]:
    """7. AEN's EV is competitive: at every ρ, AEN's EV ≥ each other paper family's EV −
    :data:`EV_MARGIN` (so within EV_MARGIN of the best of them)."""
    aen, others = sel.fam("aen"), _others(sel, "aen")
    rule = (f"at every ρ, {aen}'s EV ≥ the EV of each of {', '.join(others)} − {EV_MARGIN:g} "
            f"(within {EV_MARGIN:g} of the best paper family)")
    checks = [_diff_check(sel, rho, aen, o, "EV", sign=1, threshold=-EV_MARGIN, strict=False, roles=["aen", ""],
                          label=f"{aen} ≥ {o} − {EV_MARGIN:g} at ρ{rho:g}") for rho in sel.rhos for o in others]
    return _row(7, "AEN's EV is competitive", rule, _numbers(sel, sel.rhos, [aen, *others], "EV"), checks, sel,
                [aen, *others], sel.rhos)


#: The claim rules, in the paper's order.
CLAIMS: tuple[Callable[[_Selection], dict[str, object]], ...] = (
    claim_topk_starves, claim_l1_en_starve_with_rho, claim_aen_fewest_dead, claim_aen_no_shrinkage,
    claim_aen_support_f1, claim_aen_stable, claim_aen_ev_competitive,
)


def roles_of(families: Mapping[str, str | None] | None = None) -> dict[str, str | None]:
    """:data:`DEFAULT_ROLES` updated with ``families`` (role → family name; None drops a role)."""
    return {**DEFAULT_ROLES, **(families or {})}


def scorecard(leaderboard: pd.DataFrame, families: Mapping[str, str | None] | None = None, *,
              k: float | None = None, only: Sequence[str] | None = None) -> pd.DataFrame:
    """The claims scorecard: one row per claim (:data:`CLAIMS`) with :data:`COLUMNS`.

    ``leaderboard``: the leaderboard (or any subset of it); only our synthetic family rows are
    used (:func:`synthetic_rows`). ``families``: the family roles (:func:`roles_of`, defaults
    :data:`DEFAULT_ROLES`). ``k``: the teacher's k (default: the ``teacher_k`` column).
    ``only``: restrict to these families (e.g. the config's ``synthetic.families``)."""
    selected = selected_configs(synthetic_rows(leaderboard), k=k, families=only)
    sel = _Selection(selected, roles_of(families))
    return pd.DataFrame([claim(sel) for claim in CLAIMS], columns=list(COLUMNS))


def scorecard_markdown(table: pd.DataFrame, title: str = "Claims of the paper, checked against our leaderboard"
                       ) -> str:
    """The scorecard as markdown: a title, :data:`DECISION_RULE` and the table."""
    cols = [c for c in COLUMNS if c in table.columns]
    body = markdown_table(cols, ([("" if pd.isna(r[c]) else r[c]) for c in cols] for _, r in table.iterrows()))
    return f"# {title}\n\n{DECISION_RULE}\n\n{body}\n"


def write_scorecard(table: pd.DataFrame, out_csv: str, out_md: str, title: str | None = None) -> None:
    """Write the scorecard to ``out_csv`` (every column) and ``out_md``, each atomically."""
    write_with(out_csv, lambda tmp: table.to_csv(tmp, index=False))
    write_text(out_md, scorecard_markdown(table) if title is None else scorecard_markdown(table, title))


# ----------------------------------------------------------------- the paper-scale replication

#: The roles in the paper-scale replication (results/reference/replication_ours.csv): its
#: ``model`` column names the family. It ran AEN, ℓ1 and sae-lens's TopK (no AuxK) at the authors'
#: reference configurations only; EN, AL and the paper's TopK were not run: their roles name
#: families absent from the rows, so the checks that need them are undecided and say so.
REPLICATION_ROLES: dict[str, str | None] = {
    "aen": "AEN", "l1": "L1", "en": "EN (not run)", "topk": "TopK-paper (not run)", "al": "AL (not run)",
    "topk_saelens": "TopK",
}


def replication_rows(ours: pd.DataFrame) -> pd.DataFrame:
    """The replication export as scorecard input: ``family`` = its ``model`` (AEN, L1, TopK: one
    reference configuration per ρ), the lowest seed of each (dataset, model) as the grid run and
    the other seeds as ``replicate == "seed"`` rows (same teacher: no teacher spread)."""
    missing = {"dataset", "model", "seed", "L0"} - set(ours.columns)
    if missing:
        raise ValueError(f"replication rows lack column(s) {sorted(missing)}")
    rows = ours.copy()
    rows["family"] = rows["model"].astype(str)
    rows["params"] = ""  # one configuration per (ρ, model)
    first = rows.groupby(["dataset", "family"])["seed"].transform("min")
    rows["replicate"] = (rows["seed"] != first).map({True: "seed", False: ""})
    return rows


def replication_scorecard(ours: pd.DataFrame, k: float) -> pd.DataFrame:
    """The claims scorecard of the paper-scale replication (:func:`replication_rows`, roles
    :data:`REPLICATION_ROLES`, the paper-scale teacher's ``k``)."""
    return scorecard(replication_rows(ours), REPLICATION_ROLES, k=k)
