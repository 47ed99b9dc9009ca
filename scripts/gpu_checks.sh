#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md, in two parts of one device call each. Taken on an H200 on 2026-11-29: every step
# but the two noisy-label tables (evaluate_vectorized, mnist_evaluate: 9 rows x 3 seeds, about 14 s per training
# there before the stacked evaluation batched its losses and batches), the stacked-evaluation benchmark and the
# CUDA-graphs search. Next: ONLY="search stacked_evaluation evaluate_vectorized search_cudagraphs cudagraphs_vs_plain",
# then PART=2 ONLY="mnist_search mnist_evaluate" (PART="1 2" runs both parts' steps in one call). With ONLY unset a
# part's step limits add up to more than 600 s.
# PART=1 (default): the Fashion-MNIST search and table, data path, population backends, bf16, channels-last, compile,
# the stacked evaluation's step, a search with CUDA graphs against the plain one.
# PART=2: the MNIST search and table, ResNet-20 on generated CIFAR-10-format data, torchrun (NCCL) against one process.
# Here first: scripts/gpu_prepare.sh (wheels into .gpu-wheels/, archives into .device_data/), then the device call
# with carry [".gpu-wheels", ".device_data"]. Results land in $OUT (or ./gpu_out). Each step has its own time limit
# and a failed step does not stop the ones after it; steps.txt lists how each one ended. A missing package stops the
# script at once. ONLY="step names" runs only those steps of the part. Rehearse it here first:
# DEVICE=cpu SMALL=1 [PART=2] scripts/gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # amlfs from this checkout: nothing is pip-installed there
OUT=${OUT:-gpu_out}
PART=${PART:-1}
DEVICE=${DEVICE:-cuda}
if [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then  # its run dirs would be refused as holding searches already
  echo "gpu_checks: $OUT is not empty; remove it or set OUT to a new folder"
  exit 2
fi
mkdir -p "$OUT"

if [ -d .gpu-wheels ] && ! python3 -c "import hydra, cma, tqdm" 2>/dev/null; then  # beside the image's packages
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu-wheels-site .gpu-wheels/*.whl 2>&1 | tail -1
  export PYTHONPATH="$PYTHONPATH:/tmp/gpu-wheels-site"
fi
missing=$(python3 -c "
import importlib
for name in ('torch', 'torchvision', 'numpy', 'hydra', 'omegaconf', 'tensorboard', 'matplotlib', 'cma', 'tqdm'):
    try:
        importlib.import_module(name)
    except ImportError as err:
        print(f'{name} ({err})')
")
if [ -n "$missing" ]; then
  echo "gpu_checks: cannot import: $(echo $missing); run scripts/gpu_prepare.sh here and carry .gpu-wheels" | tee "$OUT/steps.txt"
  exit 2
fi
if [ "${SMALL:-0}" = 1 ]; then  # the rehearsal: every step, tiny sizes
  SIZES="dataset.max_train=2000 search.epochs=2"; STEPS=3; SEEDS=1; CIFAR_SIZE="train=2000, test=500"
  SLOW=4  # a 2-core CPU: every limit x4, so that each step is seen to finish
else
  SIZES=""; STEPS=40; SEEDS=3; CIFAR_SIZE="train=50000, test=10000"; SLOW=1
fi

step() {  # step NAME SECONDS COMMAND...: run COMMAND under a time limit, output to $OUT/NAME.txt; ONLY="NAME ..." runs those alone
  local name=$1 limit=$(($2 * SLOW))
  shift 2
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  local started=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "$name rc=$rc $((SECONDS - started))s" | tee -a "$OUT/steps.txt"
  tail -15 "$OUT/$name.txt"
}

{ nvidia-smi --query-gpu=name,driver_version --format=csv 2>/dev/null; python3 -c "import torch; print('torch', torch.__version__)"; } | tee "$OUT/gpu.txt"
FM=".device_data/FashionMNIST/raw"
EVAL="python3 -m amlfs.evaluate device=$DEVICE evaluate.seeds=$SEEDS evaluate.rows=[search_model,schedule,searched,best_val_mu,ce,gce,sce,nce_rce,mae]"
if [[ " $PART " == *" 1 "* ]]; then
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
  step stacked_evaluation 60 python3 scripts/bench_stacked_evaluation.py --device $DEVICE --root .device_data --archives $FM \
      --seeds 1 $SEEDS --steps $STEPS --repeats 3 --json "$OUT/stacked_evaluation.json"
  step evaluate_vectorized 420 $EVAL run=$OUT/search evaluate.backend=vectorized hydra.run.dir="$OUT/evaluate_vectorized"
  step evaluate_sequential 60 $EVAL run=$OUT/search evaluate.backend=sequential hydra.run.dir="$OUT/evaluate_sequential"
  step search_cudagraphs 150 python3 -m amlfs.search experiment=fashion_mnist_sym40 dataset.root=.device_data \
      dataset.archives=$FM device=$DEVICE $SIZES train.compile=reduce-overhead hydra.run.dir="$OUT/search_cudagraphs"
  step cudagraphs_vs_plain 10 python3 scripts/compare_runs.py "$OUT/search" "$OUT/search_cudagraphs"
fi
if [[ " $PART " == *" 2 "* ]]; then
  MNIST=".device_data/MNIST/raw"
  step mnist_search 90 python3 -m amlfs.search experiment=mnist_sym40 dataset.root=.device_data dataset.archives=$MNIST \
      device=$DEVICE $SIZES hydra.run.dir="$OUT/mnist_search"
  step mnist_evaluate 420 $EVAL run=$OUT/mnist_search evaluate.backend=vectorized hydra.run.dir="$OUT/mnist_evaluate"
  CIFAR=".device_data/cifar10_archives"  # random images in the real format: throughput and wall time, not accuracy
  step cifar_data 40 python3 -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from fake_cifar import write_cifar_archive
write_cifar_archive(Path('$CIFAR'), 'cifar10', $CIFAR_SIZE)"
  step cifar_population 90 python3 scripts/bench_population.py --device $DEVICE --dataset cifar10 --model resnet20 \
      --root .device_data/cifar10 --archives $CIFAR --no-verify --augment --workers 8 --steps $STEPS --batch-sizes 128 \
      --populations 8 --repeats 1 --json "$OUT/cifar_population.json"
  step cifar_search_epoch 100 python3 -m amlfs.search experiment=cifar10_resnet20 dataset.root=.device_data/cifar10 \
      dataset.archives=$CIFAR dataset.verify=false device=$DEVICE $SIZES search.epochs=1 hydra.run.dir="$OUT/cifar_search"
  SHORT="experiment=fashion_mnist_sym40 dataset.root=.device_data dataset.archives=$FM $SIZES search.epochs=3"
  step plain_3epochs 45 python3 -m amlfs.search $SHORT device=$DEVICE hydra.run.dir="$OUT/plain"
  step torchrun_3epochs 55 env TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 torchrun --nproc-per-node=1 -m amlfs.search $SHORT \
      device=$DEVICE hydra.run.dir="$OUT/torchrun"
  step torchrun_vs_plain 10 python3 scripts/compare_runs.py "$OUT/plain" "$OUT/torchrun"
fi
