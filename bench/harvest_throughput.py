"""Harvest throughput against a bare, early-stopped forward pass of the same model on the same batches.

Baseline: the Hugging Face model with a plain ``register_forward_hook`` on the hooked decoder layer
that raises to stop the forward pass (the fastest way to get that residual; bit-identical to
``hidden_states[L+1]``). Measured: aenbench's whole harvest (TransformerLens bridge
``run_with_cache(stop_at_layer=L+1)``, masking of position 0 and separators, fp16 shards with
sha256 sidecars). Both run in the same process on the same contexts, alternated, and the ratio
of tokens/s is reported (absolute times are noisy on shared machines).

    python bench/harvest_throughput.py [--resources resources] [--contexts 64] [--layer 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


class _Stop(Exception):
    pass


def bare_forward_tok_s(model, contexts: torch.Tensor, layer: int, batch: int) -> float:
    def hook(_mod, _inp, _out):
        raise _Stop

    handle = model.model.layers[layer].register_forward_hook(hook)
    try:
        start = time.perf_counter()
        with torch.inference_mode():
            for s in range(0, len(contexts), batch):
                try:
                    model.model(contexts[s:s + batch])
                except _Stop:
                    pass
        return contexts.numel() / (time.perf_counter() - start)
    finally:
        handle.remove()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resources", default="resources")
    ap.add_argument("--contexts", type=int, default=64)
    ap.add_argument("--context-size", type=int, default=128)
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from aenbench.llm.harvest import HarvestSpec, harvest, iter_corpus, pack_contexts
    from aenbench.llm.models import load_model

    loaded = load_model("smollm2-135m", args.resources)
    hook = f"blocks.{args.layer}.hook_resid_post"
    n_ctx = args.contexts
    texts = list(iter_corpus("packaged", args.resources))
    contexts = pack_contexts(texts, args.context_size, loaded.separator_id, n_ctx + 1, seed=0,
                             encode=lambda t: loaded.tokenizer(t, add_special_tokens=False).input_ids)[:n_ctx]
    hf_model = loaded.bridge.original_model

    bare, ours = [], []
    for _ in range(args.repeats):
        bare.append(bare_forward_tok_s(hf_model, contexts, args.layer, args.batch))
        with tempfile.TemporaryDirectory() as tmp:
            spec = HarvestSpec(model="smollm2-135m", hook=hook, context_size=args.context_size,
                               n_train_contexts=n_ctx, n_eval_contexts=1, shard_contexts=max(1, n_ctx // 4),
                               batch_contexts=args.batch, dtype="float16", seed=0, corpus="packaged")
            # the same contexts: harvest packs with the same seed and size (+1 eval context)
            start = time.perf_counter()
            harvest(loaded, spec, tmp, args.resources)
            ours.append((n_ctx + 1) * args.context_size / (time.perf_counter() - start))
    result = {
        "bare_tok_s": statistics.median(bare),
        "harvest_tok_s": statistics.median(ours),
        "ratio": statistics.median(ours) / statistics.median(bare),
        "target": 0.9,
        "layer": args.layer,
        "contexts": n_ctx,
        "repeats": args.repeats,
    }
    print(result)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
