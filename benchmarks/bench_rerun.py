"""Resuming costs next to nothing: `mrbench run --solvers all` on an empty results directory
against the same command run again with everything stored (target: the rerun under 10% of the
first run).

    python benchmarks/bench_rerun.py [--suite quick] [--repeat 3]

Each command is a fresh process, as a user runs it, with the report written as by default.
Prints every time and the ratio of the median rerun to the median first run.
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def wall(suite: str, out: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mrbench.cli", "run", "--suite", suite, "--solvers", "all", "--out", out,
                    "--quiet"], check=True, capture_output=True)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    first, again = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            first.append(wall(args.suite, out))
            again.append(wall(args.suite, out))
        print(f"first {first[-1]:.2f} s, rerun {again[-1]:.2f} s", flush=True)
    a, b = statistics.median(first), statistics.median(again)
    print(f"median of {args.repeat}: first {a:.2f} s, rerun {b:.2f} s: the rerun takes {100 * b / a:.1f}% of the first run")


if __name__ == "__main__":
    main()
