"""Train a stack of K ``aen`` SAEs in one batched step on one shared data stream.

The per-SAE path (:mod:`aenbench.training`) runs sae-lens's ``SAETrainer`` once per SAE. This
engine steps K SAEs of one shape together (:class:`aenbench.saes.aen.AENStack`): one batched
forward and backward per step over the K stacked parameter sets, on the batch every one of them
would have drawn alone (the SAEs of a stack share a seed, and the stream depends on the seed
only). Per SAE it keeps exactly the per-SAE trainer's rules:

* Adam with sae-lens's betas and lr schedule (Adam is elementwise, so one optimiser over the
  stacked tensors is K independent optimisers with one step count; torch's ``foreach`` kernels,
  whose rounding is the per-tensor loop's that sae-lens's trainer takes — the fused kernel is
  faster but drifts ≈ 40× more against the per-SAE path, bench/RESULTS.md);
* the gradient-norm clip, per SAE: g_k ← g_k · min(1, c / (‖g_k‖ + 1e-6)) with ‖g_k‖ the norm over
  all of SAE k's gradients, torch's ``clip_grad_norm_`` rule applied to each SAE's own
  parameters (c = 1.0: sae-lens's ``SAETrainer`` clip);
* its own coefficient schedule (sae-lens's ``CoefficientScheduler``, one per SAE and name);
* the post-step decoder projection, the EMA and w̃, in the order of ``AENTrainingSAE``;
* the dead-window counters ``n_forward_passes_since_fired`` and ``act_freq_scores`` of
  sae-lens's trainer, per SAE.

At the end each SAE's slice is copied back into its own ``AENTrainingSAE`` and into a
sae-lens trainer of its own that holds its counters (``set_final_sae_metadata``), so the saved
SAE and its record are what the per-SAE path writes.

Faults. A SAE whose loss terms turn NaN or inf is frozen at its parameters before that step and
reported (:class:`Diverged`: run, step, loss terms); the others train on. Checkpoints hold the
whole stack (parameters, buffers, Adam, schedulers, counters, frozen SAEs, torch's RNG) and a
resumed stack replays the stream from its seed: bit-identical on CPU, as the per-SAE path.
Its ``checkpoint.json`` records the sha256 of ``stack_state.pt``; a checkpoint that does not match
it, does not load, or holds NaN / inf outside the frozen SAEs' slices is moved aside and the stack
trains from step 0 (:func:`aenbench.training.load_checkpoint`); a state with NaN / inf in a live
SAE's slice is not saved.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from sae_lens.training.optim import CoefficientScheduler, get_lr_scheduler
from sae_lens.saes.sae import TrainCoefficientConfig

from aenbench.io import atomic_dir, move_aside
from aenbench.saes.aen import AENStack, AENTrainingSAE
from aenbench.training import (
    CheckedTrainer, TrainResult, _RecordingStream, load_checkpoint, nonfinite_tensor, restore_stream, trainer_config,
    write_checkpoint_meta,
)

log = logging.getLogger(__name__)

STACK_CHECKPOINT_FORMAT = "stack-2"  # stack-2: checkpoint.json records the sha256 of stack_state.pt
CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s


@dataclass
class Diverged:
    """A SAE of a stack whose loss became NaN or inf at ``step`` (frozen from then on)."""

    run: str
    step: int
    losses: dict[str, float]

    def __str__(self) -> str:
        terms = ", ".join(f"{k}={v!r}" for k, v in self.losses.items())
        return f"{self.run} at step {self.step} ({terms})"


@dataclass
class StackResult:
    """``results[k]``: SAE k's TrainResult, None when it diverged (then in ``diverged``)."""

    results: list[TrainResult | None]
    diverged: list[Diverged]
    seconds: float
    stack_size: int
    resumed_at: int = 0


def per_sae_clip_(grads: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip each SAE's gradients (leading dimension K of every tensor) to total norm ≤ ``max_norm``,
    in place, by ``clip_grad_norm_``'s rule; returns the K total norms before clipping."""
    norms_PK = torch.stack([torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1) for g in grads])
    total_K = torch.linalg.vector_norm(norms_PK, dim=0)
    coef_K = (max_norm / (total_K + CLIP_EPS)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef_K.view(-1, *([1] * (g.dim() - 1))))
    return total_K


class StackTrainer:
    """The state of one stack's training: the stack, its optimiser and schedules, the per-SAE
    sae-lens counters, the frozen SAEs."""

    def __init__(self, stack: AENStack, names: Sequence[str], *, steps: int, batch_size: int, lr: float,
                 auxk_dead_window_steps: int, device: str, max_grad_norm: float | None = 1.0):
        self.stack, self.names = stack, list(names)
        self.cfg = trainer_config(steps=steps, batch_size=batch_size, lr=lr, device=device,
                                  auxk_dead_window_steps=auxk_dead_window_steps)
        self.max_grad_norm = max_grad_norm
        K, M = len(stack), stack.W_enc.shape[-1]
        self.optimizer = torch.optim.Adam(stack.parameters(), lr=self.cfg.lr,
                                          betas=(self.cfg.adam_beta1, self.cfg.adam_beta2), foreach=True)
        self.lr_scheduler = get_lr_scheduler(
            self.cfg.lr_scheduler_name, lr=self.cfg.lr, optimizer=self.optimizer, warm_up_steps=self.cfg.lr_warm_up_steps,
            decay_steps=self.cfg.lr_decay_steps, training_steps=self.cfg.total_training_steps, lr_end=self.cfg.lr_end,
            num_cycles=self.cfg.n_restart_cycles)
        self.schedulers: list[dict[str, CoefficientScheduler]] = []
        for m in stack.members:
            per = {}
            for name, c in m.get_coefficients().items():
                if not isinstance(c, TrainCoefficientConfig):
                    c = TrainCoefficientConfig(value=c, warm_up_steps=0)
                per[name] = CoefficientScheduler(warm_up_steps=c.warm_up_steps, final_value=c.value)
            self.schedulers.append(per)
        dev = stack.W_enc.device
        self.n_training_steps = 0
        self.n_training_samples = 0
        self.act_freq_scores = torch.zeros(K, M, device=dev)
        self.n_forward_passes_since_fired = torch.zeros(K, M, device=dev)
        self.n_frac_active_samples = 0
        self.frozen: dict[int, dict[str, torch.Tensor]] = {}  # k -> its parameters when it was frozen
        self.diverged: list[Diverged] = []
        self._coefficients: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- per step -----------------------------------------------------------------------------

    def coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """λ₁_K and λ₂_K of this step (rebuilt only while a schedule still moves)."""
        moving = any(s.current_step < s.warm_up_steps for per in self.schedulers for s in per.values())
        if self._coefficients is None or moving:
            dt, dev = self.stack.W_enc.dtype, self.stack.W_enc.device
            self._coefficients = tuple(  # type: ignore[assignment]
                torch.tensor([per[n].value for per in self.schedulers], dtype=dt, device=dev) for n in ("l1", "l2"))
        assert self._coefficients is not None
        return self._coefficients

    def step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """One training step of every SAE on ``batch`` (the one for completed-step count
        ``n_training_steps``); the caller advances ``n_training_steps``."""
        stack = self.stack
        x_BN = batch.to(stack.W_enc.device)
        self.n_training_samples += x_BN.shape[0]
        stack.train()
        l1_K, l2_K = self.coefficients()
        losses, acts_KBM = stack.training_losses(x_BN, self.n_training_steps, l1_K, l2_K)
        with torch.no_grad():  # sae-lens's SAETrainer._train_step counters, per SAE
            fired_KM = torch.count_nonzero(acts_KBM, dim=-2)  # on how many of the B samples each latent fired
            self.n_forward_passes_since_fired += 1
            self.n_forward_passes_since_fired[fired_KM > 0] = 0
            self.act_freq_scores += fired_KM
            self.n_frac_active_samples += self.cfg.train_batch_size_samples
        total_K = losses["mse_loss"] + losses["l1_loss"] + losses["l2_loss"]
        total_K.sum().backward()
        terms_TK = torch.stack([total_K.detach(), *(v.detach() for v in losses.values())])
        finite_K = torch.isfinite(terms_TK).all(dim=0)
        if not bool(finite_K.all()):
            self._freeze(finite_K, {"loss": total_K, **losses})
        grads = [p.grad for p in stack.parameters()]
        if self.frozen:
            alive = torch.ones(len(stack), dtype=torch.bool, device=finite_K.device)
            alive[list(self.frozen)] = False
            for g in grads:
                g.copy_(torch.where(alive.view(-1, *([1] * (g.dim() - 1))), g, 0.0))
        if self.max_grad_norm is not None:
            per_sae_clip_(grads, self.max_grad_norm)
        self.optimizer.step()
        stack.project_decoder()  # the per-SAE path's optimiser post-step hook
        self.optimizer.zero_grad()
        self.lr_scheduler.step()
        for per in self.schedulers:
            for s in per.values():
                s.step()
        if self.frozen:
            with torch.no_grad():
                for k, params in self.frozen.items():
                    for name, value in params.items():
                        getattr(stack, name).data[k].copy_(value)
        return losses

    def _freeze(self, finite_K: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        for k in (~finite_K).nonzero().flatten().tolist():
            if k in self.frozen:
                continue
            with torch.no_grad():
                self.frozen[k] = {n: getattr(self.stack, n).detach()[k].clone()
                                  for n in ("W_enc", "b_enc", "W_dec", "b_dec")}
            d = Diverged(self.names[k], self.n_training_steps,
                         {n: float(v.detach()[k]) for n, v in terms.items()})
            self.diverged.append(d)
            log.warning("stack: %s diverged: frozen, the other SAEs train on", d)

    def maybe_reset_sparsity(self) -> None:
        """sae-lens's sparsity window: reset the firing counts every ``feature_sampling_window`` steps."""
        if self.n_training_steps > 0 and self.n_training_steps % self.cfg.feature_sampling_window == 0:
            self.act_freq_scores = torch.zeros_like(self.act_freq_scores)
            self.n_frac_active_samples = 0

    # -- checkpoints --------------------------------------------------------------------------

    def state(self, rng: torch.Tensor, fingerprint: str) -> dict[str, Any]:
        return {
            "format": STACK_CHECKPOINT_FORMAT, "fingerprint": fingerprint,
            "stack": {k: v.detach().cpu().clone() for k, v in self.stack.state_dict().items()},
            "optimizer": self.optimizer.state_dict(), "lr_scheduler": self.lr_scheduler.state_dict(),
            "schedulers": [{n: s.state_dict() for n, s in per.items()} for per in self.schedulers],
            "n_training_steps": self.n_training_steps, "n_training_samples": self.n_training_samples,
            "act_freq_scores": self.act_freq_scores.cpu(),
            "n_forward_passes_since_fired": self.n_forward_passes_since_fired.cpu(),
            "n_frac_active_samples": self.n_frac_active_samples,
            "frozen": {str(k): {n: t.cpu() for n, t in v.items()} for k, v in self.frozen.items()},
            "diverged": [{"run": d.run, "step": d.step, "losses": d.losses} for d in self.diverged],
            "adaptive_trace": [list(m.adaptive_trace) for m in self.stack.members],
            "torch_rng": rng,
        }

    def load(self, state: dict[str, Any]) -> None:
        dev = self.stack.W_enc.device
        self.stack.load_state_dict({k: v.to(dev) for k, v in state["stack"].items()})
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        for per, saved in zip(self.schedulers, state["schedulers"]):
            for n, s in per.items():
                s.load_state_dict(saved[n])
        self.n_training_steps = state["n_training_steps"]
        self.n_training_samples = state["n_training_samples"]
        self.act_freq_scores = state["act_freq_scores"].to(dev)
        self.n_forward_passes_since_fired = state["n_forward_passes_since_fired"].to(dev)
        self.n_frac_active_samples = state["n_frac_active_samples"]
        self.frozen = {int(k): {n: t.to(dev) for n, t in v.items()} for k, v in state["frozen"].items()}
        self.diverged = [Diverged(**d) for d in state["diverged"]]
        for m, trace in zip(self.stack.members, state["adaptive_trace"]):
            m.adaptive_trace[:] = trace
        self._coefficients = None


def stack_nonfinite(state: dict[str, Any], name: str = "stack_state.pt") -> str | None:
    """The name of a NaN / inf tensor of a stack state outside the frozen SAEs' slices (a frozen
    SAE's buffers and Adam moments may legitimately be non-finite), or None."""
    frozen = {int(k) for k in state.get("frozen", {})}
    K = len(state.get("adaptive_trace", [])) or None

    def live(t: Any) -> Any:
        if frozen and K and torch.is_tensor(t) and t.dim() >= 1 and t.shape[0] == K:
            keep = torch.ones(K, dtype=torch.bool)
            keep[sorted(frozen)] = False
            return t[keep]
        return t

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [walk(v) for v in obj]
        return live(obj)

    checked = {k: walk(v) for k, v in state.items() if k not in ("frozen", "diverged", "torch_rng", "stream")}
    return nonfinite_tensor(checked, name)


def _save_checkpoint(trainer: StackTrainer, folder: Path, rng: torch.Tensor, fingerprint: str,
                     stream: dict[str, Any] | None = None) -> bool:
    """Save the stack's state into ``folder/latest`` (atomically, with the sha256 of
    ``stack_state.pt`` in ``checkpoint.json``); False, with a warning, when it holds NaN / inf in
    a live SAE or the write fails (disk full): the previous checkpoint stays."""
    state = trainer.state(rng, fingerprint)
    if stream is not None:
        from aenbench.llm.stream import snapshot

        state["stream"] = snapshot(stream)
    bad = stack_nonfinite(state)
    if bad is not None:
        log.warning("stack checkpoint at step %d not saved: %s holds NaN or inf; the previous checkpoint in %s stays",
                    trainer.n_training_steps, bad, folder)
        return False
    try:
        with atomic_dir(folder / "latest") as tmp:
            torch.save(state, str(tmp / "stack_state.pt"))
            write_checkpoint_meta(tmp, STACK_CHECKPOINT_FORMAT, trainer.n_training_steps, fingerprint)
    except OSError as err:
        log.warning("stack checkpoint at step %d could not be written to %s (%s); training goes on, the previous "
                    "checkpoint stays", trainer.n_training_steps, folder / "latest", err)
        return False
    return True


def _find_checkpoint(folder: Path | None, fingerprint: str) -> dict[str, Any] | None:
    """The verified stack state of this stack in ``folder`` (or None: none, another stack's, or
    one that failed verification and was moved aside)."""
    found = load_checkpoint(folder, fingerprint, fmt=STACK_CHECKPOINT_FORMAT,
                            finite=lambda name, obj: stack_nonfinite(obj, name) if isinstance(obj, dict)
                            else nonfinite_tensor(obj, name))
    if found is None:
        return None
    path, loaded = found
    if "stack_state.pt" not in loaded:
        dest = move_aside(path)
        log.warning("checkpoint %s is not usable: its checkpoint.json does not list stack_state.pt; moved it aside "
                    "to %s and training from step 0", path, dest)
        return None
    return loaded["stack_state.pt"]


def new_stack_trainer(saes: Sequence[AENTrainingSAE], names: Sequence[str], *, steps: int, batch_size: int, lr: float,
                      auxk_dead_window_steps: int, device: str, max_grad_norm: float | None) -> StackTrainer:
    """The stack of ``saes`` (projected once, as ``train_sae`` does before its first step) and its trainer."""
    for sae in saes:
        sae.to(device)
        sae.post_optimizer_step()
        sae.projected_after_step = True
    return StackTrainer(AENStack(list(saes)), names, steps=steps, batch_size=batch_size, lr=lr,
                        auxk_dead_window_steps=auxk_dead_window_steps, device=device, max_grad_norm=max_grad_norm)


def stack_results(trainer: StackTrainer, saes: Sequence[AENTrainingSAE], seconds: float,
                  dead_window_steps: int) -> list[TrainResult | None]:
    """Write the stack back into its SAEs; each one's TrainResult (None for a diverged one), with
    sae-lens's end-of-training metadata set as ``SAETrainer.fit`` sets it."""
    trainer.stack.write_back(trainer.n_training_steps - 1)
    results: list[TrainResult | None] = []
    for k, sae in enumerate(saes):
        if k in trainer.frozen:
            results.append(None)
            continue
        member = CheckedTrainer(cfg=trainer.cfg, sae=sae, data_provider=iter(()))
        member.n_training_steps = trainer.n_training_steps
        member.n_training_samples = trainer.n_training_samples
        member.act_freq_scores = trainer.act_freq_scores[k].clone()
        member.n_forward_passes_since_fired = trainer.n_forward_passes_since_fired[k].clone()
        member.n_frac_active_samples = trainer.n_frac_active_samples
        member.set_final_sae_metadata()
        results.append(TrainResult(sae, member, seconds / len(saes), trainer.n_training_steps, dead_window_steps,
                                   member.dead_mask(dead_window_steps)))
    return results


def train_stack(
    saes: Sequence[AENTrainingSAE],
    data_provider: Any,
    *,
    names: Sequence[str],
    steps: int,
    batch_size: int,
    lr: float,
    dead_window_steps: int,
    auxk_dead_window_steps: int = 1000,
    device: str = "cpu",
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
    run_fingerprint: str = "",
    max_grad_norm: float | None = 1.0,
    label: str = "stack",
) -> StackResult:
    """Train ``saes`` (built as for the per-SAE path, one per run, sharing a seed) for ``steps``
    steps of ``batch_size`` samples of ``data_provider``, as one stack. ``names`` name them in
    reports; ``run_fingerprint`` identifies the stack's checkpoint (one from another stack is
    ignored). Returns each SAE's TrainResult (None for a diverged one) with the stack's wall
    time; ``TrainResult.seconds`` is the stack's time / K, each SAE's share."""
    if dead_window_steps > steps:
        raise ValueError(f"dead_window_steps ({dead_window_steps}) must be ≤ steps ({steps})")
    saes = list(saes)
    trainer = new_stack_trainer(saes, names, steps=steps, batch_size=batch_size, lr=lr,
                                auxk_dead_window_steps=auxk_dead_window_steps, device=device,
                                max_grad_norm=max_grad_norm)
    stream = _RecordingStream(data_provider)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    found = _find_checkpoint(ckpt, run_fingerprint)
    resumed_at = -1
    if found is not None:
        trainer.load(found)
        how = restore_stream(data_provider, trainer.n_training_steps, found.get("stream"))
        torch.set_rng_state(found["torch_rng"])
        resumed_at = trainer.n_training_steps
        log.info("%s: resumed from the checkpoint %s at step %d of %d (the stream from %s)", label, ckpt, resumed_at,
                 steps, how)
    report_every = max(1, steps // 10)
    start = time.perf_counter()
    while trainer.n_training_steps < steps:
        s = trainer.n_training_steps
        if ckpt is not None and checkpoint_every > 0 and s > 0 and s % checkpoint_every == 0 and s != resumed_at:
            # the state before batch s: torch's RNG now, and a stateful stream's position now
            _save_checkpoint(trainer, ckpt, torch.get_rng_state(), run_fingerprint,
                             stream=data_provider.state_dict() if stream.stateful else None)
        trainer.maybe_reset_sparsity()
        trainer.step(next(stream))
        trainer.n_training_steps += 1
        if trainer.n_training_steps % report_every == 0 or trainer.n_training_steps == steps:
            done = trainer.n_training_steps - max(resumed_at, 0)
            spent = time.perf_counter() - start
            eta = spent / done * (steps - trainer.n_training_steps) if done else math.nan
            log.info("%s (%d SAEs): step %d/%d, %.1f s, about %.0f s left%s", label, len(trainer.stack),
                     trainer.n_training_steps, steps, spent, eta,
                     f", {len(trainer.frozen)} diverged" if trainer.frozen else "")
    seconds = time.perf_counter() - start
    results = stack_results(trainer, saes, seconds, dead_window_steps)
    return StackResult(results, trainer.diverged, seconds, len(saes), max(resumed_at, 0))
