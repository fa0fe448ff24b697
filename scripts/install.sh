#!/usr/bin/env bash
# Create .venv (when missing) and install aenbench into it. Safe to rerun: it does nothing when
# .venv/.installed is newer than pyproject.toml and this script.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.installed

if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt scripts/install.sh ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q)

# torch first, so that nothing later pulls a multi-GB CUDA build onto a CPU-only machine.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "install: CUDA present, installing torch with CUDA"
    "${pip[@]}" "torch>=2.6,<2.15"
  elif "${pip[@]}" --no-deps --no-index torch==2.13.0 2>/dev/null; then
    # a CPU wheel lies in pip's local wheel folder (find-links): torch alone from there, then its deps
    "${pip[@]}" torch==2.13.0
    echo "install: torch $(.venv/bin/python -c 'import torch; print(torch.__version__)') from the local wheel folder"
  else
    echo "install: no CUDA, installing the CPU wheel of torch 2.13.0"
    "${pip[@]}" torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
  fi
fi
# pydantic: for sae-bench's result classes below (most envs have it already, through wandb)
"${pip[@]}" -e ".[test]" "pydantic>=2.9.2,<3"
# sae-bench's pydantic result classes (BaseEvalOutput, CoreEvalOutput), with which
# tests/test_saebench_schema.py validates our JSONs: --no-deps, since sae-bench 0.6.0 pins numpy<2
# and pulls sae-probes, openai, torchvision, ...; sae_bench.evals.base_eval_output and
# sae_bench.evals.core.eval_output import nothing but pydantic (+2.7 MB, ≈ 1 s).
"${pip[@]}" --no-deps "sae-bench==0.6.0"
touch "$stamp"
echo "install: done ($(.venv/bin/python -c 'import torch, sae_lens; print("torch", torch.__version__, "| sae-lens", sae_lens.__version__)'))"
