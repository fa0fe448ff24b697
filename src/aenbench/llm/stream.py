"""Training batches of the LLM track, read from harvested shards or computed by the model on the
fly, through one shuffling buffer whose state can be checkpointed.

Both sources cut the training contexts into the same blocks of ``shard_contexts`` contexts (a
harvest's shards), visit the blocks in an order drawn per epoch from the stream's own generator,
normalise each block's kept activations to norm √d (:func:`aenbench.llm.harvest.normalise`) and
cut it into chunks of ``chunk_tokens`` rows:

* :func:`shard_stream` loads the blocks from the harvest's shards (the disk path);
* :func:`model_stream` runs the model's forward pass on each block when it is needed
  (:func:`aenbench.llm.harvest.block_activations`: the same exclusions, position 0 and separators,
  and the same cast to the harvest dtype), so no activation is written to disk. One stream
  feeds every SAE of a grid in lockstep (:func:`aenbench.lockstep.train_lockstep`).

With one seed, both give the same chunks, hence the same batches.

The chunks go through :class:`MixingBuffer`, the algorithm of sae-lens's
``sae_lens.training.mixing_buffer.mixing_buffer`` (keep half the buffer for mixing, shuffle when
full, serve the rest in batches) kept as an object: sae-lens's generator cannot be saved, and a
resumed stream must not replay its tokens (on the model path, replaying means running the model
again over every token already trained on). ``state_dict()`` is the data position (epoch, block
order, block, row), the buffer's rows and its generator's state; ``load_state_dict`` restores
them, recomputing at most the one block it stood in, so a resumed run gets the same batches bit for
bit. A test checks the buffer against sae-lens's generator on the same chunks.

Shape suffixes: B batch, D model width, N rows of a chunk or block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

STREAM_FORMAT = 1


class ChunkSource:
    """Endless chunks of the blocks ``load(i)`` (i < ``n_blocks``), the blocks in an order drawn
    per epoch with ``generator``; each block is cut into chunks of ``chunk_tokens`` rows."""

    def __init__(self, n_blocks: int, load: Callable[[int], torch.Tensor], chunk_tokens: int,
                 generator: torch.Generator):
        if n_blocks < 1:
            raise ValueError("a stream needs at least one block of training contexts")
        self.n_blocks, self.load, self.chunk_tokens, self.generator = n_blocks, load, chunk_tokens, generator
        self.epoch, self.order, self.pos, self.row = -1, (), 0, 0
        self._block: tuple[int, torch.Tensor] | None = None  # (block index, its rows), loaded once

    def _rows(self, i: int) -> torch.Tensor:
        if self._block is None or self._block[0] != i:
            self._block = (i, self.load(i))
        return self._block[1]

    def next_chunk(self) -> torch.Tensor:
        while True:
            if self.pos >= len(self.order):  # a new epoch: a new block order
                self.order = tuple(torch.randperm(self.n_blocks, generator=self.generator).tolist())
                self.epoch, self.pos, self.row = self.epoch + 1, 0, 0
            rows_ND = self._rows(self.order[self.pos])
            if self.row < len(rows_ND):
                chunk = rows_ND[self.row:self.row + self.chunk_tokens]
                self.row += self.chunk_tokens
                return chunk
            self.pos, self.row = self.pos + 1, 0
            self._block = None

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "order": list(self.order), "pos": self.pos, "row": self.row}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.order, self.pos, self.row = state["epoch"], tuple(state["order"]), state["pos"], state["row"]
        self._block = None


class MixingBuffer:
    """sae-lens's ``mixing_buffer(buffer_size, batch_size, chunks, mix_fraction)`` over an endless
    :class:`ChunkSource`, shuffling with the source's generator instead of torch's global RNG."""

    def __init__(self, source: ChunkSource, buffer_size: int, batch_size: int, mix_fraction: float = 0.5):
        if buffer_size < batch_size:
            raise ValueError(f"buffer_tokens ({buffer_size}) must be ≥ batch_size ({batch_size})")
        self.source, self.buffer_size, self.batch_size, self.mix_fraction = source, buffer_size, batch_size, mix_fraction
        self.storage: torch.Tensor | None = None
        self.serving: torch.Tensor | None = None
        self.served = 0  # batches of ``serving`` already returned
        self.n_serving = 0

    def __iter__(self) -> "MixingBuffer":
        return self

    def __next__(self) -> torch.Tensor:
        while self.served >= self.n_serving:
            new = self.source.next_chunk()
            self.storage = new if self.storage is None else torch.cat([self.storage, new], dim=0)
            if self.storage.shape[0] >= self.buffer_size:
                if self.mix_fraction > 0:
                    perm = torch.randperm(self.storage.shape[0], generator=self.source.generator)
                    self.storage = self.storage[perm]
                keep = int(self.buffer_size * self.mix_fraction)
                self.n_serving = max(1, (self.storage.shape[0] - keep) // self.batch_size)
                cut = self.n_serving * self.batch_size
                self.serving, self.storage = self.storage[:cut], self.storage[cut:]
                self.served = 0
        assert self.serving is not None
        b = self.served * self.batch_size
        self.served += 1
        return self.serving[b:b + self.batch_size]

    def state_dict(self) -> dict[str, Any]:
        """The data position, the buffer and the generator; tensors by reference (none is changed in
        place), so taking it every batch costs nothing; :func:`snapshot` copies it for a save."""
        return {"format": STREAM_FORMAT, "source": self.source.state_dict(), "storage": self.storage,
                "serving": self.serving, "served": self.served, "n_serving": self.n_serving,
                "generator": self.source.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != STREAM_FORMAT:
            raise ValueError(f"a stream state of format {state.get('format')!r}, not {STREAM_FORMAT}")
        self.source.load_state_dict(state["source"])
        self.source.generator.set_state(state["generator"])
        self.storage, self.serving = state["storage"], state["serving"]
        self.served, self.n_serving = state["served"], state["n_serving"]


def snapshot(state: dict[str, Any]) -> dict[str, Any]:
    """A copy of a :meth:`MixingBuffer.state_dict` that can be saved (contiguous CPU tensors)."""
    return {k: (v.detach().cpu().contiguous().clone() if torch.is_tensor(v) else v) for k, v in state.items()}


def stream_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def shard_stream(acts_dir: Any, batch_size: int, buffer_tokens: int, seed: int, chunk_tokens: int = 4096) -> MixingBuffer:
    """The disk path: the harvest's train shards of ``acts_dir`` (each checked against the
    manifest before the first batch)."""
    from aenbench.llm.harvest import load_manifest, load_shard, normalise

    entries = load_manifest(acts_dir)["shards"]["train"]
    for e in entries:  # fail before training if any shard is damaged
        load_shard(acts_dir, e, verify=True)
    source = ChunkSource(len(entries), lambda i: normalise(load_shard(acts_dir, entries[i], verify=False)["acts"]),
                         chunk_tokens, stream_generator(seed))
    return MixingBuffer(source, max(buffer_tokens, batch_size), batch_size)


def model_stream(loaded: Any, contexts_CT: torch.Tensor, *, hook: str, dtype: str, shard_contexts: int,
                 batch_contexts: int, batch_size: int, buffer_tokens: int, seed: int,
                 chunk_tokens: int = 4096) -> MixingBuffer:
    """The streaming path: the model's activations at ``hook`` on the training contexts
    ``contexts_CT``, block by block as the buffer needs them (one block of ``shard_contexts``
    contexts in memory at a time, besides the buffer)."""
    from aenbench.llm.harvest import block_activations, normalise

    blocks = [contexts_CT[s:s + shard_contexts] for s in range(0, len(contexts_CT), shard_contexts)]

    def load(i: int) -> torch.Tensor:
        data, _ = block_activations(loaded, hook, blocks[i], i * shard_contexts, batch_contexts, dtype)
        return normalise(data["acts"])

    source = ChunkSource(len(blocks), load, chunk_tokens, stream_generator(seed))
    return MixingBuffer(source, max(buffer_tokens, batch_size), batch_size)
