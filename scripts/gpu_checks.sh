#!/usr/bin/env bash
# Every GPU check of the CUDA kernel in one run (issue 23), on a machine with an NVIDIA GPU, its
# driver and a CUDA build of torch already installed.  Each step has a time limit; together they fit
# in 7.6 minutes at most (455 s of limits; never run on a GPU so far).
#
#   bash scripts/gpu_checks.sh [RESULTS_FOLDER]      # default: $OUT, else ./gpu-checks
#
# 1. installs OpenMM's CUDA platform wheel matching the driver (openmm-cuda-13, else -12), cmake,
#    ninja and swig;
# 2. builds the plugin with its CUDA kernel into build/gpu and stages it in a scratch package folder
#    (the installed package is not touched);
# 3. runs the C++ tests on Reference, CPU and CUDA (ctest), then every Python test of the integrator
#    that runs on CUDA, the slow exactness tests included (Reference and CPU are CI's);
# 4. runs benchmarks/cuda_speed.py (CUDA against the CPU kernels, and a 30 M-parameter flow).
# Everything goes to RESULTS_FOLDER: gpu_checks.log (all output), ctest.log, pytest.log, junit.xml,
# cuda_speed.json, environment.txt and summary.txt (one line per step, PASS/FAIL).
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS="$(realpath -m "${1:-${OUT:-gpu-checks}}")"
mkdir -p "$RESULTS"
exec > >(tee "$RESULTS/gpu_checks.log") 2>&1
SUMMARY="$RESULTS/summary.txt"
: > "$SUMMARY"
step() {  # step NAME TIMEOUT_S COMMAND...: run, record PASS/FAIL with its duration
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    echo "=== $name"
    # A child bash, so that the exported functions below can be steps too.
    timeout "$limit" bash -c '"$@"' "$name" "$@"
    local rc=$?
    echo "$name: $([ $rc -eq 0 ] && echo PASS || echo "FAIL (exit $rc)") in $((SECONDS - start)) s" | tee -a "$SUMMARY"
    return $rc
}

{
    date; nvidia-smi; python --version
    python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
    python -c "import openmm; print('openmm', openmm.__version__)"
} > "$RESULTS/environment.txt" 2>&1
cat "$RESULTS/environment.txt"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "torch has no CUDA device here: install a CUDA build of torch first" | tee -a "$SUMMARY"; exit 1; }

# The wheel of OpenMM's CUDA platform for this OpenMM version, matching the driver's CUDA major version.
install_openmm_cuda() {
    local version driver
    version=$(python -c "import openmm; print(openmm.__version__)")
    driver=$(nvidia-smi | sed -n 's/.*CUDA Version: \([0-9]*\).*/\1/p' | head -1)
    python -m pip install -q cmake ninja "swig>=4.4" scikit-build-core || return 1
    if [ "${driver:-0}" -ge 13 ] && python -m pip install -q "openmm-cuda-13==$version"; then return 0; fi
    python -m pip install -q "openmm-cuda-12==$version"
}
export -f install_openmm_cuda
step install 90 install_openmm_cuda || exit 1
python -c "import openmm as mm; print([mm.Platform.getPlatform(i).getName() for i in range(mm.Platform.getNumPlatforms())]); print(mm.Platform.getPluginLoadFailures())"

export BUILD=build/gpu
build() {
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$(command -v python)" \
          -DTIMEWARP_BUILD_TESTS=ON -DTIMEWARP_BUILD_CUDA_LIB=ON &&
    cmake --build "$BUILD" --parallel "$(nproc)"
}
export -f build
step build 130 build || exit 1

# A scratch copy of the Python package with the fresh libraries, first on the path for the tests.
STAGE="$RESULTS/stage"
rm -rf "$STAGE" && mkdir -p "$STAGE" && cp -r openmm_timewarp "$STAGE/"
cp "$BUILD"/libOpenMMTimewarp*.so "$BUILD"/_timewarpplugin*.so "$BUILD"/timewarpplugin.py \
   "$BUILD"/platforms/cuda/libOpenMMTimewarpCUDA.so "$STAGE/openmm_timewarp/"
export PYTHONPATH="$STAGE${PYTHONPATH:+:$PYTHONPATH}"
python -c "import openmm_timewarp as t; print('package', t.__file__); print('CUDA kernel:', t.CUDA_KERNEL_UNAVAILABLE or 'loaded')"

step ctest 45 bash -c "cd '$BUILD' && ctest --output-on-failure 2>&1 | tee '$RESULTS/ctest.log'; exit \${PIPESTATUS[0]}"
step pytest 90 bash -c "OMP_NUM_THREADS=4 pytest -q -rs tests/integrator -k 'cuda and not cpp' --junitxml='$RESULTS/junit.xml' 2>&1 | tee '$RESULTS/pytest.log'; exit \${PIPESTATUS[0]}"
step benchmark 100 python benchmarks/cuda_speed.py --seconds 8 --flow-seconds 4 --out "$RESULTS"
echo "=== summary"
cat "$SUMMARY"
! grep -q FAIL "$SUMMARY"
