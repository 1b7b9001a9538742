#!/usr/bin/env bash
# The PyTorch reference environment: CPU PyTorch from PyPI in bench/torch/.venv (ignored by git).
# Only the cross-check exporter and the benchmark's PyTorch column need it; tests do not.
set -euo pipefail
cd "$(dirname "$0")"
if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "torch reference environment present: $(.venv/bin/python -c 'import torch; print(torch.__version__)')"
  exit 0
fi
python3 -m venv .venv
.venv/bin/pip install -q "torch==2.13.0+cpu" numpy
