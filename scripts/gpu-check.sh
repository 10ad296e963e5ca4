#!/usr/bin/env bash
# The prepared GPU check, for a machine with an NVIDIA GPU (one run, under 8 minutes):
#
#   1. finds a Python whose torch sees the GPU: $PYTHON, then .venv, then the machine's own
#      python3 (GPU images often come with a CUDA torch preinstalled). If none does and
#      nvidia-smi shows a GPU, it sets up .venv with scripts/setup.sh (which installs the
#      CPU build pinned in constraints.txt) and replaces that torch with the CUDA build of
#      the same version from $TORCH_INDEX (default: download.pytorch.org/whl/cu126),
#      bypassing the CPU pin; hybridml and the DeepXDE adapter come from this checkout
#      (PYTHONPATH) when that Python lacks them;
#   2. runs the device tests (tests/unit/test_device.py: the GPU tests run here, not skipped);
#   3. runs the GPU benchmark (benchmarks/gpu.py: Adam on 50,000 Burgers points with an
#      8x64 network, a 32-member batched ensemble, float64 BFGS; GPU against CPU) and
#      writes benchmarks/results/gpu.json with the GPU's name.
#
# Without a usable GPU it says "no CUDA", runs the CPU smoke test of the benchmark and
# exits with status 1. Usage: bash scripts/gpu-check.sh   (env: PYTHON, TORCH_INDEX)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYBAMM_DISABLE_TELEMETRY=true DDE_BACKEND=pytorch MPLBACKEND=Agg
start=$SECONDS
log() { echo "gpu-check [$((SECONDS - start)) s]: $*"; }
sees_gpu() {
    [ -n "$1" ] && "$1" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
        >/dev/null 2>&1
}

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader | sed 's/^/gpu-check: GPU /'

py=""
for cand in "${PYTHON:-}" .venv/bin/python "$(command -v python3 || true)"; do
    if sees_gpu "$cand"; then py=$cand; break; fi
done
if [ -z "$py" ] && command -v nvidia-smi >/dev/null; then  # a GPU, but no CUDA torch yet
    log "no Python here has a torch that sees the GPU; setting up .venv with a CUDA torch"
    [ -x .venv/bin/python ] || timeout 240 bash scripts/setup.sh || log "setup.sh failed"
    if [ -x .venv/bin/python ]; then
        version=$(.venv/bin/python -c "import torch; print(torch.__version__.split('+')[0])" \
            2>/dev/null || echo 2.13.0)
        # constraints.txt pins the CPU build: install the CUDA wheel of the same version
        # without it (--no-deps: the rest of .venv stays as setup.sh made it)
        if ! timeout 300 .venv/bin/python -m pip install --quiet --disable-pip-version-check \
            --force-reinstall --no-deps "torch==$version" \
            --index-url "${TORCH_INDEX:-https://download.pytorch.org/whl/cu126}"; then
            log "could not install a CUDA torch (no network, or no wheel for $version)"
        fi
        sees_gpu .venv/bin/python && py=.venv/bin/python
    fi
fi
if [ -z "$py" ]; then
    log "no CUDA: no torch here sees a GPU (nvidia-smi above lists what the driver sees)"
    fallback=$(command -v python3)
    [ -x .venv/bin/python ] && fallback=.venv/bin/python
    PYTHONPATH="src:simulators/deepxde${PYTHONPATH:+:$PYTHONPATH}" timeout 120 \
        "$fallback" benchmarks/gpu.py --device cpu --quick || true
    exit 1
fi
if ! "$py" -c "import hybridml" >/dev/null 2>&1; then
    export PYTHONPATH="src:simulators/deepxde${PYTHONPATH:+:$PYTHONPATH}"
fi
log "python $py: $("$py" -c "import torch; print('torch', torch.__version__, 'CUDA', \
torch.version.cuda, torch.cuda.get_device_name(0))")"

status=0
if "$py" -c "import pytest" >/dev/null 2>&1 \
    || timeout 60 "$py" -m pip install --quiet --disable-pip-version-check pytest >/dev/null 2>&1
then
    log "device tests (tests/unit/test_device.py)"
    timeout 150 "$py" -m pytest -q -p no:cacheprovider tests/unit/test_device.py \
        || { status=$?; log "device tests failed (status $status)"; }
else
    log "pytest is not installed and cannot be; device tests skipped"
    status=1
fi

log "GPU benchmark (benchmarks/gpu.py)"
mkdir -p benchmarks/results
timeout 240 "$py" benchmarks/gpu.py --device cuda --json benchmarks/results/gpu.json \
    || { status=$?; log "benchmark failed (status $status)"; }
[ -f benchmarks/results/gpu.json ] && log "wrote benchmarks/results/gpu.json"
log "done (status $status)"
exit $status
