#!/usr/bin/env bash
# Install openmm-timewarp and everything it needs from PyPI into the current Python environment,
# building the C++ plugin against the installed OpenMM and torch.
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
    # The CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
    python -m pip install torch==2.13.0
fi
python -m pip install -r requirements.txt
python -m pip install --no-build-isolation .
# Checked from outside the source tree, which would shadow the installed package.
(cd / && python -c "import openmm_timewarp, torch, openmm; print('openmm-timewarp', openmm_timewarp.__version__, 'with torch', torch.__version__, 'and OpenMM', openmm.__version__)")
