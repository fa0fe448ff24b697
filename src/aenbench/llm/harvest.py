"""Harvest residual-stream activations through TransformerLens hook names into checked shards.

Contexts: documents are tokenised, shuffled with the harvest seed, joined with the model's
separator token and cut into fixed-length contexts (no BOS). Position 0 of every context and
every separator position are dropped: their residual norms are orders of magnitude larger than
the rest (measured and written to the manifest as ``excluded_norms``).

Shards: ``shard_00000.safetensors`` with ``acts`` (n, d) in the manifest's dtype and
``token_ids`` / ``context_index`` / ``position`` (n,). Each shard is written atomically, then
its sidecar ``shard_00000.json``: the shard's sha256 and the settings that made it
(:func:`shard_settings`: model, hook, dtype, seed, corpus, context length, shard index and size,
the exclusion rule, the sha256 of the shard's token ids, ...). A rerun reuses a shard only when
its file matches its sidecar and the sidecar's settings are this run's; any other shard is
rebuilt and the log says why, so a killed harvest resumes at shard level and a change of
settings never reuses a shard made with the old ones. ``manifest.json`` (written last) lists
model, hook, dtype, count, d, the settings, per-shard sha256, the sha256 of
``eval_contexts.safetensors`` and ``stats.safetensors`` (the per-dim mean used for
mean-ablation), the normalisation statistics and its own content hash; :func:`load_manifest`
checks all of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
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

from aenbench.io import sha256_file, write_json, write_with

DTYPES = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}
SHARD_FORMAT = 2  # 2: the sidecar records the settings that made the shard
MANIFEST_FORMAT = 2  # 2: settings, eval_contexts / stats sha256 and the manifest's own content hash
EXCLUSION_RULE = "drop position 0 and separator tokens"
TRAIN_CONTEXTS = "train_contexts.safetensors"  # the train split's token ids, when it is streamed
log = logging.getLogger(__name__)


class ShardError(RuntimeError):
    """A shard or manifest is missing, truncated or does not match its recorded checksum."""


def _rerun_hint(acts_dir: Path) -> str:
    return (f"rerun the harvest: snakemake {Path(acts_dir) / 'manifest.json'} --forcerun llm_harvest "
            "(it rebuilds only the shards that do not match)")


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
    # "disk": train shards are written; "stream": only the train contexts' token ids are, and the
    # training job computes their activations as it goes (aenbench.llm.stream.model_stream)
    train_storage: str = "disk"
    # the split whose kept activations give stats.safetensors (the mean for mean-ablation) and the
    # norm statistics: "train", or "eval" (the only choice when the train split is streamed)
    stats_split: str = "train"


def _tokens_sha256(block: torch.Tensor) -> str:
    return hashlib.sha256(block.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()


def shard_settings(spec: HarvestSpec, loaded: Any, split: str, index: int, start: int, block: torch.Tensor,
                   d: int) -> dict[str, Any]:
    """Everything that decides a shard's content: the harvest settings, the model (registry name,
    hub name, width, device), the split, shard index and first context, the exclusion rule and
    separator, and the sha256 of the shard's token ids (corpus, seed, tokenizer, packing; so the
    split sizes, which change no train shard's tokens, are not needed)."""
    device = getattr(getattr(loaded.bridge, "cfg", None), "device", None)
    return {
        "format": SHARD_FORMAT, "model": spec.model, "hub_name": getattr(loaded.spec, "hub_name", None),
        "hook": spec.hook, "dtype": spec.dtype, "seed": spec.seed, "corpus": spec.corpus,
        "context_size": spec.context_size, "shard_contexts": spec.shard_contexts,
        "batch_contexts": spec.batch_contexts, "split": split, "shard_index": index, "first_context": start,
        "n_contexts": int(len(block)), "d": d, "device": None if device is None else str(device),
        "separator_id": loaded.separator_id, "exclusion": EXCLUSION_RULE, "tokens_sha256": _tokens_sha256(block),
    }


def _write_shard(path: Path, tensors: dict[str, torch.Tensor], excluded: dict[str, list[float]],
                 settings: dict[str, Any]) -> str:
    """Shard first, then its sidecar (sha256, the settings that made it, excluded-position norm
    sums): a shard without a matching sidecar is treated as unfinished and rebuilt."""
    write_with(path, lambda tmp: save_file(tensors, str(tmp)))
    digest = sha256_file(path)
    write_json(path.with_suffix(".json"), {"sha256": digest, "settings": settings, "excluded_norm_sums": excluded})
    return digest


def _finished_shard(path: Path, settings: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The sidecar of a shard that may be reused (its file matches the sidecar's sha256 and the
    sidecar's settings are ``settings``), else None and why it is rebuilt."""
    side = path.with_suffix(".json")
    if not path.exists() and not side.exists():
        return None, ""  # never built
    if not path.exists():
        return None, f"{path.name} is missing (its sidecar {side.name} is there)"
    if not side.exists():
        return None, f"its sidecar {side.name} is missing (a harvest killed before it was written)"
    try:
        info = json.loads(side.read_text())
    except (OSError, ValueError) as err:
        return None, f"its sidecar {side.name} is not readable JSON ({err})"
    if not isinstance(info, dict) or not isinstance(info.get("excluded_norm_sums"), dict):
        return None, f"its sidecar {side.name} is not a shard record"
    old = info.get("settings")
    if old != settings:
        if not isinstance(old, dict):
            return None, f"its sidecar {side.name} records no settings (an older harvest)"
        def show(k: str, v: Any) -> str:
            return f"{v[:12]}…" if k.endswith("sha256") and isinstance(v, str) else repr(v)

        diff = ", ".join(f"{k} {show(k, old.get(k))} -> {show(k, settings.get(k))}"
                         for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k))
        return None, f"it was made with other settings ({diff})"
    if info.get("sha256") != sha256_file(path):
        return None, f"{path.name} does not match the sha256 in {side.name} (altered or truncated)"
    return info, ""


def _manifest_hash(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "content_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=False).encode()).hexdigest()


def block_activations(loaded: Any, hook: str, block_CT: torch.Tensor, start: int, batch_contexts: int, dtype: str,
                      on_batch: Any = None) -> tuple[dict[str, torch.Tensor], dict[str, list[float]]]:
    """The kept activations at ``hook`` of the contexts ``block_CT`` (the first is context
    ``start`` of its split), in batches of ``batch_contexts``: ``acts`` (n, d) in ``dtype``,
    ``token_ids``, ``position``, ``context_index``; position 0 and separators dropped
    (:func:`keep_mask`). Also the norm sums of the excluded positions. The harvest's shards and
    the streaming path (:func:`aenbench.llm.stream.model_stream`) both come from here."""
    from aenbench.llm.models import hook_layer

    layer, sep = hook_layer(hook), loaded.separator_id
    parts = []
    excl = {"position0": [0.0, 0], "separator": [0.0, 0], "kept": [0.0, 0]}
    for b in range(0, len(block_CT), batch_contexts):
        ids = block_CT[b:b + batch_contexts]
        with torch.inference_mode():
            _, cache = loaded.bridge.run_with_cache(ids, names_filter=[hook], stop_at_layer=layer + 1)
        acts_BTD = cache[hook].float().cpu()
        _accumulate_norms(excl, acts_BTD.norm(dim=-1), ids, sep)
        mask = keep_mask(ids, sep)
        pos = torch.arange(ids.shape[1]).expand_as(ids)
        ctx_idx = (torch.arange(len(ids)) + start + b).unsqueeze(1).expand_as(ids)
        parts.append({
            "acts": acts_BTD[mask].to(DTYPES[dtype]),
            "token_ids": ids[mask].to(torch.int32),
            "position": pos[mask].to(torch.int32),
            "context_index": ctx_idx[mask].to(torch.int32),
        })
        if on_batch is not None:
            on_batch(ids.numel())
    return {k: torch.cat([p[k] for p in parts]).contiguous() for k in parts[0]}, excl


def harvest(
    loaded: Any, spec: HarvestSpec, out_dir: str | Path, resources_dir: str | Path = "resources"
) -> dict[str, Any]:
    """Tokenise, pack, run the bridge up to the hooked layer and write train/eval shards (with
    ``train_storage: stream``, eval shards and the train contexts' token ids only)."""
    if spec.train_storage not in ("disk", "stream"):
        raise ValueError(f"llm.harvest.train_storage = {spec.train_storage!r}: use 'disk' or 'stream'")
    if spec.stats_split not in ("train", "eval") or (spec.train_storage == "stream" and spec.stats_split != "eval"):
        raise ValueError(f"llm.harvest.stats_split = {spec.stats_split!r}: use 'train' or 'eval' ('eval' when the "
                         "train split is streamed: its activations are never stored)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # a manifest from an earlier harvest stops describing this folder as soon as a shard may be
    # rebuilt: remove it first, so that a killed rerun leaves no manifest naming stale shards
    (out_dir / "manifest.json").unlink(missing_ok=True)
    tok = loaded.tokenizer
    sep = loaded.separator_id
    n_ctx = spec.n_train_contexts + spec.n_eval_contexts
    texts = list(iter_corpus(spec.corpus, resources_dir))
    contexts = pack_contexts(texts, spec.context_size, sep, n_ctx, spec.seed,
                             encode=lambda t: tok(t, add_special_tokens=False).input_ids)
    splits = {"train": contexts[: spec.n_train_contexts], "eval": contexts[spec.n_train_contexts:]}
    write_with(out_dir / "eval_contexts.safetensors",
               lambda tmp: save_file({"tokens": splits["eval"].to(torch.int32).contiguous()}, str(tmp)))
    listed_files = ["eval_contexts.safetensors", "stats.safetensors"]
    streamed = spec.train_storage == "stream"
    if streamed:
        write_with(out_dir / TRAIN_CONTEXTS,
                   lambda tmp: save_file({"tokens": splits["train"].to(torch.int32).contiguous()}, str(tmp)))
        listed_files.append(TRAIN_CONTEXTS)

    d = loaded.bridge.cfg.d_model  # the loaded model's width (a random-init test model may differ from the registry)
    sum_D = torch.zeros(d, dtype=torch.float64)
    norm_sum = norm_sq_sum = 0.0
    n_kept = 0
    excl = {"position0": [0.0, 0], "separator": [0.0, 0], "kept": [0.0, 0]}
    shards: dict[str, list[dict[str, Any]]] = {"train": [], "eval": []}
    t0 = time.perf_counter()
    total_tokens = n_ctx * spec.context_size  # the bar counts the streamed split's tokens as done
    bar = tqdm(total=total_tokens, unit="tok", unit_scale=True, desc=f"harvest {spec.model} {spec.hook}")
    streamed_count = 0
    for split, ctx in splits.items():
        if streamed and split == "train":
            streamed_count = int(keep_mask(ctx, sep).sum())
            bar.update(ctx.numel())
            continue
        for s_idx, start in enumerate(range(0, len(ctx), spec.shard_contexts)):
            path = out_dir / split / f"shard_{s_idx:05d}.safetensors"
            block = ctx[start:start + spec.shard_contexts]
            settings = shard_settings(spec, loaded, split, s_idx, start, block, d)
            finished, why = _finished_shard(path, settings)
            if finished is not None:  # resume: this shard was completed before an interruption
                data = load_file(str(path))
                digest = finished["sha256"]
                shard_excl = finished["excluded_norm_sums"]
                bar.update(block.numel())
            else:
                if why:
                    log.warning("harvest: rebuilding %s: %s", path, why)
                data, shard_excl = block_activations(loaded, spec.hook, block, start, spec.batch_contexts, spec.dtype,
                                                     on_batch=lambda n: (bar.update(n), bar.set_postfix(
                                                         tok_per_s=f"{bar.n / (time.perf_counter() - t0):.0f}")))
                digest = _write_shard(path, data, shard_excl, settings)
            acts = data["acts"].double()
            for key, (total, count) in shard_excl.items():
                excl[key][0] += total
                excl[key][1] += count
            shards[split].append({"file": f"{split}/{path.name}", "count": len(acts), "sha256": digest})
            if split == spec.stats_split:
                sum_D += acts.sum(0)
                norms = acts.norm(dim=-1)
                norm_sum += norms.sum().item()
                norm_sq_sum += norms.pow(2).sum().item()
                n_kept += len(acts)
    bar.close()
    for split, entries in shards.items():  # shards of an earlier, larger harvest: stale, not listed
        listed = {Path(e["file"]).name for e in entries}
        for extra in sorted((out_dir / split).glob("shard_*.safetensors")):
            if extra.name not in listed:
                log.warning("harvest: removing %s and its sidecar: left by an earlier harvest, not part of this one", extra)
                extra.unlink()
                extra.with_suffix(".json").unlink(missing_ok=True)
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
        "format": MANIFEST_FORMAT,
        "settings": {k: getattr(spec, k) for k in spec.__dataclass_fields__},
        "files": {name: sha256_file(out_dir / name) for name in listed_files},
        "train_storage": spec.train_storage,
        "model": spec.model,
        "hub_name": loaded.spec.hub_name,
        "hook": spec.hook,
        "dtype": spec.dtype,
        "d": d,
        "context_size": spec.context_size,
        "separator_token_id": sep,
        "corpus": spec.corpus,
        "seed": spec.seed,
        "count": {k: (streamed_count if streamed and k == "train" else sum(s["count"] for s in v))
                  for k, v in shards.items()},
        "contexts": {"train": spec.n_train_contexts, "eval": spec.n_eval_contexts},
        "shards": shards,
        "normalisation": {
            "scheme": "per-token rescale to norm sqrt(d) (method.md §4)",
            "stats_split": spec.stats_split,
            "target_norm": math.sqrt(d),
            "mean_norm": mean_norm,
            "rms_norm": math.sqrt(norm_sq_sum / n_kept),
            "mean_vector_file": "stats.safetensors",
        },
        "excluded_norms": excluded_norms,
        "harvest_seconds": seconds,
        "tokens_per_second": ((total_tokens - (splits["train"].numel() if streamed else 0)) / seconds
                              if seconds > 0 else None),
    }
    manifest["content_sha256"] = _manifest_hash(manifest)
    write_json(out_dir / "manifest.json", manifest)
    return manifest


# --------------------------------------------------------------------------- reading shards


def load_manifest(acts_dir: str | Path) -> dict[str, Any]:
    """The harvest's manifest, checked: readable JSON of this format, its content hash, and the
    files it records besides the shards (``eval_contexts.safetensors``, ``stats.safetensors``)
    matching their sha256. Raises ShardError naming the file and the rerun."""
    acts_dir = Path(acts_dir)
    path = acts_dir / "manifest.json"
    if not path.exists():
        raise ShardError(f"{path} is missing: the harvest did not finish; {_rerun_hint(acts_dir)}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ShardError(f"{path} is not readable JSON ({err}); {_rerun_hint(acts_dir)}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ShardError(f"{path} is of format {got!r}, not {MANIFEST_FORMAT} (written by an older harvest that did "
                         f"not record the settings of its shards); {_rerun_hint(acts_dir)}")
    if manifest.get("content_sha256") != _manifest_hash(manifest):
        raise ShardError(f"{path} does not match its own content_sha256 (edited or corrupted after the harvest "
                         f"wrote it); {_rerun_hint(acts_dir)}")
    for name, want in manifest["files"].items():
        f = acts_dir / name
        if not f.exists():
            raise ShardError(f"{f} is missing (listed in {path}); {_rerun_hint(acts_dir)}")
        got = sha256_file(f)
        if got != want:
            raise ShardError(f"{f} is corrupted: sha256 {got} != {want} in {path}; {_rerun_hint(acts_dir)}")
    return manifest


def load_shard(acts_dir: str | Path, entry: dict[str, Any], verify: bool = True) -> dict[str, torch.Tensor]:
    """Load one shard; with ``verify`` its sha256 must match the manifest."""
    path = Path(acts_dir) / entry["file"]
    fix = (f"delete it and its sidecar {path.with_suffix('.json').name}, then {_rerun_hint(Path(acts_dir))}")
    if not path.exists():
        raise ShardError(f"shard {path}, listed in {Path(acts_dir) / 'manifest.json'}, is missing; {_rerun_hint(Path(acts_dir))}")
    if verify:
        got = sha256_file(path)
        if got != entry["sha256"]:
            raise ShardError(f"shard {path} is corrupted: sha256 {got} != {entry['sha256']} in the manifest; {fix}")
    try:
        data = load_file(str(path))
    except Exception as err:  # safetensors raises on a truncated header/body
        raise ShardError(f"shard {path} cannot be read ({err}); {fix}") from err
    if len(data["acts"]) != entry["count"]:
        raise ShardError(f"shard {path} holds {len(data['acts'])} rows, the manifest says {entry['count']}; {fix}")
    return data


def load_split(acts_dir: str | Path, split: str, verify: bool = True) -> dict[str, torch.Tensor]:
    manifest = load_manifest(acts_dir)
    parts = [load_shard(acts_dir, e, verify) for e in manifest["shards"][split]]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def normalise(x_BD: torch.Tensor) -> torch.Tensor:
    """Per-token rescale to ℓ2 norm √d (method.md §4)."""
    x = x_BD.float()
    return x * (x.shape[-1] ** 0.5 / x.norm(dim=-1, keepdim=True).clamp(min=1e-8))


def activation_stream(acts_dir: str | Path, batch_size: int, buffer_tokens: int, seed: int = 0,
                      chunk_tokens: int = 4096) -> Any:
    """Endless normalised training batches of exactly ``batch_size`` tokens from the harvest's
    train shards, through the stream's mixing buffer (:func:`aenbench.llm.stream.shard_stream`;
    ``seed`` fixes the shard order and the shuffles)."""
    from aenbench.llm.stream import shard_stream

    return shard_stream(acts_dir, batch_size, buffer_tokens, seed, chunk_tokens)
