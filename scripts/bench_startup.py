"""Start-up of the command line: a fresh interpreter importing amlfs.search and amlfs.evaluate, against the same
with the modules they imported at the top before they loaded them on first use (torchvision, torch._dynamo,
matplotlib.pyplot). The two alternate, `--repeats` times each; prints the median and range of wall seconds.

    .venv/bin/python scripts/bench_startup.py --repeats 7
"""

import argparse
import statistics
import subprocess
import sys
import time

NOW = "import amlfs.search, amlfs.evaluate"
EAGER = NOW + "; import torchvision, torch._dynamo, matplotlib.pyplot"
VARIANTS = {"on first use (now)": NOW, "eager (before)": EAGER}


def seconds(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    times = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, code in VARIANTS.items():
            times[name].append(seconds(code))
    baseline = statistics.median(times["eager (before)"])
    print("| imports | median s | min-max s | vs eager |\n|---|---:|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {min(values):.2f}-{max(values):.2f} | {baseline / median:.2f}x |")


if __name__ == "__main__":
    main()
