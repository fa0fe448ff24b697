"""One ρ slice of the paper's synthetic grid, stacked (issue "Train a whole grid at once", GPU item).

    .venv/bin/python bench/gpu_stacked.py                        # on a GPU: n 256, m 1024, 50k × 256
    .venv/bin/python bench/gpu_stacked.py --steps 20 --n 16 --m 64 --topk-steps 5   # a CPU smoke run

Trains the 109 ``aen`` configurations of one ρ of ``configs/paper_synthetic.yaml`` (ℓ1 4, EN 9,
AL 24, AEN 72) with the stacked engine, on the spiked stream of that ρ, and times sae-lens's TopK
(5 configurations) per SAE for ``--topk-steps`` steps each, extrapolated to the full run. Prints
and writes (``--out``, default $OUT or bench/out) one JSON: wall times, the per-run time beside
the authors' 237–514 s per 50k-step run, and the 570-run sweep extrapolated from this slice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "paper_synthetic.yaml")
    ap.add_argument("--rho", type=float, default=0.5)
    ap.add_argument("--steps", type=int, help="default: the config's (50,000)")
    ap.add_argument("--n", type=int, help="default: the config's (256)")
    ap.add_argument("--m", type=int, help="default: the config's (1024)")
    ap.add_argument("--stack-size", type=int, default=109, help="SAEs per stack (default: all 109 in one)")
    ap.add_argument("--topk-steps", type=int, default=1000, help="steps to time each TopK SAE for (0: skip)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "bench" / "out")))
    args = ap.parse_args(argv)

    from aenbench.stacked_training import train_stack
    from aenbench.sweeps import family_table, run_hyperparameters
    from aenbench.synthetic.spiked import SpikedStream, spiked_dictionary
    from aenbench.training import build_training_sae, train_sae

    cfg = yaml.safe_load(args.config.read_text())
    syn, tr = cfg["synthetic"], cfg["synthetic"]["train"]
    n, m, k = args.n or syn["n"], args.m or syn["m"], syn["k"]
    steps, batch, seed = args.steps or tr["steps"], tr["batch_size"], tr["seeds"][0]
    d_MN = spiked_dictionary(n, m, args.rho, syn["dictionary_seed"]).to(args.device)
    low, high = syn["magnitude"]

    def stream():
        return SpikedStream(d_MN.cpu(), k, batch, seed=seed, low=low, high=high)

    aen = [(name, run_hyperparameters(fam, row, cfg["arch_defaults"]))
           for name, fam in cfg["families"].items() if fam["architecture"] == "aen"
           for row in family_table(fam, [seed]).to_dict("records")]
    out: dict = {"device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else args.device,
                 "n": n, "m": m, "batch": batch, "steps": steps, "rho": args.rho, "aen_runs": len(aen),
                 "torch": torch.__version__}
    print(f"{len(aen)} aen runs, stacks of {args.stack_size}, {steps} steps × {batch}, {n}→{m}", flush=True)
    start = time.perf_counter()
    diverged = []
    for i in range(0, len(aen), args.stack_size):
        chunk = aen[i:i + args.stack_size]
        saes = [build_training_sae("aen", n, m, p, seed, args.device) for _, p in chunk]
        res = train_stack(saes, stream(), names=[f"{f}#{j}" for j, (f, _) in enumerate(chunk, i)], steps=steps,
                          batch_size=batch, lr=tr["lr"], dead_window_steps=min(tr["dead_window_steps"], steps),
                          device=args.device)
        diverged += [str(d) for d in res.diverged]
        print(f"stack {i // args.stack_size + 1}: {len(chunk)} SAEs in {res.seconds:.1f} s", flush=True)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    aen_s = time.perf_counter() - start
    out.update(aen_seconds=aen_s, aen_seconds_per_run=aen_s / len(aen), diverged=diverged)
    topk = [(name, run_hyperparameters(fam, row, cfg["arch_defaults"]))
            for name, fam in cfg["families"].items() if name in ("TopK",)
            for row in family_table(fam, [seed]).to_dict("records")]
    if args.topk_steps > 0:
        t = time.perf_counter()
        for _, p in topk:
            p = {**p, "k": min(p["k"], m)}  # a tiny smoke shape has fewer latents than the grid's k
            sae = build_training_sae("topk", n, m, p, seed, args.device)
            train_sae(sae, stream(), steps=args.topk_steps, batch_size=batch, lr=tr["lr"], dead_window_steps=1,
                      device=args.device)
        per_step = (time.perf_counter() - t) / (len(topk) * args.topk_steps)
        out.update(topk_runs=len(topk), topk_seconds_per_step=per_step,
                   topk_seconds_extrapolated=per_step * steps * len(topk))
    slice_s = aen_s + out.get("topk_seconds_extrapolated", 0.0)
    out.update(slice_seconds=slice_s, sweep_570_seconds_extrapolated=5 * slice_s,
               authors_seconds_per_run="237-514 (their loop, per 50k-step run)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_stacked.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
