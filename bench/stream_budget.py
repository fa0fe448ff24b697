"""Disk and peak memory of the LLM track, disk path against streaming, at two token budgets
(issue "LLM track at the paper's scale", item 3).

For each budget (training tokens = steps × batch, harvested as exactly that many contexts, one
pass as in the paper's protocol) and each path, the whole LLM training side runs in child
processes on the offline SmolLM2-135M: the harvest (``train_storage: disk`` or ``stream``) and the
training of a small grid (an AEN stack of two and a sae-lens TopK, one seed). Reported per run:

* disk: the activations folder after the harvest, and the largest checkpoint written while
  training (polled), the trained SAEs aside (the same for both paths);
* peak RSS (``ru_maxrss``) of the harvest process and of the training process;
* wall seconds of each.

    .venv/bin/python bench/stream_budget.py --steps 100 1000 [--hook blocks.3.hook_resid_post]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def child(args: argparse.Namespace) -> None:
    """One step (harvest or train) of one path, in this process."""
    import torch

    torch.set_num_threads(1)
    from aenbench.llm.harvest import HarvestSpec, harvest
    from aenbench.llm.models import load_model, offline_env
    from aenbench.llm.track import train_family, train_grid_streamed

    offline_env()
    acts, out = Path(args.work) / "acts", Path(args.work) / "results" / "trained"
    ctx = 128
    if args.stage == "harvest":
        loaded = load_model("smollm2-135m", args.resources)
        n = -(-args.steps * args.batch // (ctx - 2))  # ≈ one pass: ~126 kept tokens per context
        spec = HarvestSpec(model="smollm2-135m", hook=args.hook, context_size=ctx, n_train_contexts=n,
                           n_eval_contexts=16, shard_contexts=200, batch_contexts=8, dtype="float16", seed=0,
                           corpus="packaged", train_storage=args.path, stats_split="eval")
        harvest(loaded, spec, acts, args.resources)
        return
    train = {"steps": args.steps, "batch_size": args.batch, "lr": 1e-3, "seeds": [0], "dead_window_steps": 10,
             "auxk_dead_window_steps": 10, "buffer_tokens": 32768, "max_grad_norm": 1.0, "checkpoint_every": 50}
    families = {"AEN": {"architecture": "aen", "fixed": {"adaptive": True, "l2_coefficient": 0.0001},
                        "grid": {"l1_coefficient": [0.005, 0.001]}},
                "TopK": {"architecture": "topk", "fixed": {"aux_loss_coefficient": 0.0}, "grid": {"k": [32]}}}
    runs = {"AEN": [(f"l1~{v}_seed~0", {"l1_coefficient": v, "seed": 0}) for v in (0.005, 0.001)],
            "TopK": [("k~32_seed~0", {"k": 32, "seed": 0})]}
    defaults = {"aen": {"warmup_steps": 20, "ramp_steps": 10, "beta": 0.95, "decoder_norm": "project",
                        "loss_convention": "authors"}}
    ckpt = Path(args.work) / "ckpt"
    if args.path == "disk":
        for f, fam in families.items():
            train_family(acts_dir=acts, out_dir=out / f, family_name=f, family=fam, runs=runs[f], train=train,
                         width=args.width, arch_defaults=defaults, device="cpu", checkpoint_dir=ckpt)
    else:
        train_grid_streamed(acts_dir=acts, out_dirs={f: out / f for f in families}, families=families, runs=runs,
                            train=train, width=args.width, arch_defaults={f: defaults for f in families},
                            resources_dir=args.resources, device="cpu", checkpoint_dir=ckpt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--width", type=int, default=2304)
    ap.add_argument("--hook", default="blocks.15.hook_resid_post")
    ap.add_argument("--resources", default=str(ROOT / "resources"))
    ap.add_argument("--paths", nargs="+", default=["disk", "stream"])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "stream_budget.json")
    ap.add_argument("--child", nargs=3, metavar=("STAGE", "PATH", "WORK"))
    args = ap.parse_args()
    if args.child:
        args.stage, args.path, args.work = args.child
        args.steps = args.steps[0]
        child(args)
        return
    rows = []
    for steps in args.steps:
        for path in args.paths:
            with tempfile.TemporaryDirectory() as work:
                row = {"steps": steps, "batch": args.batch, "train_tokens": steps * args.batch, "path": path,
                       "hook": args.hook, "width": args.width}
                base = [sys.executable, __file__, "--steps", str(steps), "--batch", str(args.batch), "--width",
                        str(args.width), "--hook", args.hook, "--resources", args.resources]
                # peak RSS of the stage's own process: a fresh wrapper process reports its one
                # child's ru_maxrss (RUSAGE_CHILDREN here would be the largest child so far)
                for stage in ("harvest", "train"):
                    cmd = [sys.executable, "-c",
                           "import resource,subprocess,sys; r=subprocess.run(sys.argv[1:]).returncode; "
                           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
                           "sys.exit(r)", *base, "--child", stage, path, work]
                    start = time.perf_counter()
                    peak = {"ckpt": 0}
                    done = threading.Event()

                    def watch() -> None:
                        while not done.is_set():
                            peak["ckpt"] = max(peak["ckpt"], du(Path(work) / "ckpt"))
                            time.sleep(0.2)

                    t = threading.Thread(target=watch, daemon=True)
                    t.start()
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    done.set()
                    t.join()
                    if proc.returncode:
                        raise RuntimeError(proc.stderr[-3000:])
                    row[f"{stage}_wall_s"] = round(time.perf_counter() - start, 1)
                    row[f"{stage}_peak_rss_mb"] = round(int(proc.stderr.strip().splitlines()[-1]) / 1024)
                    if stage == "harvest":
                        row["acts_dir_mb"] = round(du(Path(work) / "acts") / 1e6, 2)
                    else:
                        row["ckpt_peak_mb"] = round(peak["ckpt"] / 1e6, 1)
                        row["trained_mb"] = round(du(Path(work) / "results" / "store") / 1e6, 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
