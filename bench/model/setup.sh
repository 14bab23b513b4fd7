#!/usr/bin/env bash
# Creates bench/.venv (gitignored) with CPU PyTorch for the twin benchmark.
# The default PyPI wheel works on CPU (it is large: ~5 GB with its CUDA wheels, ~2 min).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/../.venv"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
fi
if "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    echo "torch already installed in $venv"
else
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet torch numpy
fi
"$venv/bin/python" -c 'import torch; print("torch", torch.__version__, "threads", torch.get_num_threads())'
