"""The Pythia protocol on SmolLM2, streamed (issue "LLM track at the paper's scale", GPU item 6).

    .venv/bin/python bench/gpu_stream.py                          # on a GPU: paper_smollm2, 200 steps
    .venv/bin/python bench/gpu_stream.py --steps 3 --width 64 --batch 256 --shard-contexts 8 --max-runs 2   # CPU smoke

Trains the AEN and TopK grids of ``configs/paper_smollm2.yaml`` (seed 0) in lockstep from one
model stream (:func:`aenbench.llm.stream.model_stream`, :func:`aenbench.lockstep.train_lockstep`)
for ``--steps`` steps of the config's 8,192 tokens. The contexts are packed from the packaged
corpus as the harvest packs them. It reports:

* the LM forward's tokens/s (time spent in the stream's block loads);
* the grid's SAE steps/s (lockstep steps × SAEs / time outside the forward);
* the full protocol extrapolated: 25,000 steps for every SAE of the grid, beside the authors'
  ≈ 35 min per Pythia run on an L40S.

It writes one JSON to ``--out`` (default $OUT or bench/out).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "paper_smollm2.yaml")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--families", nargs="+", default=["AEN", "TopK"])
    ap.add_argument("--max-runs", type=int, default=0, help="at most this many runs per family (0: all)")
    ap.add_argument("--width", type=int, help="default: the config's")
    ap.add_argument("--batch", type=int, help="tokens per step; default: the config's (8,192)")
    ap.add_argument("--shard-contexts", type=int, help="contexts per streamed block; default: the config's")
    ap.add_argument("--resources", default=str(ROOT / "resources"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "bench" / "out")))
    args = ap.parse_args(argv)
    torch.set_num_threads(1 if args.device == "cpu" else torch.get_num_threads())

    from aenbench.llm.harvest import iter_corpus, pack_contexts
    from aenbench.llm.models import load_model, offline_env
    from aenbench.llm.stream import model_stream
    from aenbench.lockstep import train_lockstep
    from aenbench.stages import _stacks, plan_runs, run_engine
    from aenbench.sweeps import family_table
    from aenbench.training import build_training_sae

    offline_env()
    cfg = yaml.safe_load(args.config.read_text())["llm"]
    h, train = cfg["harvest"], cfg["train"]
    h["shard_contexts"] = args.shard_contexts or h["shard_contexts"]
    if args.batch:  # a smaller smoke: the buffer shrinks with the batch (8 batches)
        train["batch_size"], train["buffer_tokens"] = args.batch, 8 * args.batch
    width = args.width or cfg["width"]
    loaded = load_model(cfg["model"], args.resources, device=args.device)
    tok = loaded.tokenizer
    texts = list(iter_corpus(cfg.get("corpus", "packaged"), args.resources))
    need = -(-args.steps * train["batch_size"] // (h["context_size"] - 2)) + 2 * h["shard_contexts"]
    contexts = pack_contexts(texts, h["context_size"], loaded.separator_id, min(need, h["train_contexts"]),
                             h.get("seed", 0), encode=lambda t: tok(t, add_special_tokens=False).input_ids)
    stream = model_stream(loaded, contexts.to(args.device), hook=cfg["hook"], dtype=h.get("dtype", "float16"),
                          shard_contexts=h["shard_contexts"], batch_contexts=h["batch_contexts"],
                          batch_size=train["batch_size"], buffer_tokens=train["buffer_tokens"], seed=0)
    forward = {"s": 0.0, "tokens": 0}
    load = stream.source.load

    def timed(i: int) -> torch.Tensor:
        if args.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        rows = load(i)
        if args.device == "cuda":
            torch.cuda.synchronize()
        forward["s"] += time.perf_counter() - t0
        forward["tokens"] += min(h["shard_contexts"], len(contexts) - i * h["shard_contexts"]) * h["context_size"]
        return rows

    stream.source.load = timed
    defaults = cfg.get("arch_defaults") or {}
    groups, n_full = [], 0
    for name in args.families:
        fam = cfg["families"][name]
        table = family_table(fam, [0])
        n_full += len(table) * len(train["seeds"])
        rows = table.to_dict("records")[: args.max_runs or None]
        runs = plan_runs(fam, [(str(i), r) for i, r in enumerate(rows)], defaults, {})
        d = loaded.bridge.cfg.d_model
        engine = run_engine(train, fam["architecture"])
        for g in (_stacks(runs, int(train.get("stack_size", 32))) if engine == "stacked" else [[r] for r in runs]):
            groups.append((engine, [build_training_sae(fam["architecture"], d, width, r.params, 0, args.device)
                                    for r in g], [f"{name}/{r.run_id}" for r in g]))
    n_saes = sum(len(g[1]) for g in groups)
    t0 = time.perf_counter()
    train_lockstep(groups, stream, steps=args.steps, batch_size=train["batch_size"], lr=train["lr"],
                   dead_window_steps=min(args.steps, train["dead_window_steps"]),
                   auxk_dead_window_steps=train["auxk_dead_window_steps"], device=args.device,
                   max_grad_norm=train.get("max_grad_norm", 1.0))
    wall = time.perf_counter() - t0
    sae_s = wall - forward["s"]
    tok_s = forward["tokens"] / forward["s"] if forward["s"] else float("nan")
    steps_s = args.steps * n_saes / sae_s if sae_s > 0 else float("nan")
    full_steps = 25_000
    full_tokens = full_steps * train["batch_size"]
    extrapolated = full_tokens / tok_s * len(train["seeds"]) + full_steps * n_full / steps_s
    out = {"device": args.device, "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
           "config": str(args.config.relative_to(ROOT)), "families": args.families, "width": width,
           "steps": args.steps, "saes": n_saes, "members": len(groups), "wall_s": wall,
           "forward_s": forward["s"], "forward_tokens": forward["tokens"], "lm_forward_tok_per_s": tok_s,
           "sae_steps_per_s": steps_s, "grid_saes_full": n_full,
           "full_protocol_s_extrapolated": extrapolated,
           "full_protocol_note": f"{full_steps:,} steps × {train['batch_size']:,} tokens: one stream per seed "
                                 f"({len(train['seeds'])}) plus every SAE's steps at the measured rate",
           "authors": "≈ 35 min per Pythia-70M run (one SAE, 205M tokens) on an L40S"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_stream.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
