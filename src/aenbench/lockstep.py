"""Train several SAEs and stacks in lockstep from one stream: each batch is drawn once and
every member takes its step on it (the LLM track's streaming mode, where drawing a batch means
running the model; ``sae_lens.training.multi_sae_trainer.MultiSAETrainer`` is the same pattern for
sae-lens trainers, but it builds plain ``SAETrainer``s and cannot hold a stack).

Members are :class:`aenbench.stacked_training.StackTrainer` stacks (the ``aen`` runs, in stacks
as in ``train_stage``) and sae-lens trainers (:class:`aenbench.training.CheckedTrainer`, one per SAE
of any other architecture); each steps exactly as in its own engine (``train_stack`` /
``train_sae``), so a member's weights equal what its engine trains alone on the same batches.

One checkpoint holds every member, the stream's state (data position, buffer, generator) and
torch's RNG, written atomically with the sha256 of each file (``checkpoint.json``), so a killed
job resumes the whole group without replaying the stream.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import load_file, save_file

from aenbench.io import atomic_dir
from aenbench.stacked_training import Diverged, StackTrainer, new_stack_trainer, stack_nonfinite, stack_results
from aenbench.training import (
    CheckedTrainer, TrainResult, attach_post_step, load_checkpoint, nonfinite_tensor, restore_stream, trainer_config,
    write_checkpoint_meta,
)

log = logging.getLogger(__name__)

LOCKSTEP_CHECKPOINT_FORMAT = "lockstep-1"
STATE = "lockstep_state.pt"


@dataclass
class Member:
    """A stack (``stack``) or one sae-lens trainer (``trainer``) and the SAEs it trains."""

    saes: list[Any]
    names: list[str]
    stack: StackTrainer | None = None
    trainer: CheckedTrainer | None = None
    results: list[TrainResult | None] = field(default_factory=list)

    def step(self, batch: torch.Tensor) -> None:
        t: Any = self.stack if self.stack is not None else self.trainer
        t.maybe_reset_sparsity()
        t.step(batch)
        t.n_training_steps += 1


@dataclass
class LockstepResult:
    results: list[list[TrainResult | None]]  # per member, per SAE
    diverged: list[Diverged]
    seconds: float
    resumed_at: int


def train_lockstep(
    groups: Sequence[tuple[str, Sequence[Any], Sequence[str]]],
    data_provider: Any,
    *,
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
    label: str = "lockstep",
) -> LockstepResult:
    """Train ``groups`` (each ``("stacked", saes, names)`` or ``("per_sae", [sae], [name])``) for
    ``steps`` steps on the batches of ``data_provider``, every member on every batch."""
    if dead_window_steps > steps:
        raise ValueError(f"dead_window_steps ({dead_window_steps}) must be ≤ steps ({steps})")
    cfg = trainer_config(steps=steps, batch_size=batch_size, lr=lr, device=device,
                         auxk_dead_window_steps=auxk_dead_window_steps)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    found = load_checkpoint(ckpt, run_fingerprint, fmt=LOCKSTEP_CHECKPOINT_FORMAT,
                            finite=lambda name, obj: (stack_nonfinite(obj, name) if name == STATE
                                                      else nonfinite_tensor(obj, name)))
    state = found[1].get(STATE) if found is not None else None
    members: list[Member] = []
    for engine, saes, names in groups:
        saes, names = list(saes), list(names)
        if engine == "stacked":
            members.append(Member(saes, names, stack=new_stack_trainer(
                saes, names, steps=steps, batch_size=batch_size, lr=lr, auxk_dead_window_steps=auxk_dead_window_steps,
                device=device, max_grad_norm=max_grad_norm)))
        else:
            (sae,) = saes
            sae.to(device)
            trainer = CheckedTrainer(cfg=cfg, sae=sae, data_provider=iter(()), max_grad_norm=max_grad_norm)
            attach_post_step(trainer, sae, resumed=state is not None)
            members.append(Member(saes, names, trainer=trainer))
    resumed_at = -1
    if state is not None:
        path = found[0]
        for i, m in enumerate(members):
            if m.stack is not None:
                m.stack.load(state["stacks"][str(i)])
            else:
                assert m.trainer is not None
                m.trainer.sae.load_state_dict(load_file(str(path / f"sae_{i}" / "sae_state.safetensors"),
                                                        device=str(m.trainer.sae.device)))
                m.trainer.load_trainer_state(path / f"sae_{i}")
        how = restore_stream(data_provider, state["step"], state["stream"])
        torch.set_rng_state(state["torch_rng"])
        resumed_at = state["step"]
        log.info("%s: resumed from the checkpoint %s at step %d of %d (the stream from %s)",
                 label, ckpt, resumed_at, steps, how)
    step = max(resumed_at, 0)
    report_every = max(1, steps // 10)
    start = time.perf_counter()
    n_saes = sum(len(m.saes) for m in members)
    while step < steps:
        if ckpt is not None and checkpoint_every > 0 and step > 0 and step % checkpoint_every == 0 and step != resumed_at:
            _save(members, data_provider, ckpt, step, run_fingerprint)
        batch = next(data_provider)
        for m in members:
            m.step(batch)
        step += 1
        if step % report_every == 0 or step == steps:
            spent = time.perf_counter() - start
            done = step - max(resumed_at, 0)
            log.info("%s (%d SAEs, %d members): step %d/%d, %.1f s, about %.0f s left", label, n_saes, len(members),
                     step, steps, spent, spent / done * (steps - step) if done else math.nan)
    seconds = time.perf_counter() - start
    results: list[list[TrainResult | None]] = []
    diverged: list[Diverged] = []
    for m in members:
        if m.stack is not None:
            # each SAE's share of the lockstep time is seconds / n_saes, as a per-SAE member's
            results.append(stack_results(m.stack, m.saes, seconds * len(m.saes) / n_saes, dead_window_steps))
            diverged += m.stack.diverged
        else:
            assert m.trainer is not None
            m.trainer.set_final_sae_metadata()  # the end of SAETrainer.fit (no scaler to fold here)
            results.append([TrainResult(m.saes[0], m.trainer, seconds / n_saes, m.trainer.n_training_steps,
                                        dead_window_steps, m.trainer.dead_mask(dead_window_steps))])
    return LockstepResult(results, diverged, seconds, max(resumed_at, 0))


def _save(members: list[Member], data_provider: Any, folder: Path, step: int, fingerprint: str) -> bool:
    """Every member, the stream and torch's RNG before batch ``step`` into ``folder/latest``; False,
    with a warning, when a live state holds NaN / inf or the write fails (the previous one stays)."""
    from aenbench.llm.stream import snapshot

    stacks = {str(i): m.stack.state(torch.empty(0, dtype=torch.uint8), fingerprint)
              for i, m in enumerate(members) if m.stack is not None}
    # a stream without a state (the synthetic SpikedStream, a function of its seed) is replayed on resume
    stream = snapshot(data_provider.state_dict()) if callable(getattr(data_provider, "state_dict", None)) else None
    state = {"step": step, "stacks": stacks, "stream": stream, "torch_rng": torch.get_rng_state()}
    bad = next((b for b in (stack_nonfinite(s, f"stack {i}") for i, s in stacks.items()) if b), None)
    for i, m in enumerate(members):
        if bad is None and m.trainer is not None:
            bad = nonfinite_tensor(m.trainer.sae.state_dict(), f"sae {i}")
    if bad is not None:
        log.warning("lockstep checkpoint at step %d not saved: %s holds NaN or inf; the previous one in %s stays",
                    step, bad, folder)
        return False
    try:
        with atomic_dir(folder / "latest") as tmp:
            torch.save(state, str(tmp / STATE))
            for i, m in enumerate(members):
                if m.trainer is not None:
                    sub = tmp / f"sae_{i}"
                    sub.mkdir()
                    save_file({k: v.detach().cpu().contiguous().clone() for k, v in m.trainer.sae.state_dict().items()},
                              str(sub / "sae_state.safetensors"))
                    m.trainer.save_trainer_state(sub)
            write_checkpoint_meta(tmp, LOCKSTEP_CHECKPOINT_FORMAT, step, fingerprint)
    except OSError as err:
        log.warning("lockstep checkpoint at step %d could not be written to %s (%s); training goes on", step,
                    folder / "latest", err)
        return False
    return True
