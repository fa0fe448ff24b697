"""aenbench's benchmark suite: ratios measured in one run, written to bench/RESULTS.md and bench/results.csv.

    .venv/bin/python bench/run.py                 # every row that needs no finished pipeline run
    .venv/bin/python bench/run.py --pipeline DIR  # + the per-rule breakdown of a finished `figures/all` in DIR
    .venv/bin/python bench/run.py --tiny          # tiny shapes, seconds (what the test suite runs)

Rows (issue 5):
1. AEN overhead: AEN training-step time over sae-lens ``standard`` on the same shapes, the same
   trainer (sae-lens SAETrainer) and the same batches, alternated in one process. Target ≤ 1.05.
2. Roofline: each step's achieved GFLOP/s (12·B·n·m per step: encoder and decoder matmuls,
   forward and backward) over the measured fp32 matmul peak of this machine in the same run.
   Target ≥ 60 % at the LLM shapes on CPU.
3. Harvest throughput: bench/harvest_throughput.py (needs resources/; run after the main job).
4. Whole pipeline: wall time and peak memory per rule from Snakemake's benchmark files.
5. Per-job overhead: a sweep of SAEs trained one per process against all in one process.
Change 2 (bench/RESULTS.md): TopK without AuxK, the step with the zero-weighted AuxK pass skipped
over sae-lens's own step (``--rows topk_noaux``).
Import-light reporting (``--rows import_time cli_latency job_overhead``; ``--src DIR`` times the
aenbench under DIR instead, e.g. a ``git worktree`` of an older commit), each a fresh process:
7. import_time: ``import aenbench`` / ``aenbench.cli`` / ``aenbench.leaderboard`` over
   ``import aenbench.training`` (which loads sae-lens and torch).
8. cli_latency: ``aenbench --help`` and ``aenbench leaderboard`` on a small CSV. Target < 1 s.
9. job_overhead: what a figure or table job runs before its own work (Snakemake's script
   preamble imports, ``setup_job``, the figure module). Target < 2 s.
11. stacked (``--rows stacked``): the stacked engine per SAE-step against the per-SAE path at the
    default shape, K ∈ {1, 8, 16, 32, 114}, and its share of the matmul peak.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Sequence

import torch

HERE = Path(__file__).resolve().parent


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "python": platform.python_version(),
    }


def matmul_peak_gflops(n: int, m: int, batch: int, device: str, repeats: int = 5) -> float:
    """Best-of-``repeats`` fp32 GFLOP/s of (batch×n)@(n×m), the SAE encoder's own shape."""
    a = torch.randn(batch, n, device=device)
    b = torch.randn(n, m, device=device)
    best = 0.0
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(3):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = max(best, 3 * 2 * batch * n * m / (time.perf_counter() - t) / 1e9)
    return best


def step_seconds(arch: str, params: dict, n: int, m: int, batch: int, steps: int, device: str,
                 data: torch.Tensor) -> float:
    from aenbench.training import build_training_sae, train_sae

    def provider():
        i = 0
        while True:
            yield data[i % len(data)]
            i += 1

    sae = build_training_sae(arch, n, m, params, seed=0, device=device)
    res = train_sae(sae, provider(), steps=steps, batch_size=batch, lr=1e-3, dead_window_steps=1, device=device)
    return res.seconds / steps


AEN_PARAMS = dict(adaptive=True, l1_coefficient=1e-3, l2_coefficient=5e-4, warmup_steps=0, ramp_steps=1)
STD_PARAMS = dict(l1_coefficient=1e-3)


def bench_overhead(shapes, repeats: int, device: str) -> list[dict]:
    rows = []
    for name, n, m, batch, steps in shapes:
        data = torch.randn(4, batch, n, device="cpu")
        aen, std = [], []
        for _ in range(repeats):  # alternate, so drift hits both
            std.append(step_seconds("standard", STD_PARAMS, n, m, batch, steps, device, data))
            aen.append(step_seconds("aen", AEN_PARAMS, n, m, batch, steps, device, data))
        peak = matmul_peak_gflops(n, m, batch, device)
        t_aen, t_std = statistics.median(aen), statistics.median(std)
        flops = 12 * batch * n * m
        rows.append({
            "row": f"aen_overhead/{name}", "shape": f"{n}->{m} B={batch}", "device": device,
            "aen_step_ms": 1e3 * t_aen, "standard_step_ms": 1e3 * t_std, "ratio": t_aen / t_std, "target": "<= 1.05",
        })
        rows.append({
            "row": f"roofline/{name}", "shape": f"{n}->{m} B={batch}", "device": device,
            "aen_gflops": flops / t_aen / 1e9, "standard_gflops": flops / t_std / 1e9, "peak_gflops": peak,
            "ratio": flops / t_aen / 1e9 / peak, "target": ">= 0.60 (LLM shapes, CPU)",
        })
        print(rows[-2], rows[-1], flush=True)
    return rows


def bench_topk_noaux(shapes, repeats: int, device: str, dead_fractions=(0.77, 0.96)) -> list[dict]:
    """TopK without AuxK (aux_loss_coefficient = 0, k = 16): a training step (sae-lens's
    ``training_forward_pass``, backward, Adam) with aenbench's skip of the zero-weighted AuxK pass,
    over the same step with sae-lens's own pass (computed, then multiplied by 0). The AuxK pass
    works only on latents sae-lens counts as dead, so the dead mask is fixed at the dead fractions
    of the paper-scale TopK runs (77 % at ρ = 0, 96 % at ρ = 0.5; replication table)."""
    from sae_lens.saes.sae import TrainStepInput

    from aenbench.training import build_training_sae

    rows = []
    for name, n, m, batch, steps in shapes:
        x_BN = torch.randn(batch, n, device=device)
        for frac in dead_fractions:
            dead_M = torch.zeros(m, dtype=torch.bool, device=device)
            dead_M[torch.randperm(m, generator=torch.Generator().manual_seed(0))[: int(frac * m)].to(device)] = True

            def step_s(skip: bool) -> float:
                sae = build_training_sae("topk", n, m, dict(k=16, aux_loss_coefficient=0.0), seed=0, device=device)
                if not skip:
                    vars(sae).pop("calculate_aux_loss", None)  # sae-lens's own AuxK pass again
                opt = torch.optim.Adam(sae.parameters(), lr=1e-4)
                inp = TrainStepInput(sae_in=x_BN, coefficients={}, dead_neuron_mask=dead_M, n_training_steps=0,
                                     is_logging_step=False)
                times = []
                for _ in range(steps + 1):
                    if device == "cuda":
                        torch.cuda.synchronize()
                    t = time.perf_counter()
                    opt.zero_grad()
                    sae.training_forward_pass(inp).loss.backward()
                    opt.step()
                    if device == "cuda":
                        torch.cuda.synchronize()
                    times.append(time.perf_counter() - t)
                return statistics.median(times[1:])

            skip, full = [], []
            for _ in range(repeats):  # alternate, so drift hits both
                full.append(step_s(False))
                skip.append(step_s(True))
            t_skip, t_full = statistics.median(skip), statistics.median(full)
            rows.append({"row": f"topk_noaux_skip/{name}/dead{round(100 * frac)}", "shape": f"{n}->{m} B={batch}",
                         "device": device, "skip_step_ms": 1e3 * t_skip, "saelens_step_ms": 1e3 * t_full,
                         "ratio": t_skip / t_full, "target": "< 1 (change 2)"})
            print(rows[-1], flush=True)
    return rows


SWEEP_SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from aenbench.synthetic.spiked import SpikedStream, spiked_dictionary
    from aenbench.training import build_training_sae, train_sae
    d = spiked_dictionary(64, 256, 0.5, seed=0)
    for l1 in [float(v) for v in sys.argv[1:]]:
        sae = build_training_sae("aen", 64, 256, dict(adaptive=True, l1_coefficient=l1, l2_coefficient=4e-4), seed=0)
        train_sae(sae, SpikedStream(d, 4, 256, seed=0), steps=STEPS, batch_size=256, lr=1e-3, dead_window_steps=10)
""")


STACK_PARAMS = dict(adaptive=True, l1_coefficient=0.004, l2_coefficient=0.0004, warmup_steps=100, ramp_steps=50,
                    w_min=0.01, w_max=10.0, beta=0.99, p=0.01, gamma=1.0, decoder_norm="project",
                    loss_convention="authors")


def bench_stacked(ks: Sequence[int], n: int, m: int, k_true: int, batch: int, steps: int, repeats: int,
                  device: str) -> list[dict]:
    """Row 11 (issue "Train a whole grid at once"): the stacked engine's time per SAE-step over the
    per-SAE path's (sae-lens's SAETrainer, one SAE), both on the spiked stream at the default
    shape, alternated in one process; and the stack's GFLOP/s (12·B·n·m per SAE-step) over the
    matmul peak measured in the same run."""
    from aenbench.stacked_training import train_stack
    from aenbench.synthetic.spiked import SpikedStream, spiked_dictionary
    from aenbench.training import build_training_sae, train_sae

    d_MN = spiked_dictionary(n, m, 0.5, 0)

    def per_sae() -> float:
        sae = build_training_sae("aen", n, m, STACK_PARAMS, 0, device)
        res = train_sae(sae, SpikedStream(d_MN, k_true, batch, seed=0), steps=steps, batch_size=batch, lr=1e-3,
                        dead_window_steps=1, device=device)
        return res.seconds / steps

    def stacked(k: int) -> float:
        saes = [build_training_sae("aen", n, m, STACK_PARAMS, 0, device) for _ in range(k)]
        res = train_stack(saes, SpikedStream(d_MN, k_true, batch, seed=0), names=[str(i) for i in range(k)],
                          steps=steps, batch_size=batch, lr=1e-3, dead_window_steps=1, device=device)
        return res.seconds / steps / k

    times: dict[int, list[float]] = {0: [], **{k: [] for k in ks}}
    for _ in range(repeats):  # alternate, so drift hits every K
        times[0].append(per_sae())
        for k in ks:
            times[k].append(stacked(k))
    peak = matmul_peak_gflops(n, m, batch, device)
    base = statistics.median(times[0])
    flops = 12 * batch * n * m
    rows = []
    for k in ks:
        t = statistics.median(times[k])
        rows.append({"row": f"stacked/K={k}", "shape": f"{n}->{m} B={batch}", "device": device,
                     "per_sae_ms": 1e3 * base, "stacked_ms_per_sae": 1e3 * t, "ratio": base / t,
                     "stack_gflops": flops / t / 1e9, "peak_gflops": peak, "share_of_peak": flops / t / 1e9 / peak,
                     "target": ">= 4 (K >= 32), >= 50 % of peak"})
        print(rows[-1], flush=True)
    return rows


def bench_per_job(n_saes: int, steps: int) -> list[dict]:
    """The same sweep as n_saes processes (one SAE each) and as one process (all of them)."""
    script = SWEEP_SCRIPT.replace("STEPS", str(steps))
    l1s = [str(0.004 * (i + 1)) for i in range(n_saes)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(args_list):
        t = time.perf_counter()
        for args in args_list:
            subprocess.run([sys.executable, "-c", script, *args], check=True, env=env, capture_output=True)
        return time.perf_counter() - t

    one_per_job = run([[v] for v in l1s])
    grouped = run([l1s])
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import aenbench.training"], check=True, env=env)
    import_s = time.perf_counter() - t
    row = {"row": "per_job_overhead", "shape": f"{n_saes} SAEs × {steps} steps (64->256 B=256)", "device": "cpu",
           "one_sae_per_job_s": one_per_job, "all_in_one_job_s": grouped, "import_aenbench_s": import_s,
           "ratio": one_per_job / grouped, "target": "pick the faster design"}
    print(row, flush=True)
    return [row]


LIGHT_IMPORTS = ("aenbench", "aenbench.cli", "aenbench.leaderboard")
HEAVY_IMPORT = "aenbench.training"
JOB_SCRIPT = textwrap.dedent("""
    import types
    import snakemake.logging, snakemake.script  # what the preamble of a Snakemake script job imports
    from aenbench.jobs import setup_job
    setup_job(types.SimpleNamespace(threads=1, log=[]))
    import aenbench.synthetic.figures  # noqa: F401
""")


def subprocess_seconds(cmd: list[str], repeats: int, env: dict) -> list[float]:
    """Wall time of ``cmd`` in a fresh process, ``repeats`` times."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        times.append(time.perf_counter() - t)
    return times


def small_leaderboard(folder: Path) -> Path:
    """A 24-row leaderboard CSV and its metrics.yaml, as the leaderboard rule writes them."""
    import pandas as pd

    from aenbench import leaderboard as L

    rows = [{"source": "ours", "kind": "family", "track": "synthetic", "dataset": f"rho{rho}", "family": fam,
             "architecture": "x", "params": f"p={p}", "seed": 0, "L0": 2.0 * (p + 1), "dead_pct": 10.0 * p,
             "EV": 0.1 * p, "MSE": 0.5, "MCC": 0.5, "support_f1": 0.5, "train_seconds": 1.0}
            for rho in (0.0, 0.5) for fam in ("AEN", "L1", "TopK") for p in range(4)]
    path = folder / "leaderboard.csv"
    L.write(L.combine([pd.DataFrame(rows)]), path)
    L.write_metrics_yaml(folder / "metrics.yaml")
    return path


def bench_reporting(repeats: int, src: Path | None, rows: Sequence[str]) -> list[dict]:
    """import_time, cli_latency and job_overhead rows (median of ``repeats`` fresh processes)."""
    import tempfile

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    where = subprocess.run([sys.executable, "-c", "import aenbench; print(aenbench.__file__)"], check=True, env=env,
                           capture_output=True, text=True).stdout.strip()
    tree = str(Path(where).parents[1])
    med = statistics.median
    startup = med(subprocess_seconds([sys.executable, "-c", "pass"], repeats, env))
    out = []
    if "import_time" in rows:
        heavy = med(subprocess_seconds([sys.executable, "-c", f"import {HEAVY_IMPORT}"], repeats, env))
        for module in LIGHT_IMPORTS:
            t = med(subprocess_seconds([sys.executable, "-c", f"import {module}"], repeats, env))
            out.append({"row": f"import_time/{module}", "shape": f"fresh process, median of {repeats}", "device": "cpu",
                        "import_s": t, f"import_{HEAVY_IMPORT}_s": heavy, "python_startup_s": startup, "src": tree,
                        "ratio": t / heavy, "target": f"< 1 s, and << import {HEAVY_IMPORT}"})
    exe = Path(sys.executable).parent / "aenbench"
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "aenbench.cli"]
    if "cli_latency" in rows:
        with tempfile.TemporaryDirectory() as tmp:
            board = small_leaderboard(Path(tmp))
            for name, args in [("help", ["--help"]),
                               ("leaderboard", ["leaderboard", "--file", str(board), "--sort", "dead_pct"])]:
                t = med(subprocess_seconds([*cli, *args], repeats, env))
                out.append({"row": f"cli_latency/{name}", "shape": f"aenbench {args[0]}, median of {repeats}",
                            "device": "cpu", "wall_s": t, "python_startup_s": startup, "src": tree,
                            "ratio": t / 1.0, "target": "< 1 (1 s budget)"})
    if "job_overhead" in rows:
        t = med(subprocess_seconds([sys.executable, "-c", JOB_SCRIPT], repeats, env))
        out.append({"row": "job_overhead/figure", "shape": f"preamble + setup_job + figure module, median of {repeats}",
                    "device": "cpu", "wall_s": t, "python_startup_s": startup, "src": tree,
                    "ratio": t / 2.0, "target": "< 1 (2 s budget)"})
    for r in out:
        print(r, flush=True)
    return out


def bench_pipeline(run_dir: Path) -> list[dict]:
    """Per-rule wall time, CPU time and peak RSS from a finished run's benchmarks/ folder."""
    import pandas as pd

    rows = []
    per_rule: dict[str, list] = {}
    for f in sorted((run_dir / "benchmarks").rglob("*.tsv")):
        d = pd.read_csv(f, sep="\t").iloc[0]
        rule = f.stem.split("_")[0] if f.parent.name != "benchmarks" else f.stem
        rule = f"{f.relative_to(run_dir / 'benchmarks').parts[0]}:{rule}" if f.parent.name != "benchmarks" else rule
        per_rule.setdefault(rule, []).append((d["s"], d["cpu_time"], d["max_rss"]))
    for rule, vals in sorted(per_rule.items()):
        rows.append({"row": f"pipeline/{rule}", "jobs": len(vals), "wall_s_sum": sum(v[0] for v in vals),
                     "cpu_s_sum": sum(v[1] for v in vals), "max_rss_mb": max(v[2] for v in vals)})
    logs = sorted((run_dir / ".snakemake" / "log").glob("*.snakemake.log"))
    if logs:
        text = logs[-1].read_text()
        elapsed = [line for line in text.splitlines() if "Elapsed time" in line]
        rows.append({"row": "pipeline/total", "elapsed": elapsed[-1].split(": ", 1)[-1] if elapsed else "unknown",
                     "target": "<= 30 min on 2 cores"})
    for r in rows:
        print(r)
    return rows


def write_results(rows: list[dict], info: dict, out_dir: Path, tiny: bool) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k != "row", k))
    suffix = "_tiny" if tiny else ""
    with open(out_dir / f"results{suffix}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    lines = [f"machine: {info}", "", "| row | shape | ratio | target | details |", "|---|---|---|---|---|"]
    for r in rows:
        details = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                            if k not in ("row", "shape", "ratio", "target"))
        ratio = f"{r['ratio']:.3f}" if isinstance(r.get("ratio"), float) else ""
        lines.append(f"| {r['row']} | {r.get('shape', '')} | {ratio} | {r.get('target', '')} | {details} |")
    (out_dir / f"measured{suffix}.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="aenbench benchmark suite (ratios in one run)")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (seconds); what the tests run")
    ap.add_argument("--pipeline", type=Path, help="a folder where `snakemake figures/all` finished")
    ap.add_argument("--skip-per-job", action="store_true")
    reporting = ["import_time", "cli_latency", "job_overhead"]
    ap.add_argument("--rows", nargs="+", choices=["overhead", "topk_noaux", "per_job", "stacked", *reporting],
                    default=["overhead", "topk_noaux", "per_job", "stacked", *reporting],
                    help="which measured rows to run (default: all)")
    ap.add_argument("--src", type=Path, help="time the import/CLI/job rows against the aenbench under this src/ folder")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.tiny:
        shapes = [("tiny", 16, 64, 32, 20)]
        repeats, per_job, fresh = 1, (2, 20), 1
    else:
        shapes = [
            ("synthetic_paper", 256, 1024, 256, 150),
            ("smollm2_4x", 576, 2304, 1024, 20),
            ("smollm2_8x", 576, 4608, 1024, 10),
            ("pythia70m_paper", 512, 4096, 8192, 3),
        ]
        repeats, per_job, fresh = 3, (6, 500), 7
    info = machine()
    rows = bench_overhead(shapes, repeats, device) if "overhead" in args.rows else []
    if "topk_noaux" in args.rows:
        rows += bench_topk_noaux(shapes[:3], repeats, device)
    if "stacked" in args.rows:
        rows += (bench_stacked([1, 4], 16, 64, 3, 32, 20, 1, device) if args.tiny
                 else bench_stacked([1, 8, 16, 32, 114], 64, 256, 4, 128, 300, 3, device))
    if "per_job" in args.rows and not args.skip_per_job:
        rows += bench_per_job(*per_job)
    if set(reporting) & set(args.rows):
        rows += bench_reporting(fresh, args.src, args.rows)
    if args.pipeline:
        rows += bench_pipeline(args.pipeline)
    write_results(rows, info, args.out, args.tiny)
    print(f"wrote {args.out}/results{'_tiny' if args.tiny else ''}.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
