"""Throughput of the local executor: `mrbench run -j 2` against the serial executor.

    python benchmarks/bench_parallel.py [--suite quick] [--seeds 4] [--repeat 2]

Each run is a fresh `mrbench run --solvers all` process on an empty results directory, at one
seed and at `--seeds` seeds; the best wall time of `--repeat` runs is kept. Prints the whole
command's serial / parallel ratio at both sizes, and the throughput ratio of the cells
themselves: the extra cells of the larger run over the extra time they took, serial against
parallel. That difference cancels what every command pays once (interpreter and library start
up, worker processes importing torch, the summary), which is not the CPU-bound part.
"""
import argparse
import subprocess
import sys
import tempfile
import time


def wall(suite: str, jobs: int, seeds: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mrbench.cli", "run", "--suite", suite, "--solvers", "all",
                        "--seeds", str(seeds), "--out", out, "--quiet", "--no-report", "-j", str(jobs)],
                       check=True, capture_output=True)
        return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    sizes = (1, args.seeds)
    best: dict = {}
    for _ in range(args.repeat):
        for seeds in sizes:
            for jobs in (1, 2):
                t = wall(args.suite, jobs, seeds)
                print(f"seeds {seeds}, -j {jobs}: {t:.2f} s", flush=True)
                best[seeds, jobs] = min(best.get((seeds, jobs), float("inf")), t)
    print(f"\nbest of {args.repeat}  | serial  | -j 2    | ratio")
    for seeds in sizes:
        print(f"seeds {seeds:<11} | {best[seeds, 1]:6.2f} s | {best[seeds, 2]:6.2f} s | {best[seeds, 1] / best[seeds, 2]:.2f}x")
    extra = {jobs: best[args.seeds, jobs] - best[1, jobs] for jobs in (1, 2)}
    print(f"cells of seeds 2..{args.seeds} | {extra[1]:6.2f} s | {extra[2]:6.2f} s | {extra[1] / extra[2]:.2f}x (throughput)")


if __name__ == "__main__":
    main()
