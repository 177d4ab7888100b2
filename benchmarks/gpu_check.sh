#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU (the `device` tool lends one now and then):
#   bash benchmarks/gpu_check.sh            # from the repository root, in the project's venv
# 1. installs the tensorrt extra (torch-tensorrt) into the active environment,
# 2. runs the TensorRT consistency test (TensorRT agrees with eager PyTorch),
# 3. exports the demo weights to TensorRT twice: the first run builds the engine, the second
#    must find it in the cache (both timed, cache folder listed),
# 4. runs the realtime benchmark with the TensorRT backend (ResNet-18 at 224 and the shipped
#    weights, ratios to the naive loop, per-stage ms),
# and prints the figures; results land in benchmarks/results/ (gpu-check-*.txt, realtime-*).
# Budget: under 8 minutes on one GPU (the benchmark rows are short on purpose).
# On a machine without CUDA it says so and exits 3 before installing anything.
set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi finds none); TensorRT needs one. Nothing was run." >&2
    exit 3
fi
PY=${PYTHON:-python}
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: a GPU is present but this Python's torch sees no CUDA device; run inside the project's venv (pip install -e .) on a CUDA build of torch." >&2
    exit 3
fi
stamp=$(date -u +%Y%m%d-%H%M)
log=benchmarks/results/gpu-check-$stamp.txt
mkdir -p benchmarks/results
exec > >(tee "$log") 2>&1
t_all=$(date +%s)
echo "== GPU check $stamp"
nvidia-smi -L
"$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())"

echo "== 1. install the tensorrt extra"
t0=$(date +%s)
"$PY" -m pip install -q -e ".[tensorrt]" || { echo "gpu_check: pip install -e .[tensorrt] failed"; exit 4; }
"$PY" -c "import torch_tensorrt; print('torch-tensorrt', torch_tensorrt.__version__)" || exit 4
echo "   $(( $(date +%s) - t0 )) s"

echo "== 2. TensorRT consistency test"
t0=$(date +%s)
"$PY" -m pytest -q -p no:cacheprovider tests/test_backends.py -k tensorrt -rA
rc_test=$?
echo "   $(( $(date +%s) - t0 )) s, exit $rc_test"

echo "== 3. engine build, then the cache"
cache=$(mktemp -d /tmp/moext-trt-cache.XXXXXX)
for k in 1 2; do
    t0=$("$PY" -c "import time; print(time.time())")
    MOEXT_CACHE_DIR=$cache moext-live export --format tensorrt
    echo "   export run $k: $("$PY" -c "import time; print(f'{time.time() - $t0:.1f}')") s"
done
echo "   cache: $(find "$cache" -type f | wc -l) files"; find "$cache" -type f -printf '   %p %s bytes\n'

echo "== 4. realtime benchmark, TensorRT backend"
MOEXT_CACHE_DIR=$cache "$PY" benchmarks/realtime.py --rows resnet18:tensorrt shipped:tensorrt resnet18:onnx \
    --frames 600 --long-frames 0 --no-budget --agreement-frames 0
rc_bench=$?
rm -rf "$cache"
echo "== done in $(( $(date +%s) - t_all )) s; consistency test exit $rc_test, benchmark exit $rc_bench; log $log"
exit $(( rc_test != 0 || rc_bench != 0 ))
