"""Child-images/s of one search: a single process with 1 and with 2 torch threads, and torchrun with 2 ranks x 1 thread.

All three run the same search (the embedded Fashion-MNIST subset by default, B children, a few epochs) one after
another; the rate of an epoch is B x training images / its wall time, and the figure is the median over the epochs
after the first (which includes start-up costs). The three results.json must agree on every reward (checked).

    python scripts/bench_distributed.py --epochs 4 --population 4
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(label: str, command: list[str], threads: int, run_dir: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    subprocess.run([*command, f"hydra.run.dir={run_dir}"], cwd=ROOT, env=env, check=True, capture_output=True)
    results = json.loads((run_dir / "results.json").read_text())
    images = results["data"]["train"] * len(results["epochs"][0]["thetas"])
    rates = [images / epoch["seconds"] for epoch in results["epochs"][1:]]
    return {"label": label, "rate": statistics.median(rates), "rewards": [e["rewards"] for e in results["epochs"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("overrides", nargs="*", help="more search overrides, e.g. dataset.max_train=5000")
    args = parser.parse_args()
    search = ["-m", "amlfs.search", f"search.population={args.population}", f"search.epochs={args.epochs}", "device=cpu",
              "search.backend=sequential", *args.overrides]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    with tempfile.TemporaryDirectory() as folder:
        rows = [
            run("1 process, 1 thread", [sys.executable, *search], 1, Path(folder) / "one"),
            run("1 process, 2 threads", [sys.executable, *search], 2, Path(folder) / "two"),
            run("torchrun, 2 ranks x 1 thread", [*torchrun, *search], 1, Path(folder) / "ranks"),
        ]
    base = rows[0]["rate"]
    print(f"B={args.population}, {args.epochs} epochs, overrides {args.overrides}")
    print("| run | child-img/s | vs 1 thread | same rewards as 1 thread |\n|---|---:|---:|---|")
    for row in rows:
        print(f"| {row['label']} | {row['rate']:,.0f} | {row['rate'] / base:.2f}x | {row['rewards'] == rows[0]['rewards']} |")


if __name__ == "__main__":
    main()
