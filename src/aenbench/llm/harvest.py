"""Harvest residual-stream activations through TransformerLens hook names into checked shards.

Contexts: documents are tokenised, shuffled with the harvest seed, joined with the model's
separator token and cut into fixed-length contexts (no BOS). Position 0 of every context and
every separator position are dropped: their residual norms are orders of magnitude larger than
the rest (measured and written to the manifest as ``excluded_norms``).

Shards: ``shard_00000.safetensors`` with ``acts`` (n, d) in the manifest's dtype and
``token_ids`` / ``context_index`` / ``position`` (n,). Each shard is written atomically with a
``.sha256`` sidecar; a rerun skips shards whose file matches its sidecar, so a killed harvest
resumes at shard level. ``manifest.json`` (written last) lists model, hook, dtype, count, d,
per-shard sha256 and the normalisation statistics; ``stats.safetensors`` holds the per-dim mean
used for mean-ablation.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from aenbench.io import write_json, write_with
from aenbench.llm.resources import sha256_file

DTYPES = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}


class ShardError(RuntimeError):
    """A shard is missing, truncated or does not match its recorded checksum."""


# --------------------------------------------------------------------------- corpora


def iter_corpus(corpus: str, resources_dir: str | Path = "resources") -> Iterator[str]:
    """Texts of a corpus: ``packaged`` (resources/corpus/*.jsonl), ``jsonl:<path>`` (a file or
    folder of JSON lines with a ``text`` field) or ``hf:<dataset>[:<split>]`` (Hugging Face
    datasets, streamed; needs hub access)."""
    if corpus == "packaged" or corpus.startswith("jsonl:"):
        path = Path(resources_dir) / "corpus" if corpus == "packaged" else Path(corpus[len("jsonl:"):])
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        if not files or not all(f.exists() for f in files):
            raise FileNotFoundError(f"corpus {corpus!r}: no JSON-lines files at {path}")
        for f in files:
            with open(f) as fh:
                for line in fh:
                    if line.strip():
                        yield json.loads(line)["text"]
    elif corpus.startswith("hf:"):
        from datasets import load_dataset

        name, _, split = corpus[3:].partition(":")
        for row in load_dataset(name, split=split or "train", streaming=True):
            yield row["text"]
    else:
        raise ValueError(f"unknown corpus {corpus!r}; use 'packaged', 'jsonl:<path>' or 'hf:<dataset>[:<split>]'")


def pack_contexts(
    docs: list[Any], context_size: int, separator_id: int, n_contexts: int, seed: int,
    encode: Any = None,
) -> torch.Tensor:
    """Shuffle documents with ``seed``, join them with ``separator_id`` and cut ``n_contexts``
    contexts. ``docs`` are token lists, or texts when ``encode`` (text → token ids) is given;
    documents are encoded lazily, only until enough tokens are collected."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    need = n_contexts * context_size
    stream: list[int] = []
    for i in order:
        stream.extend(encode(docs[i]) if encode is not None else docs[i])
        stream.append(separator_id)
        if len(stream) >= need:
            break
    if len(stream) < need:
        raise ValueError(
            f"the corpus has {len(stream)} tokens, fewer than the {need} asked for "
            f"({n_contexts} contexts × {context_size}); lower llm.harvest train_contexts or add text"
        )
    return torch.tensor(stream[:need], dtype=torch.long).view(n_contexts, context_size)


def keep_mask(tokens_BT: torch.Tensor, separator_id: int) -> torch.Tensor:
    """True where an activation is kept: not position 0 and not a separator."""
    mask = tokens_BT != separator_id
    mask[:, 0] = False
    return mask


# --------------------------------------------------------------------------- harvest


def _accumulate_norms(acc: dict[str, list[float]], norms_BT: torch.Tensor, ids_BT: torch.Tensor, sep: int) -> None:
    """Sums and counts of residual norms at position 0, at separators (not at 0), and kept."""
    is_sep = ids_BT == sep
    is_sep[:, 0] = False
    kept = keep_mask(ids_BT, sep)
    for key, sel in (("position0", norms_BT[:, 0]), ("separator", norms_BT[is_sep]), ("kept", norms_BT[kept])):
        acc[key][0] += sel.sum().item()
        acc[key][1] += int(sel.numel())


@dataclass
class HarvestSpec:
    model: str
    hook: str
    context_size: int
    n_train_contexts: int
    n_eval_contexts: int
    shard_contexts: int
    batch_contexts: int
    dtype: str
    seed: int
    corpus: str


def _write_shard(path: Path, tensors: dict[str, torch.Tensor], excluded: dict[str, list[float]]) -> str:
    """Shard first, then its sidecar (sha256 + excluded-position norm sums): a shard without a
    matching sidecar is treated as unfinished and rebuilt."""
    write_with(path, lambda tmp: save_file(tensors, str(tmp)))
    digest = sha256_file(path)
    write_json(path.with_suffix(".json"), {"sha256": digest, "excluded_norm_sums": excluded})
    return digest


def _finished_shard(path: Path) -> dict[str, Any] | None:
    side = path.with_suffix(".json")
    if not (path.exists() and side.exists()):
        return None
    info = json.loads(side.read_text())
    return info if info.get("sha256") == sha256_file(path) else None


def harvest(
    loaded: Any, spec: HarvestSpec, out_dir: str | Path, resources_dir: str | Path = "resources"
) -> dict[str, Any]:
    """Tokenise, pack, run the bridge up to the hooked layer and write train/eval shards."""
    from aenbench.llm.models import hook_layer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = loaded.tokenizer
    sep = loaded.separator_id
    layer = hook_layer(spec.hook)
    n_ctx = spec.n_train_contexts + spec.n_eval_contexts
    texts = list(iter_corpus(spec.corpus, resources_dir))
    contexts = pack_contexts(texts, spec.context_size, sep, n_ctx, spec.seed,
                             encode=lambda t: tok(t, add_special_tokens=False).input_ids)
    splits = {"train": contexts[: spec.n_train_contexts], "eval": contexts[spec.n_train_contexts:]}
    dtype = DTYPES[spec.dtype]
    write_with(out_dir / "eval_contexts.safetensors",
               lambda tmp: save_file({"tokens": splits["eval"].to(torch.int32).contiguous()}, str(tmp)))

    d = loaded.bridge.cfg.d_model  # the loaded model's width (a random-init test model may differ from the registry)
    sum_D = torch.zeros(d, dtype=torch.float64)
    norm_sum = norm_sq_sum = 0.0
    n_kept = 0
    excl = {"position0": [0.0, 0], "separator": [0.0, 0], "kept": [0.0, 0]}
    shards: dict[str, list[dict[str, Any]]] = {"train": [], "eval": []}
    t0 = time.perf_counter()
    total_tokens = n_ctx * spec.context_size
    bar = tqdm(total=total_tokens, unit="tok", unit_scale=True, desc=f"harvest {spec.model} {spec.hook}")
    for split, ctx in splits.items():
        for s_idx, start in enumerate(range(0, len(ctx), spec.shard_contexts)):
            path = out_dir / split / f"shard_{s_idx:05d}.safetensors"
            block = ctx[start:start + spec.shard_contexts]
            finished = _finished_shard(path)
            if finished is not None:  # resume: this shard was completed before an interruption
                data = load_file(str(path))
                digest = finished["sha256"]
                shard_excl = finished["excluded_norm_sums"]
                bar.update(block.numel())
            else:
                parts = []
                shard_excl = {"position0": [0.0, 0], "separator": [0.0, 0], "kept": [0.0, 0]}
                for b in range(0, len(block), spec.batch_contexts):
                    ids = block[b:b + spec.batch_contexts]
                    with torch.inference_mode():
                        _, cache = loaded.bridge.run_with_cache(
                            ids, names_filter=[spec.hook], stop_at_layer=layer + 1
                        )
                    acts_BTD = cache[spec.hook].float().cpu()
                    _accumulate_norms(shard_excl, acts_BTD.norm(dim=-1), ids, sep)
                    mask = keep_mask(ids, sep)
                    pos = torch.arange(ids.shape[1]).expand_as(ids)
                    ctx_idx = (torch.arange(len(ids)) + start + b).unsqueeze(1).expand_as(ids)
                    parts.append({
                        "acts": acts_BTD[mask].to(dtype),
                        "token_ids": ids[mask].to(torch.int32),
                        "position": pos[mask].to(torch.int32),
                        "context_index": ctx_idx[mask].to(torch.int32),
                    })
                    bar.update(ids.numel())
                    bar.set_postfix(tok_per_s=f"{bar.n / (time.perf_counter() - t0):.0f}")
                data = {k: torch.cat([p[k] for p in parts]).contiguous() for k in parts[0]}
                digest = _write_shard(path, data, shard_excl)
            acts = data["acts"].double()
            for key, (total, count) in shard_excl.items():
                excl[key][0] += total
                excl[key][1] += count
            shards[split].append({"file": f"{split}/{path.name}", "count": len(acts), "sha256": digest})
            if split == "train":
                sum_D += acts.sum(0)
                norms = acts.norm(dim=-1)
                norm_sum += norms.sum().item()
                norm_sq_sum += norms.pow(2).sum().item()
                n_kept += len(acts)
    bar.close()
    seconds = time.perf_counter() - t0
    mean_norm = norm_sum / n_kept
    mean_D = (sum_D / n_kept).float()
    write_with(out_dir / "stats.safetensors", lambda tmp: save_file({"mean": mean_D}, str(tmp)))
    excluded_norms = {k: (v[0] / v[1] if v[1] else None) for k, v in excl.items()}
    if excluded_norms["kept"]:
        excluded_norms["position0_over_kept"] = (excluded_norms["position0"] or 0) / excluded_norms["kept"]
        if excluded_norms["separator"]:
            excluded_norms["separator_over_kept"] = excluded_norms["separator"] / excluded_norms["kept"]
    manifest = {
        "model": spec.model,
        "hub_name": loaded.spec.hub_name,
        "hook": spec.hook,
        "dtype": spec.dtype,
        "d": d,
        "context_size": spec.context_size,
        "separator_token_id": sep,
        "corpus": spec.corpus,
        "seed": spec.seed,
        "count": {k: sum(s["count"] for s in v) for k, v in shards.items()},
        "contexts": {"train": spec.n_train_contexts, "eval": spec.n_eval_contexts},
        "shards": shards,
        "normalisation": {
            "scheme": "per-token rescale to norm sqrt(d) (method.md §4)",
            "target_norm": math.sqrt(d),
            "mean_norm": mean_norm,
            "rms_norm": math.sqrt(norm_sq_sum / n_kept),
            "mean_vector_file": "stats.safetensors",
        },
        "excluded_norms": excluded_norms,
        "harvest_seconds": seconds,
        "tokens_per_second": total_tokens / seconds if seconds > 0 else None,
    }
    write_json(out_dir / "manifest.json", manifest)
    return manifest


# --------------------------------------------------------------------------- reading shards


def load_manifest(acts_dir: str | Path) -> dict[str, Any]:
    path = Path(acts_dir) / "manifest.json"
    if not path.exists():
        raise ShardError(f"{path} is missing: the harvest did not finish (rerun it to resume)")
    with open(path) as f:
        return json.load(f)


def load_shard(acts_dir: str | Path, entry: dict[str, Any], verify: bool = True) -> dict[str, torch.Tensor]:
    """Load one shard; with ``verify`` its sha256 must match the manifest."""
    path = Path(acts_dir) / entry["file"]
    if not path.exists():
        raise ShardError(f"shard {path} is missing")
    if verify:
        got = sha256_file(path)
        if got != entry["sha256"]:
            raise ShardError(
                f"shard {path} is corrupted: sha256 {got} != {entry['sha256']} in the manifest; "
                f"delete it and its .sha256 file and rerun the harvest to rebuild it"
            )
    try:
        data = load_file(str(path))
    except Exception as err:  # safetensors raises on a truncated header/body
        raise ShardError(f"shard {path} cannot be read ({err}); delete it and rerun the harvest") from err
    if len(data["acts"]) != entry["count"]:
        raise ShardError(f"shard {path} holds {len(data['acts'])} rows, the manifest says {entry['count']}")
    return data


def load_split(acts_dir: str | Path, split: str, verify: bool = True) -> dict[str, torch.Tensor]:
    manifest = load_manifest(acts_dir)
    parts = [load_shard(acts_dir, e, verify) for e in manifest["shards"][split]]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def normalise(x_BD: torch.Tensor) -> torch.Tensor:
    """Per-token rescale to ℓ2 norm √d (method.md §4)."""
    x = x_BD.float()
    return x * (x.shape[-1] ** 0.5 / x.norm(dim=-1, keepdim=True).clamp(min=1e-8))


def activation_stream(
    acts_dir: str | Path, batch_size: int, buffer_tokens: int, chunk_tokens: int = 4096
) -> Iterator[torch.Tensor]:
    """Endless normalised training batches of exactly ``batch_size`` tokens, shuffled through
    sae-lens's mixing buffer. Shard order and buffer shuffles use torch's global RNG, so seeding
    it (as ``build_training_sae`` does) fixes the stream."""
    from sae_lens.training.mixing_buffer import mixing_buffer

    manifest = load_manifest(acts_dir)
    entries = manifest["shards"]["train"]
    for e in entries:  # fail before training if any shard is damaged
        load_shard(acts_dir, e, verify=True)

    def chunks() -> Iterator[torch.Tensor]:
        while True:
            for i in torch.randperm(len(entries)).tolist():
                acts = normalise(load_shard(acts_dir, entries[i], verify=False)["acts"])
                for s in range(0, len(acts), chunk_tokens):
                    yield acts[s:s + chunk_tokens]

    return mixing_buffer(max(buffer_tokens, batch_size), batch_size, chunks())
