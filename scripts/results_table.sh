#!/usr/bin/env bash
# RESULTS.md's first table: three protocols, each searched, ablated (mu fixed at cross-entropy) and evaluated.
# CPU scale: 20,000 training images (18,000 train + 2,000 validation), 4 children, 15 epochs, 3 evaluation seeds.
# On clean labels the evaluation leaves out the losses built for label noise (GCE, SCE, NCE+RCE, MAE).
# Usage: scripts/results_table.sh <protocol> [continuous]
#   protocol: fashion_mnist_clean, fashion_mnist_sym40 or mnist_sym40
#   continuous: search the continuous form of the space (space.continuous=true) and evaluate only the searched
#   rows; the hand-crafted rows do not depend on the space and come from the run without this argument.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SCALE="dataset.max_train=20000 search.population=4 search.epochs=15"
ROWS=()
case "$1" in
  fashion_mnist_clean) ARGS="experiment=fashion_mnist_cnn dataset.archives=../shared/data/FashionMNIST/raw"
                       ROWS=("evaluate.rows=[searched,schedule,ce,label_smoothing,focal,poly1,search_model]") ;;
  fashion_mnist_sym40) ARGS="experiment=fashion_mnist_sym40 space=amlfs dataset.archives=../shared/data/FashionMNIST/raw" ;;
  mnist_sym40) ARGS="experiment=mnist_sym40 space=amlfs dataset.archives=../shared/data/MNIST/raw" ;;
  *) echo "unknown protocol $1" >&2; exit 2 ;;
esac
OUT=runs/table/$1
case "${2:-}" in
  "") ;;
  continuous) ARGS="$ARGS space.continuous=true"; OUT=$OUT-continuous; ROWS=("evaluate.rows=[searched,schedule,search_model]") ;;
  *) echo "unknown variant $2" >&2; exit 2 ;;
esac
$PY -m amlfs.search $ARGS $SCALE hydra.run.dir=$OUT/search
$PY -m amlfs.search $ARGS $SCALE controller.learn=false hydra.run.dir=$OUT/search_fixed_mu
$PY -m amlfs.evaluate run=$OUT/search evaluate.seeds=3 "${ROWS[@]}" hydra.run.dir=$OUT/evaluation
