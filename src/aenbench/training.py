"""Train any registered sae-lens architecture with sae-lens's own ``SAETrainer``.

Baselines and AEN share this one path: the architecture is looked up in sae-lens's training
registry, the trainer is sae-lens's, and aenbench adds only two things around it:

* an optimiser post-step hook that calls ``sae.post_optimizer_step()`` when the architecture
  defines one (AEN re-projects its decoder rows there, method.md §1);
* the dead-latent window of the metric: latents that did not fire in the last
  ``dead_window_steps`` steps, read from the trainer's own ``n_forward_passes_since_fired``.

Reliability (README, "Reliability"): ``train_sae`` trains through ``CheckedTrainer``, a thin
subclass of sae-lens's trainer that overrides its public ``step()`` seam to

* stop with a ``DivergenceError`` (step, loss terms, last good checkpoint) as soon as a loss term
  is NaN or inf, before anything is written;
* save a checkpoint every ``checkpoint_every`` steps into ``checkpoint_dir`` (SAE state dict incl.
  buffers such as AEN's EMA, optimiser, lr and coefficient schedulers, sparsity counters, torch's
  global RNG state), written atomically, with the sha256 of each of its files in its
  ``checkpoint.json``; a state holding NaN or inf is not saved. ``train_sae`` resumes from a
  checkpoint of the same run only once every file matches its recorded sha256 and every tensor is
  finite (:func:`load_checkpoint`); one that fails is moved aside (``latest.corrupt-<n>``) with a
  warning naming it and why, and the run trains from step 0, so a rerun never gets stuck on it.

A stream with a state (``state_dict()`` / ``load_state_dict()``: the LLM track's
:class:`aenbench.llm.stream.MixingBuffer`, its data position, buffer and generator) is saved with
the checkpoint and restored on resume, so nothing is replayed. Any other stream is rebuilt from
its seed and fast-forwarded by the number of completed steps, so a stream that depends only on
its own seed (the synthetic ``SpikedStream``) resumes at exactly the same batch.

sae-lens's trainer always clips the gradient norm at 1.0 and uses Adam with PyTorch's default
betas. The paper clips only on LLM runs: ``train.max_grad_norm`` (``max_grad_norm`` here; None =
no clip) sets the clip of both engines, through :func:`gradient_clip` on this path. Its default is
sae-lens's 1.0 everywhere for now (issue "The main job runs the paper's whole grid" sets it to
null in the synthetic configs, with the re-run that changes their numbers).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors.torch import load_file, save_file
from sae_lens import LoggingConfig, SAETrainer
from sae_lens.config import SAETrainerConfig
from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY, get_sae_training_class
from sae_lens.saes.sae import TrainingSAE, TrainStepOutput
from sae_lens.saes.topk_sae import TopKTrainingSAE

import aenbench.saes  # noqa: F401  (registers aen)
from aenbench.io import atomic_dir, move_aside, sha256_file, write_json

CHECKPOINT_FORMAT = 2  # 2: checkpoint.json records the sha256 of every file of the checkpoint
CHECKPOINT_META = "checkpoint.json"
log = logging.getLogger(__name__)


class DivergenceError(RuntimeError):
    """A loss term became NaN or inf: names the step, the loss terms and the last good checkpoint
    (one saved in this run or verified when it was resumed; ``how`` says which)."""

    def __init__(self, step: int, losses: dict[str, float], checkpoint: str | None, how: str = ""):
        self.step, self.losses, self.checkpoint = step, losses, checkpoint
        terms = ", ".join(f"{k}={v!r}" for k, v in losses.items())
        where = (f"last good checkpoint: {checkpoint}" + (f" ({how})" if how else "") if checkpoint
                 else "no verified checkpoint of this run exists (none saved yet in this run and none resumed)")
        super().__init__(f"training diverged at step {step}: non-finite loss ({terms}); {where}. "
                         "No metrics were written for this run.")


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; use 'auto' or 'cpu'")
    return device


def registered_architectures() -> list[str]:
    return sorted(SAE_TRAINING_CLASS_REGISTRY)


def build_training_sae(
    architecture: str, d_in: int, d_sae: int, params: dict[str, Any], seed: int, device: str = "cpu"
) -> TrainingSAE[Any]:
    """Instantiate ``architecture`` from the sae-lens training registry with a seeded init."""
    if architecture not in SAE_TRAINING_CLASS_REGISTRY:
        raise ValueError(
            f"unknown SAE architecture {architecture!r}; registered: {', '.join(registered_architectures())}"
        )
    sae_cls, cfg_cls = get_sae_training_class(architecture)
    try:
        cfg = cfg_cls(d_in=d_in, d_sae=d_sae, device=device, **params)
    except TypeError as err:
        fields = sorted(getattr(cfg_cls, "__dataclass_fields__", {}))
        raise ValueError(
            f"bad hyperparameters for architecture {architecture!r}: {err}. Allowed fields: {', '.join(fields)}"
        ) from err
    torch.manual_seed(seed)
    sae = sae_cls(cfg)
    skip_zero_auxk(sae)
    return sae


def skip_zero_auxk(sae: TrainingSAE[Any]) -> bool:
    """Do not compute an AuxK loss that is multiplied by zero.

    sae-lens's TopK (and BatchTopK, its subclass) returns ``aux_loss_coefficient · scale · AuxK``
    from ``calculate_aux_loss``; with ``aux_loss_coefficient = 0`` ("TopK without AuxK") it still
    runs the top-k over dead latents, a decode of k_aux latents and their backward, then multiplies
    the result by 0. Here the instance's ``calculate_aux_loss`` returns the same key with an exact
    0 instead, so the total loss and every gradient are unchanged bit for bit (tested) and the
    step skips that work (bench/RESULTS.md, change 2). The SAE class, its config and its saved
    files are sae-lens's own; nothing else changes.
    """
    if not isinstance(sae, TopKTrainingSAE) or float(sae.cfg.aux_loss_coefficient) != 0.0:
        return False

    def zero_aux_loss(step_input: Any, feature_acts: torch.Tensor, hidden_pre: torch.Tensor,
                      sae_out: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"auxiliary_reconstruction_loss": sae_out.new_zeros(())}

    sae.calculate_aux_loss = zero_aux_loss  # type: ignore[method-assign]
    return True


def fingerprint(obj: Any) -> str:
    """A short hash of everything that defines a run; a checkpoint from another setting is ignored."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _RecordingStream:
    """Wraps the data provider; remembers torch's global RNG state before each batch is drawn, and
    the provider's own state then when it has one (``state_dict()``, e.g. the LLM track's
    :class:`aenbench.llm.stream.MixingBuffer`; taken by reference, so this costs nothing)."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.stateful = callable(getattr(inner, "state_dict", None))
        self.rng_before_batch = torch.get_rng_state()
        self.state_before_batch = inner.state_dict() if self.stateful else None

    def __iter__(self) -> "_RecordingStream":
        return self

    def __next__(self) -> torch.Tensor:
        self.rng_before_batch = torch.get_rng_state()
        if self.stateful:
            self.state_before_batch = self.inner.state_dict()
        return next(self.inner)


STREAM_STATE = "stream_state.pt"  # a stateful stream's position and buffer, in a checkpoint


def save_stream_state(path: Path, state: dict[str, Any] | None) -> None:
    """A stateful stream's state (:func:`aenbench.llm.stream.snapshot`) into a checkpoint folder."""
    if state is not None:
        from aenbench.llm.stream import snapshot

        torch.save(snapshot(state), path)


def restore_stream(inner: Any, steps: int, state: dict[str, Any] | None) -> str:
    """Put ``inner`` where it stood before batch ``steps``: from its saved state when there is one
    (nothing is replayed), else by drawing ``steps`` batches. Returns how, for the log."""
    if state is not None and callable(getattr(inner, "load_state_dict", None)):
        inner.load_state_dict(state)
        return "its saved position and buffer"
    for _ in range(steps):
        next(inner)
    return f"replaying {steps} batches"


SAE_LENS_MAX_GRAD_NORM = 1.0  # the clip sae-lens's SAETrainer._train_step always applies


@contextlib.contextmanager
def gradient_clip(max_grad_norm: float | None) -> Iterator[None]:
    """Within the block, sae-lens's trainer clips at ``max_grad_norm`` (None: not at all) instead
    of its fixed 1.0. Its step calls ``torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)``
    with no setting (sae-lens 6.54); that one call is routed here, with torch's own function doing
    the clipping. 1.0 leaves sae-lens's call as it is."""
    if max_grad_norm == SAE_LENS_MAX_GRAD_NORM:
        yield
        return
    real = torch.nn.utils.clip_grad_norm_

    def clip(parameters: Any, _sae_lens_max_norm: float, *args: Any, **kwargs: Any) -> torch.Tensor:
        if max_grad_norm is None:
            return torch.zeros(())
        return real(parameters, max_grad_norm, *args, **kwargs)

    torch.nn.utils.clip_grad_norm_ = clip
    try:
        yield
    finally:
        torch.nn.utils.clip_grad_norm_ = real


class CheckedTrainer(SAETrainer):  # type: ignore[type-arg]
    """sae-lens's ``SAETrainer`` with a finiteness check, periodic checkpoints and a settable
    gradient clip (:func:`gradient_clip`) on ``step()``."""

    def __init__(self, *args: Any, checkpoint_dir: Path | None = None, checkpoint_every: int = 0,
                 run_fingerprint: str = "", max_grad_norm: float | None = SAE_LENS_MAX_GRAD_NORM, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_grad_norm = max_grad_norm
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.run_fingerprint = run_fingerprint
        self.last_checkpoint: str | None = None  # saved in this run or verified on resume only
        self.last_checkpoint_how = ""
        self._resumed_at = -1

    def step(self, batch: torch.Tensor) -> TrainStepOutput:
        s = self.n_training_steps  # completed steps; `batch` is the one for step s
        if (self.checkpoint_dir is not None and self.checkpoint_every > 0 and s > 0
                and s % self.checkpoint_every == 0 and s != self._resumed_at):
            self.save_resume_checkpoint()
        with gradient_clip(self.max_grad_norm):
            out = super().step(batch)
        terms = {"loss": out.loss, **out.losses}
        values = {k: float(v.detach().float().sum()) if torch.is_tensor(v) else float(v) for k, v in terms.items()}
        if not all(math.isfinite(v) for v in values.values()):
            raise DivergenceError(s, values, self.last_checkpoint, self.last_checkpoint_how)
        return out

    def dead_mask(self, window_steps: int) -> torch.Tensor:
        """dead_M: latents that did not fire in the last ``window_steps`` steps (on the CPU)."""
        return (self.n_forward_passes_since_fired >= window_steps).cpu()

    def save_resume_checkpoint(self) -> None:
        """Save the state before step ``n_training_steps`` into ``checkpoint_dir/latest``
        (atomically, the sha256 of each file in ``checkpoint.json``). A state with a NaN or inf,
        or a write that fails (disk full), is not saved: the previous checkpoint stays the last
        good one and training goes on."""
        assert self.checkpoint_dir is not None
        step = self.n_training_steps
        sae_state = {k: v.detach().cpu().contiguous().clone() for k, v in self.sae.state_dict().items()}
        bad = nonfinite_tensor(sae_state, "sae_state") or nonfinite_tensor(self.optimizer.state_dict(), "optimizer")
        if bad is not None:
            log.warning("checkpoint at step %d not saved: %s holds NaN or inf; the last good checkpoint stays %s",
                        step, bad, self.last_checkpoint or "none")
            return
        try:
            with atomic_dir(self.checkpoint_dir / "latest") as tmp:
                save_file(sae_state, str(tmp / "sae_state.safetensors"))
                self.save_trainer_state(tmp)
                rng = getattr(self.data_provider, "rng_before_batch", torch.get_rng_state())
                save_file({"torch_rng": rng}, str(tmp / "rng.safetensors"))
                save_stream_state(tmp / STREAM_STATE, getattr(self.data_provider, "state_before_batch", None))
                write_checkpoint_meta(tmp, CHECKPOINT_FORMAT, step, self.run_fingerprint)
        except OSError as err:  # e.g. ENOSPC: atomic_dir removed the partial copy, the old one is intact
            log.warning("checkpoint at step %d could not be written to %s (%s); training goes on, the last good "
                        "checkpoint stays %s", step, self.checkpoint_dir / "latest", err, self.last_checkpoint or "none")
            return
        self.last_checkpoint = str(self.checkpoint_dir / "latest")
        self.last_checkpoint_how = f"saved at step {step} in this run"

    def resume_from(self, path: Path, stream_state: dict[str, Any] | None = None) -> int:
        """Load the checkpoint at ``path``; return the number of completed steps. ``stream_state``:
        its saved stream state (``STREAM_STATE``, as :func:`load_checkpoint` loaded and verified it)."""
        self.sae.load_state_dict(load_file(str(path / "sae_state.safetensors"), device=str(self.sae.device)))
        # sae-lens's own method: its bare torch.load is weights_only=True by default on every torch
        # we can resolve (≥ 2.6, through transformer-lens)
        self.load_trainer_state(path)
        steps = self.n_training_steps
        how = restore_stream(self.data_provider.inner, steps, stream_state)  # the stream where the checkpoint was taken
        log.info("stream restored to step %d from %s", steps, how)
        torch.set_rng_state(load_file(str(path / "rng.safetensors"))["torch_rng"])
        self._resumed_at = steps
        self.last_checkpoint = str(path)
        self.last_checkpoint_how = f"step {steps}, verified on resume"
        return steps


def attach_post_step(trainer: SAETrainer[Any, Any], sae: TrainingSAE[Any], resumed: bool) -> None:
    """Call ``sae.post_optimizer_step()`` after each optimiser step when the architecture has one
    (AEN re-projects its decoder rows), and project once before the first step of a fresh run."""
    post_step = getattr(sae, "post_optimizer_step", None)
    if callable(post_step):
        trainer.optimizer.register_step_post_hook(lambda *_: post_step())
        if hasattr(sae, "projected_after_step"):
            if not resumed:  # a resumed W_dec was saved right after a post-step projection; projecting it
                post_step()  # again would change its last bits and break bit-exact resumption
            sae.projected_after_step = True  # the hook keeps rows unit-norm: no pre-forward projection


def checkpoint_root(out_dir: str | Path) -> Path:
    """Where a family job's checkpoints go: ``results/<rest>`` → ``results/checkpoints/<rest>``,
    outside the job's ``directory()`` output (which Snakemake deletes before rerunning it);
    ``<parent>/.checkpoints/<name>`` for an out_dir outside a ``results`` folder."""
    out = Path(out_dir)
    parts = out.parts
    if "results" in parts:
        i = parts.index("results")
        return Path(*parts[: i + 1], "checkpoints", *parts[i + 1:])
    return out.parent / ".checkpoints" / out.name


class CheckpointError(RuntimeError):
    """A checkpoint whose files do not match its ``checkpoint.json`` or hold NaN / inf."""


def nonfinite_tensor(obj: Any, where: str = "") -> str | None:
    """The name of the first floating-point tensor in ``obj`` (nested dicts / lists) holding a NaN
    or inf, or None. Python floats are not checked (a stack's diverged-SAE loss record is inf)."""
    if torch.is_tensor(obj):
        if (obj.is_floating_point() or obj.is_complex()) and not bool(torch.isfinite(obj).all()):
            return where or "a tensor"
        return None
    if isinstance(obj, dict):
        items: Any = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for k, v in items:
        bad = nonfinite_tensor(v, f"{where}.{k}" if where else str(k))
        if bad is not None:
            return bad
    return None


def write_checkpoint_meta(folder: Path, fmt: int | str, step: int, run_fingerprint: str) -> None:
    """``folder/checkpoint.json``: format, step, run fingerprint and the sha256 of every other file
    in ``folder`` and its subfolders (written last, inside the checkpoint's ``atomic_dir``)."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*"))
             if p.is_file() and p != folder / CHECKPOINT_META}
    write_json(Path(folder) / CHECKPOINT_META, {"format": fmt, "step": step, "fingerprint": run_fingerprint,
                                                "files": files})


def _load_verified(path: Path, meta: dict[str, Any], finite: Any) -> dict[str, Any]:
    """Each file listed in ``meta`` checked against its sha256, then loaded (safetensors;
    ``.pt`` with ``torch.load(weights_only=True)``) and ``finite(name, obj)`` asked for the name
    of a NaN / inf tensor. Returns the loaded objects by file name; raises CheckpointError."""
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        raise CheckpointError(f"{CHECKPOINT_META} records no file checksums")
    for name, want in files.items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{name}, listed in {CHECKPOINT_META}, is missing")
        got = sha256_file(f)
        if got != want:
            raise CheckpointError(f"{name} has sha256 {got[:16]}…, {CHECKPOINT_META} recorded {want[:16]}… "
                                  "(altered or truncated after it was saved)")
    loaded: dict[str, Any] = {}
    for name in files:
        f = path / name
        try:
            if name.endswith(".safetensors"):
                loaded[name] = load_file(str(f))
            elif name.endswith(".pt"):
                loaded[name] = torch.load(str(f), weights_only=True, map_location="cpu")
            else:
                continue
        except Exception as err:  # a file that matches its checksum but does not load
            raise CheckpointError(f"{name} cannot be read ({type(err).__name__}: {err})") from err
        bad = finite(name, loaded[name])
        if bad is not None:
            raise CheckpointError(f"{bad} holds NaN or inf")
    return loaded


def load_checkpoint(checkpoint_dir: Path | None, run_fingerprint: str, fmt: int | str = CHECKPOINT_FORMAT,
                    finite: Any = None) -> tuple[Path, dict[str, Any]] | None:
    """The verified checkpoint ``checkpoint_dir/latest`` of this run and its loaded files, or None.

    None when there is none, or it is another run's or format's (ignored, and replaced by the
    next save). A checkpoint of this run that fails verification (its ``checkpoint.json`` missing
    or not JSON, a file missing or not matching its recorded sha256, a NaN / inf tensor; ``finite``
    overrides the last check, see :func:`nonfinite_tensor`) is moved aside to
    ``latest.corrupt-<n>`` with a warning naming it and why, and None is returned: the caller
    trains from step 0."""
    if checkpoint_dir is None:
        return None
    path = Path(checkpoint_dir) / "latest"
    if not path.exists():
        return None
    finite = finite or (lambda name, obj: nonfinite_tensor(obj, name))
    try:
        try:
            meta = json.loads((path / CHECKPOINT_META).read_text())
        except FileNotFoundError as err:
            raise CheckpointError(f"it has no {CHECKPOINT_META}") from err
        except (OSError, ValueError) as err:
            raise CheckpointError(f"its {CHECKPOINT_META} is not readable JSON ({err})") from err
        if not isinstance(meta, dict):
            raise CheckpointError(f"its {CHECKPOINT_META} is not a JSON object")
        if meta.get("format") != fmt or meta.get("fingerprint") != run_fingerprint:
            log.info("checkpoint %s is not this run's (format %r, fingerprint %r; this run: %r, %r): not used",
                     path, meta.get("format"), meta.get("fingerprint"), fmt, run_fingerprint)
            return None
        loaded = _load_verified(path, meta, finite)
    except CheckpointError as err:
        dest = move_aside(path)
        log.warning("checkpoint %s is not usable: %s; moved it aside to %s and training from step 0", path, err, dest)
        return None
    return path, loaded


def find_checkpoint(checkpoint_dir: Path | None, run_fingerprint: str, fmt: int | str = CHECKPOINT_FORMAT) -> Path | None:
    """The usable, verified checkpoint in ``checkpoint_dir`` (:func:`load_checkpoint`), or None;
    ``fmt``: the format the caller writes (a per-SAE or a stack checkpoint)."""
    found = load_checkpoint(checkpoint_dir, run_fingerprint, fmt)
    return None if found is None else found[0]


@dataclass
class TrainResult:
    sae: TrainingSAE[Any]
    trainer: SAETrainer[Any, Any]
    seconds: float
    steps: int
    dead_window_steps: int
    dead_mask_M: torch.Tensor


def trainer_config(*, steps: int, batch_size: int, lr: float, device: str, auxk_dead_window_steps: int) -> SAETrainerConfig:
    """sae-lens's trainer config of a run: ``steps`` steps of ``batch_size`` at constant lr, no
    wandb, no sae-lens checkpoints; the sparsity window is the whole run. Both engines use it
    (this module's ``train_sae`` and :mod:`aenbench.stacked_training`)."""
    return SAETrainerConfig(
        total_training_samples=steps * batch_size,
        train_batch_size_samples=batch_size,
        lr=lr,
        lr_end=lr,
        lr_scheduler_name="constant",
        device=device,
        dead_feature_window=auxk_dead_window_steps,
        feature_sampling_window=steps,
        checkpoint_path=None,
        save_final_checkpoint=False,
        logger=LoggingConfig(log_to_wandb=False),
    )


def train_sae(
    sae: TrainingSAE[Any],
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
    trainer_cls: type[CheckedTrainer] = CheckedTrainer,
    max_grad_norm: float | None = SAE_LENS_MAX_GRAD_NORM,
) -> TrainResult:
    """Run sae-lens's ``SAETrainer`` for ``steps`` steps of ``batch_size`` samples at constant lr.

    ``auxk_dead_window_steps`` is sae-lens's ``dead_feature_window``: it decides which latents
    TopK's AuxK loss treats as dead during training. The reported dead % uses
    ``dead_window_steps`` instead.

    With ``checkpoint_dir``, a checkpoint is saved there every ``checkpoint_every`` steps and a
    checkpoint already there with the same ``run_fingerprint`` is resumed from. ``seconds`` is
    the time of this process's part of the loop. ``trainer_cls`` is a subclass of
    ``CheckedTrainer`` to train with (e.g. one that records state every few steps).
    ``max_grad_norm`` clips the gradient norm (None: no clip; 1.0 is sae-lens's fixed clip).
    """
    if dead_window_steps > steps:
        raise ValueError(f"dead_window_steps ({dead_window_steps}) must be ≤ steps ({steps})")
    cfg = trainer_config(steps=steps, batch_size=batch_size, lr=lr, device=device,
                         auxk_dead_window_steps=auxk_dead_window_steps)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    trainer = trainer_cls(cfg=cfg, sae=sae, data_provider=_RecordingStream(data_provider),
                             checkpoint_dir=ckpt_dir, checkpoint_every=checkpoint_every,
                             run_fingerprint=run_fingerprint, max_grad_norm=max_grad_norm)
    checkpoint = load_checkpoint(ckpt_dir, run_fingerprint)
    found = None if checkpoint is None else checkpoint[0]
    if checkpoint is not None:
        step = trainer.resume_from(found, checkpoint[1].get(STREAM_STATE))
        log.info("resumed from the checkpoint %s at step %d of %d", found, step, steps)
    attach_post_step(trainer, sae, resumed=found is not None)
    start = time.perf_counter()
    trainer.fit()  # sae-lens's own tqdm bar shows progress
    seconds = time.perf_counter() - start
    return TrainResult(sae, trainer, seconds, trainer.n_training_steps, dead_window_steps,
                       trainer.dead_mask(dead_window_steps))
