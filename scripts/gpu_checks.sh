#!/usr/bin/env bash
# The GPU figures BENCHMARKS.md still lacks, in one call of a lent GPU machine. Not run yet: prepared for the
# next session that is lent a GPU (none was lent to the session that wrote it).
# Here first: mkdir -p .device_data && cp -r data/FashionMNIST .device_data/   (data/ filled by any fashion_mnist run)
# Then run it there with .device_data carried; results land in $OUT (or ./gpu_out).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q -e . 2>&1 | tail -1 || true
nvidia-smi --query-gpu=name,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
python3 scripts/bench_datapath.py --device cuda --root .device_data --batch-sizes 128 512 --workers 8 --repeats 3 \
    --json "$OUT/datapath.json" 2>&1 | tee "$OUT/datapath.txt"
python3 scripts/bench_population.py --device cuda --root .device_data --batch-sizes 128 512 --populations 4 8 16 \
    --workers 8 --steps 40 --repeats 3 --json "$OUT/population.json" 2>&1 | tee "$OUT/population.txt"
python3 scripts/bench_population.py --device cuda --root .device_data --batch-sizes 128 --populations 8 16 \
    --workers 8 --steps 40 --repeats 3 --autocast bf16 --fused-adam --json "$OUT/population_bf16_fused.json" 2>&1 \
    | tee "$OUT/population_bf16_fused.txt"
/usr/bin/time -v python3 -m amlfs.search experiment=fashion_mnist_sym40 dataset.root=.device_data device=cuda \
    hydra.run.dir="$OUT/search" 2>&1 | tail -40 | tee "$OUT/search.txt"
