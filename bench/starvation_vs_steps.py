"""When do the default spiked SAEs start to starve? (the measurement behind the default config's
5,000 steps × 128; README "Scale of the default config").

For one family config of ``configs/default.yaml`` on the default teachers (n = 64, m = 256, k = 4,
dictionary seed 0), trains ``--steps`` steps at each ``--batch`` with the config's time constants and
prints, every 500 steps s, the dead % over the last s/5 steps (the default's window is the last fifth
of training). An ℓ1 or EN SAE has no schedule and a constant lr, so the row at step s is what an
s-step run of the same SAE reports; an AEN row is not (its T_w, R and β are fixed by the config).

    .venv/bin/python bench/starvation_vs_steps.py --family L1 --params '{"l1_coefficient": 0.02}'
    .venv/bin/python bench/starvation_vs_steps.py --family L1 --params '{"l1_coefficient": 0.02}' --batch 128 256
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def dead_trajectory(family: dict, params: dict, rho: float, steps: int, batch: int, spec: dict, every: int = 500,
                    seed: int = 0) -> dict[int, float]:
    import aenbench.training as T
    from aenbench.synthetic.spiked import SpikedStream, spiked_dictionary

    snap: dict[int, float] = {}

    class Recording(T.CheckedTrainer):
        def step(self, batch_BN: torch.Tensor):  # type: ignore[override]
            out = super().step(batch_BN)
            s = self.n_training_steps + 1  # sae-lens counts the step after step() returns
            if s % every == 0 or s == steps:
                snap[s] = round(100 * self.dead_mask(s // 5).float().mean().item(), 1)
            return out

    train = spec["train"]
    d_MN = spiked_dictionary(spec["n"], spec["m"], rho, spec["dictionary_seed"])
    sae = T.build_training_sae(family["architecture"], spec["n"], spec["m"], params, seed)
    T.train_sae(sae, SpikedStream(d_MN, spec["k"], batch, seed=seed, low=spec["magnitude"][0],
                                  high=spec["magnitude"][1]),
                steps=steps, batch_size=batch, lr=train["lr"], dead_window_steps=1,
                auxk_dead_window_steps=train["auxk_dead_window_steps"], trainer_cls=Recording)
    return snap


def main() -> None:
    from aenbench.sweeps import run_hyperparameters

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--family", default="L1")
    ap.add_argument("--params", default='{"l1_coefficient": 0.02}', help="the grid point, as JSON")
    ap.add_argument("--rhos", type=float, nargs="+", default=[0.0, 0.5, 0.9])
    ap.add_argument("--batch", type=int, nargs="+", default=[128])
    ap.add_argument("--steps", type=int, default=5000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = yaml.safe_load(Path(args.config).read_text())
    family = cfg["families"][args.family]
    params = run_hyperparameters(family, {**json.loads(args.params), "seed": 0}, cfg.get("arch_defaults", {}))
    spec = cfg["synthetic"]
    print(f"{args.family} {args.params}: dead % at step s over the last s/5 steps")
    for batch in args.batch:
        for rho in args.rhos:
            traj = dead_trajectory(family, params, rho, args.steps, batch, spec)
            print(f"  batch {batch}, rho {rho}: " + "  ".join(f"{s}:{v}" for s, v in sorted(traj.items()) if s),
                  flush=True)


if __name__ == "__main__":
    main()
