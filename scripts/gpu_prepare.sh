#!/usr/bin/env bash
# Here, before a GPU call: gather what scripts/gpu_checks.sh needs on the GPU machine, which reaches no registry.
# .gpu-wheels/: hydra-core, omegaconf, antlr4 (../shared/gpu-wheels) and amlfs's other pure-Python needs the GPU
# image lacks (cma, tqdm), as wheels for its Python 3.12. .device_data/: the original Fashion-MNIST and MNIST archives.
# Both folders are git-ignored: name them in the device call's carry list.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-wheels .device_data
cp ../shared/gpu-wheels/*.whl .gpu-wheels/
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .gpu-wheels "cma>=4.0,<5" "tqdm>=4.60"
for name in FashionMNIST MNIST; do
  mkdir -p ".device_data/$name" && cp -r "../shared/data/$name/raw" ".device_data/$name/"
done
ls .gpu-wheels .device_data/*/raw
