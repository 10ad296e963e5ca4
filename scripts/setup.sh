#!/usr/bin/env bash
# Set up a virtual environment in .venv with hybridml, its simulator adapters, the example
# plug-ins (the battery-ageing command), the tools to test it and to build the docs site.
# Safe to run again: it reuses .venv and reinstalls only what changed.
#
# torch: constraints.txt pins the CPU build (torch==2.13.0), which this project's machines
# have on disk; an unpinned torch would pull a CUDA build of several GB. On your own machine
# you may drop the constraint, or point pip at the CPU wheels with
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt)
# every adapter under simulators/ and every example under examples/ with a pyproject.toml
# (e.g. examples/battery_ageing: `hybridml battery-ageing`) is an installable plug-in
plugins=()
for p in simulators/*/pyproject.toml examples/*/pyproject.toml; do
    [ -f "$p" ] || continue
    plugins+=(-e "$(dirname "$p")")
done
echo "setup: installing hybridml, $(( ${#plugins[@]} / 2 )) plug-in(s) and test tools"
"${pip[@]}" -e ".[dev,dask,docs]" "${plugins[@]}" 2>&1 | { grep -v -e "is ignored: it is neither" || true; }
.venv/bin/python -c "import torch, hybridml; print(f'setup: done (hybridml {hybridml.__version__}, torch {torch.__version__})')"
