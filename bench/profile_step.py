"""Profile one training step of AEN and of sae-lens ``standard`` with torch.profiler (issue 5:
"profile first"), on the same shape, trainer and batches as bench/run.py's overhead row.

    .venv/bin/python bench/profile_step.py [--shape 512,4096,8192] [--steps 3]

Writes bench/out/profile_<arch>_<shape>.txt: the operator table sorted by self CPU time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

HERE = Path(__file__).resolve().parent


def profile_arch(arch: str, params: dict, n: int, m: int, batch: int, steps: int) -> str:
    from aenbench.training import build_training_sae, train_sae

    data = torch.randn(2, batch, n)

    def provider():
        i = 0
        while True:
            yield data[i % 2]
            i += 1

    sae = build_training_sae(arch, n, m, params, seed=0, device="cpu")
    train_sae(sae, provider(), steps=1, batch_size=batch, lr=1e-3, dead_window_steps=1)  # warm-up
    sae = build_training_sae(arch, n, m, params, seed=0, device="cpu")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        train_sae(sae, provider(), steps=steps, batch_size=batch, lr=1e-3, dead_window_steps=1)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)


def main() -> None:
    from run import AEN_PARAMS, STD_PARAMS  # bench/run.py, same parameters as the overhead row

    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="512,4096,8192", help="n,m,batch")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    n, m, batch = (int(v) for v in args.shape.split(","))
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    for arch, params in [("aen", AEN_PARAMS), ("standard", STD_PARAMS)]:
        table = profile_arch(arch, params, n, m, batch, args.steps)
        path = out / f"profile_{arch}_{n}x{m}x{batch}.txt"
        path.write_text(f"# {arch}, {n}->{m}, B={batch}, {args.steps} steps, torch.profiler, self CPU time\n{table}\n")
        print(path, "\n", table[:3000], flush=True)


if __name__ == "__main__":
    main()
