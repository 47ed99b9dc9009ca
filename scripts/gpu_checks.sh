#!/usr/bin/env bash
# The GPU figures BENCHMARKS.md still lacks, in one call of a lent GPU machine. Not run yet: prepared for the
# next session that is lent a GPU (none was lent to the sessions that wrote it).
# Here first: mkdir -p .device_data && cp -r data/FashionMNIST .device_data/   (data/ filled by any fashion_mnist run)
# Then run it there with .device_data carried; results land in $OUT (or ./gpu_out). Each step has its own time
# limit and a failed step does not stop the ones after it; steps.txt lists how each one ended.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"

step() {  # step NAME SECONDS COMMAND...: run COMMAND under a time limit, output to $OUT/NAME.txt
  local name=$1 limit=$2
  shift 2
  local started=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "$name rc=$rc $((SECONDS - started))s" | tee -a "$OUT/steps.txt"
  tail -15 "$OUT/$name.txt"
}

python3 -m pip install -q -e . 2>&1 | tail -1
{ nvidia-smi --query-gpu=name,driver_version --format=csv; python3 -c "import torch; print('torch', torch.__version__)"; } | tee "$OUT/gpu.txt"
POP="python3 scripts/bench_population.py --device cuda --root .device_data --workers 8 --steps 40"
step search 120 python3 -m amlfs.search experiment=fashion_mnist_sym40 dataset.root=.device_data device=cuda hydra.run.dir="$OUT/search"
step datapath 60 python3 scripts/bench_datapath.py --device cuda --root .device_data --batch-sizes 128 512 --workers 8 --repeats 3 \
    --json "$OUT/datapath.json"
step population 120 $POP --batch-sizes 128 512 --populations 4 8 16 --repeats 3 --json "$OUT/population.json"
step population_bf16_fused 60 $POP --batch-sizes 128 --populations 8 16 --repeats 3 --autocast bf16 --fused-adam \
    --json "$OUT/population_bf16_fused.json"
step population_channels_last 45 $POP --batch-sizes 128 --populations 8 --repeats 3 --channels-last --json "$OUT/population_channels_last.json"
step population_compile 90 $POP --batch-sizes 128 --populations 8 --repeats 1 --compile default --json "$OUT/population_compile.json"
step population_cudagraphs 90 $POP --batch-sizes 128 --populations 8 --repeats 1 --compile reduce-overhead \
    --json "$OUT/population_cudagraphs.json"
