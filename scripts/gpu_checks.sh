#!/usr/bin/env bash
# The GPU figures BENCHMARKS.md still lacks, in one call of a lent GPU machine.
# Here first: scripts/gpu_prepare.sh (wheels into .gpu-wheels/, archives into .device_data/), then the device call
# with carry [".gpu-wheels", ".device_data"]. Results land in $OUT (or ./gpu_out). Each step has its own time limit
# and a failed step does not stop the ones after it; steps.txt lists how each one ended. A missing package stops the
# script at once. Rehearse it here first: DEVICE=cpu SMALL=1 scripts/gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"

if [ -d .gpu-wheels ] && ! python3 -c "import hydra, cma, tqdm" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps .gpu-wheels/*.whl 2>&1 | tail -1
fi
missing=$(python3 -c "
import importlib
for name in ('torch', 'torchvision', 'numpy', 'hydra', 'omegaconf', 'tensorboard', 'matplotlib', 'cma', 'tqdm'):
    try:
        importlib.import_module(name)
    except ImportError:
        print(name)
")
if [ -n "$missing" ]; then
  echo "gpu_checks: missing Python packages: $(echo $missing); run scripts/gpu_prepare.sh here and carry .gpu-wheels" | tee "$OUT/steps.txt"
  exit 2
fi
if [ "${SMALL:-0}" = 1 ]; then  # the rehearsal: every step, tiny sizes
  SIZES="dataset.max_train=2000 search.epochs=2"; STEPS=3
else
  SIZES=""; STEPS=40
fi

step() {  # step NAME SECONDS COMMAND...: run COMMAND under a time limit, output to $OUT/NAME.txt
  local name=$1 limit=$2
  shift 2
  local started=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "$name rc=$rc $((SECONDS - started))s" | tee -a "$OUT/steps.txt"
  tail -15 "$OUT/$name.txt"
}

{ nvidia-smi --query-gpu=name,driver_version --format=csv 2>/dev/null; python3 -c "import torch; print('torch', torch.__version__)"; } | tee "$OUT/gpu.txt"
FM=".device_data/FashionMNIST/raw"
POP="python3 scripts/bench_population.py --device $DEVICE --root .device_data --archives $FM --workers 8 --steps $STEPS"
step search 90 python3 -m amlfs.search experiment=fashion_mnist_sym40 dataset.root=.device_data dataset.archives=$FM \
    device=$DEVICE $SIZES hydra.run.dir="$OUT/search"
step datapath 45 python3 scripts/bench_datapath.py --device $DEVICE --root .device_data --archives $FM --batch-sizes 128 512 \
    --workers 8 --repeats 3 \
    --json "$OUT/datapath.json"
step population 100 $POP --batch-sizes 128 512 --populations 4 8 16 --repeats 3 --json "$OUT/population.json"
step population_bf16_fused 45 $POP --batch-sizes 128 --populations 8 16 --repeats 3 --autocast bf16 --fused-adam \
    --json "$OUT/population_bf16_fused.json"
step population_channels_last 30 $POP --batch-sizes 128 --populations 8 --repeats 3 --channels-last --json "$OUT/population_channels_last.json"
step population_compile 60 $POP --batch-sizes 128 --populations 8 --repeats 1 --compile default --json "$OUT/population_compile.json"
step population_cudagraphs 60 $POP --batch-sizes 128 --populations 8 --repeats 1 --compile reduce-overhead \
    --json "$OUT/population_cudagraphs.json"
EVAL="python3 -m amlfs.evaluate run=$OUT/search device=$DEVICE evaluate.seeds=3 evaluate.rows=[schedule,searched,ce,gce,sce,nce_rce,mae]"
step evaluate_vectorized 90 $EVAL evaluate.backend=vectorized hydra.run.dir="$OUT/evaluate_vectorized"
step evaluate_sequential 60 $EVAL evaluate.backend=sequential hydra.run.dir="$OUT/evaluate_sequential"
