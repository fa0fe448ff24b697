"""The reporting side (leaderboard, tables, figures, comparison reports, CLI) imports neither
torch nor sae-lens, not even transitively: checked in a fresh interpreter."""

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "sae_lens", "transformer_lens")
LIGHT_MODULES = [
    "aenbench", "aenbench.cli", "aenbench.leaderboard", "aenbench.metric_registry", "aenbench.tables",
    "aenbench.plots", "aenbench.io", "aenbench.jobs", "aenbench.provenance",
    "aenbench.synthetic.figures", "aenbench.synthetic.ablations", "aenbench.synthetic.replication",
    "aenbench.compare", "aenbench.compare.plugins", "aenbench.compare.matching", "aenbench.compare.report",
]
# job scripts that train, evaluate or build teachers and models: they need torch
HEAVY_SCRIPTS = ("*_train.py", "*_eval.py", "*_teacher.py", "*_spread.py", "llm_harvest.py", "llm_model.py", "llm_corpus*.py",
                 "llm_crosscheck.py")


def report_scripts() -> list[Path]:
    scripts = sorted((REPO / "workflow" / "scripts").glob("*.py"))
    return [p for p in scripts if not any(p.match(pattern) for pattern in HEAVY_SCRIPTS)]


def aenbench_imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "aenbench":
            modules.add(node.module)
            # `from aenbench.compare import report`: report may be a module
            modules.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            modules.update(a.name for a in node.names if a.name.split(".")[0] == "aenbench")
    return modules


def run_fresh(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_report_modules_and_job_scripts_import_no_torch():
    scripts = report_scripts()
    assert any(p.name == "leaderboard.py" for p in scripts) and any(p.name == "compare_report.py" for p in scripts)
    modules = sorted(set(LIGHT_MODULES).union(*(aenbench_imports(p) for p in scripts)))
    code = f"""
import importlib, json, sys, types
imported = []
for name in {modules!r}:
    try:
        importlib.import_module(name)
        imported.append(name)
    except ModuleNotFoundError as err:  # `from aenbench.x import function`: not a module
        if err.name != name:
            raise
from aenbench.jobs import setup_job
setup_job(types.SimpleNamespace(threads=1, log=[]))  # what every figure and table job does first
light = [m for m in {HEAVY!r} if m in sys.modules]
setup_job(types.SimpleNamespace(threads=1, log=[]), torch=True)  # a training job
import torch
print(json.dumps({{"imported": imported, "heavy": light, "torch_threads": torch.get_num_threads()}}))
"""
    out = run_fresh(code)
    assert set(LIGHT_MODULES) <= set(out["imported"])
    assert out["heavy"] == [], f"the reporting side imported {out['heavy']}"
    assert out["torch_threads"] == 1


def test_plugin_loading_imports_sae_lens_only_when_checking_a_registration(tmp_path):
    plugin = tmp_path / "noop_plugin.py"
    plugin.write_text("X = 1\n")
    out = run_fresh(f"""
import json, sys
from aenbench.compare.plugins import load_plugin
load_plugin({str(plugin)!r})
print(json.dumps({{"heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
""")
    assert out["heavy"] == []
