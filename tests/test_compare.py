"""The worked example end to end: `snakemake results/compare/L1-resample.md` on the smoke config
trains examples/l1_resample.py through its plugin and writes a report that these tests recompute
independently from the per-SAE metric JSONs.

One DAG run, `figures/all` on configs/smoke.yaml (every track), is shared with test_reruns.py and
test_workflow_e2e.py through :func:`smoke_workdir` (tests that change files work on a copy): the
smoke DAG is the suite's largest cost, and building it once per session halves the e2e time.
"""

import atexit
import copy
import functools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aenbench.leaderboard import params_label
from aenbench.metric_registry import METRICS

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
VARIANT = "L1-resample"


def smoke_config():
    """configs/smoke.yaml, as a dict."""
    with open(REPO / "configs" / "smoke.yaml") as f:
        return yaml.safe_load(f)


def write_config(cfg, path):
    # key order kept: Snakemake compares rule params as written, so a reordered dict reruns jobs
    Path(path).write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return Path(path)


def snakemake(workdir, configfile, *args, timeout=1800):
    # targets go before --configfile, which takes several values
    cmd = [sys.executable, "-m", "snakemake", *map(str, args), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(configfile)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@functools.lru_cache(maxsize=1)
def smoke_workdir():
    """`snakemake figures/all` on the smoke config, once per test session; (workdir, cfg, configfile)."""
    workdir = Path(tempfile.mkdtemp(prefix="aenbench-smoke-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    cfg = smoke_config()
    configfile = write_config(cfg, workdir / "smoke.yaml")
    proc = snakemake(workdir, configfile, "figures/all", "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir, cfg, configfile


def copy_workdir(src, dst):
    """A copy that Snakemake sees as up to date (mtimes and .snakemake metadata kept)."""
    shutil.copytree(src, dst, symlinks=True)
    return Path(dst)


@pytest.fixture(scope="module")
def example():
    workdir, cfg, configfile = smoke_workdir()
    # the README's step, on a built workdir: nothing left to do
    proc = snakemake(workdir, configfile, f"results/compare/{VARIANT}.md", "-n", "--cores", "1")
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr
    return workdir, cfg


def records(workdir, kind, name):
    return [json.loads(p.read_text()) for p in sorted(Path(workdir, "results", "synthetic").glob(f"*/{kind}/{name}/*/metrics.json"))]


def flat(record):
    out = {}
    for group in record["eval_result_metrics"].values():
        out.update(group)
    return out


def test_variant_trained_through_its_plugin_on_the_same_budget(example):
    workdir, cfg = example
    spec = cfg["variants"][VARIANT]
    train = cfg["synthetic"]["train"]
    mine = records(workdir, "variants", VARIANT)
    n_grid = math.prod(len(v) for v in spec["grid"].values())
    assert len(mine) == len(cfg["synthetic"]["rhos"]) * n_grid * len(train["seeds"])
    for r in mine:
        assert r["run"]["architecture"] == "l1_resample" and r["sae_cfg_dict"]["architecture"] == "l1_resample"
        assert r["run"]["hyperparameters"]["resample_every"] == spec["fixed"]["resample_every"]
    # resampling did happen, within the schedule: events at multiples of resample_every before resample_until
    events = [flat(r)["n_resample_events"] for r in mine]
    max_events = len(range(spec["fixed"]["resample_every"], spec["fixed"]["resample_until"], spec["fixed"]["resample_every"]))
    assert max(events) >= 1 and max(events) <= max_events
    assert sum(flat(r)["n_resampled"] for r in mine) > 0
    # same data, seeds and budget as every family it is compared with
    families = [r for f in spec["compare"]["families"] for r in records(workdir, "runs", f)]
    assert families
    for r in mine + families:
        assert r["run"]["samples_seen"] == train["steps"] * train["batch_size"]
        assert r["run"]["seed"] in train["seeds"]
    by_dataset = {}
    for r in mine + families:
        by_dataset.setdefault(r["run"]["dataset"], set()).add(json.dumps(r["run"]["teacher"], sort_keys=True))
    assert all(len(teachers) == 1 for teachers in by_dataset.values())


def test_saved_variant_loads_with_its_plugin(example):
    import sae_lens
    import torch

    from aenbench.compare.plugins import load_plugin

    workdir, cfg = example
    plugin = load_plugin(REPO / "examples" / "l1_resample.py", "l1_resample")
    folder = next(Path(workdir, "results", "synthetic").glob(f"*/variants/{VARIANT}/*/sae"))
    sae = sae_lens.SAE.load_from_disk(str(folder))
    assert isinstance(sae, plugin.L1ResampleSAE)
    assert sae.encode(torch.zeros(2, cfg["synthetic"]["n"])).shape == (2, cfg["synthetic"]["m"])


def expected_matches(workdir, cfg):
    """The matched-L0 table recomputed from the metric JSONs, without aenbench.compare."""
    spec = cfg["variants"][VARIANT]
    tol = spec.get("compare", {}).get("l0_tolerance", 0.25)

    def configs(kind, name):
        groups = {}
        for r in records(workdir, kind, name):
            # the leaderboard's label of the run (every hyperparameter that tells it apart)
            label = params_label(r["run"]["hyperparameters"], r["run"]["params"])
            groups.setdefault((r["run"]["dataset"], label), []).append(flat(r))
        return {key: pd.DataFrame(v) for key, v in groups.items()}

    mine = configs("variants", VARIANT)
    out = {}
    for family in spec["compare"]["families"]:
        theirs = configs("runs", family)
        for (dataset, params), v in mine.items():
            cands = sorted((abs(t["L0"].mean() - v["L0"].mean()), p) for (d, p), t in theirs.items() if d == dataset)
            best = cands[0][1]
            t = theirs[(dataset, best)]
            matched = abs(t["L0"].mean() - v["L0"].mean()) / v["L0"].mean() <= tol
            verdicts = {}
            for m, info in METRICS.items():
                if info.higher_is_better is None or m not in v:
                    continue
                value, lo, hi = v[m].mean(), t[m].min(), t[m].max()
                if not matched:
                    verdicts[m] = "L0 not matched"
                elif lo <= value <= hi:
                    verdicts[m] = "within seed spread"
                elif (value > hi) == info.higher_is_better:
                    verdicts[m] = "better"
                else:
                    verdicts[m] = "worse"
            out[(dataset, params, family)] = {"family_params": best, "family_L0": t["L0"].mean(),
                                              "delta": {m: v[m].mean() - t[m].mean() for m in verdicts},
                                              "verdicts": verdicts}
    return out


def test_report_csv_matches_an_independent_recomputation(example):
    workdir, cfg = example
    expected = expected_matches(workdir, cfg)
    table = pd.read_csv(Path(workdir, "results", "compare", f"{VARIANT}.csv"))
    assert len(table) == len(expected)
    for row in table.to_dict("records"):
        exp = expected[(row["dataset"], row["variant_params"], row["family"])]
        assert row["family_params"] == exp["family_params"]
        assert row["family_L0"] == pytest.approx(exp["family_L0"])
        for m, verdict in exp["verdicts"].items():
            assert row[f"{m}_verdict"] == verdict, (row["dataset"], row["family"], m)
            assert row[f"{m}_delta"] == pytest.approx(exp["delta"][m], abs=1e-9)


def test_report_markdown_shows_every_match_and_the_counts(example):
    workdir, cfg = example
    md = Path(workdir, "results", "compare", f"{VARIANT}.md").read_text()
    expected = expected_matches(workdir, cfg)
    shown = cfg["variants"][VARIANT]["compare"].get("metrics", ["dead_pct", "EV", "MSE", "MCC", "support_f1"])
    train = cfg["synthetic"]["train"]
    assert f"{train['steps']:,} steps × {train['batch_size']:,}" in md
    assert f"../../figures/compare/{VARIANT}_pareto.png" in md
    lines = md.splitlines()
    for (dataset, params, family), exp in expected.items():
        section = lines.index(f"## {dataset}")
        start = next(i for i in range(section, len(lines)) if lines[i].startswith(f"### `{VARIANT}` {params} "))
        row = next(l for l in lines[start:] if l.startswith(f"| {family} | {exp['family_params']} |"))
        cells = [c.strip() for c in row.strip("|").split("|")][3:]
        assert len(cells) == len(shown)
        for m, cell in zip(shown, cells):
            assert cell.endswith(f", {exp['verdicts'][m]})"), (dataset, params, family, m, cell)
    for family in cfg["variants"][VARIANT]["compare"]["families"]:
        row = next(l for l in lines if l.startswith(f"| {family} | ") and "better ·" in l)
        cells = [c.strip() for c in row.strip("|").split("|")][1:]
        for m, cell in zip(shown, cells):
            verdicts = [e["verdicts"][m] for (d, p, f), e in expected.items() if f == family]
            assert cell.startswith(f"{verdicts.count('better')} better · {verdicts.count('worse')} worse · "
                                   f"{verdicts.count('within seed spread')} within"), (family, m, cell)


def test_pareto_plot_is_written(example):
    workdir, _ = example
    png = Path(workdir, "figures", "compare", f"{VARIANT}_pareto.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_a_broken_plugin_fails_the_job_naming_file_and_traceback(example, tmp_path):
    workdir, cfg = example
    work = copy_workdir(workdir, tmp_path / "w")
    bad = tmp_path / "broken_variant.py"
    bad.write_text("import torch\n\ndef build():\n    raise RuntimeError('plugin bug on purpose')\n\nbuild()\n")
    cfg = copy.deepcopy(cfg)
    cfg["variants"]["Broken"] = {"plugin": str(bad), "architecture": "broken", "grid": {"l1_coefficient": [1.0]},
                                 "compare": {"datasets": [f"rho{cfg['synthetic']['rhos'][0]}"]}}
    configfile = write_config(cfg, tmp_path / "broken.yaml")
    target = f"results/synthetic/rho{cfg['synthetic']['rhos'][0]}/variants/Broken"
    proc = snakemake(work, configfile, target, "--cores", "1")
    assert proc.returncode != 0
    log = (work / "logs" / "synthetic" / f"rho{cfg['synthetic']['rhos'][0]}" / "variant_Broken.log").read_text()
    assert f"importing the SAE plugin '{bad}' failed" in log
    assert "Traceback" in log and "plugin bug on purpose" in log and "build()" in log
    assert not (work / target).exists()


def test_unknown_plugin_file_is_a_config_error(example, tmp_path):
    workdir, cfg = example
    cfg = copy.deepcopy(cfg)
    cfg["variants"][VARIANT]["plugin"] = "examples/no_such_plugin.py"
    proc = snakemake(tmp_path, write_config(cfg, tmp_path / "c.yaml"), "-n", f"results/compare/{VARIANT}.md")
    assert proc.returncode != 0
    assert f"variants.{VARIANT}.plugin = 'examples/no_such_plugin.py': no such file" in proc.stdout + proc.stderr
