"""Do two search runs agree? Epoch by epoch: the largest reward and mu differences, and each run's test accuracy.

    python scripts/compare_runs.py runs/plain runs/torchrun
"""

import argparse
import json
from pathlib import Path


def largest_difference(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="run dir with results.json")
    parser.add_argument("second", type=Path)
    args = parser.parse_args()
    runs = [json.loads((run / "results.json").read_text())["epochs"] for run in (args.first, args.second)]
    if len(runs[0]) != len(runs[1]):
        raise SystemExit(f"compare_runs: {args.first} has {len(runs[0])} epochs, {args.second} has {len(runs[1])}")
    print(f"{'epoch':>5}{'max |d reward|':>16}{'max |d mu|':>12}{'test (1st)':>12}{'test (2nd)':>12}")
    identical = True
    for first, second in zip(*runs):
        rewards, mu = largest_difference(first["rewards"], second["rewards"]), largest_difference(first["mu"], second["mu"])
        identical &= rewards == 0 and mu == 0 and first["test_acc"] == second["test_acc"]
        print(f"{first['epoch']:>5}{rewards:>16.3g}{mu:>12.3g}{first['test_acc']:>12.4f}{second['test_acc']:>12.4f}")
    print("identical: " + ("yes, bit for bit" if identical else "no"))


if __name__ == "__main__":
    main()
