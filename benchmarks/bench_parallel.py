"""Throughput of the local executor: `mrbench run -j 2` against the serial executor.

    python benchmarks/bench_parallel.py [--suite quick] [--repeat 2]

Each run is a fresh `mrbench run --solvers all` process on an empty results directory. Prints
the wall time of the whole command and of its execution phase (from the first cell to the last,
as recorded in the run's `_runs/*.json`; it includes starting the worker processes), and the
serial / parallel ratios.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one(suite: str, jobs: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mrbench.cli", "run", "--suite", suite, "--solvers", "all",
                        "--out", out, "--quiet", "--no-report", "-j", str(jobs)], check=True, capture_output=True)
        wall = time.perf_counter() - t0
        record = json.loads(next(Path(out, "_runs").glob("*.json")).read_text())
        return wall, record["execution_seconds"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    best = {}
    for jobs in (1, 2) * args.repeat:
        wall, execution = one(args.suite, jobs)
        print(f"-j {jobs}: wall {wall:.2f} s, execution {execution:.2f} s")
        prev = best.get(jobs, (float("inf"), float("inf")))
        best[jobs] = (min(prev[0], wall), min(prev[1], execution))
    print(f"best of {args.repeat}: wall ratio {best[1][0] / best[2][0]:.2f}x, "
          f"execution ratio {best[1][1] / best[2][1]:.2f}x")


if __name__ == "__main__":
    main()
