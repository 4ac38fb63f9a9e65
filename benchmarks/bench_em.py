"""EM on per-prompt sufficient statistics against a straightforward EM over the raw prompts.

    python benchmarks/bench_em.py [--n 60000] [--m 20] [--iters 3]

Same data, same starting pool, same number of iterations, one process, torch on the CPU;
prints the seconds of each and their ratio, then times a full `em` fit (default and spectral
initialization) with its peak resident memory.
"""
import argparse
import math
import multiprocessing
import time

import numpy as np
import torch

from mrbench.data import make_dataset
from mrbench.families import make_spec
from mrbench.measure import Meter
from mrbench.solvers.em import EM
from mrbench.solvers.estimation import Stats, batch_em, sphere


def raw_em(x: torch.Tensor, y: torch.Tensor, W: torch.Tensor, pi: torch.Tensor, sigma: float, iters: int,
           ridge: float = 1e-6, chunk: int = 4096) -> torch.Tensor:
    """Algorithm 1 of Pathak et al. written directly over the pairs (no sufficient statistics)."""
    n, L, d = x.shape
    s2 = sigma**2
    for _ in range(iters):
        r = torch.cat([((x[lo:lo + chunk] @ W.T - y[lo:lo + chunk, :, None]) ** 2).sum(1) for lo in range(0, n, chunk)])
        ll = torch.log(pi) - 0.5 * L * (math.log(2 * math.pi * s2)) - r / (2 * s2)
        gamma = torch.softmax(ll, 1)
        pi = gamma.mean(0)
        rows = []
        for j in range(W.shape[0]):  # weighted least squares over every pair
            g = gamma[:, j].repeat_interleave(L)
            X, Y = x.reshape(-1, d), y.reshape(-1)
            A = X.T @ (X * g[:, None]) + ridge * torch.eye(d, dtype=x.dtype)
            rows.append(torch.linalg.solve(A, X.T @ (g * Y)))
        W = torch.stack(rows)
    return W


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--m", type=int, default=20)
    ap.add_argument("--k", type=int, default=60)
    ap.add_argument("--iters", type=int, default=3)
    args = ap.parse_args()
    spec = make_spec(dict(d=20, m=args.m, sigma=1.0, k_max=args.k, n_train=args.n, n_test=2))
    ds = make_dataset(spec)
    data = ds.train.fixed()
    rng = np.random.default_rng(0)
    W0, pi0 = sphere(args.m, 20, rng), np.full(args.m, 1.0 / args.m)
    print(f"torch threads: {torch.get_num_threads()}, n={args.n} k={args.k} m={args.m} d=20, {args.iters} iterations")

    t0 = time.perf_counter()
    stats = Stats.from_prompts(data.x, data.y)
    t_stats = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = batch_em(stats, W0, pi0, 1.0, tol=-1.0, max_iter=args.iters)
    t_fast = time.perf_counter() - t0

    x, y = torch.from_numpy(data.x).double(), torch.from_numpy(data.y).double()
    t0 = time.perf_counter()
    W_raw = raw_em(x, y, torch.from_numpy(W0), torch.from_numpy(pi0), 1.0, args.iters)
    t_raw = time.perf_counter() - t0
    del x, y
    gap = float((W_raw - torch.from_numpy(fast.pool)).abs().max())
    print(f"sufficient statistics: {t_stats:.2f} s once + {t_fast:.2f} s for {args.iters} iterations")
    print(f"raw prompts:           {t_raw:.2f} s for {args.iters} iterations")
    print(f"ratio per iteration: {t_raw / t_fast:.1f}x; including the statistics: {t_raw / (t_fast + t_stats):.1f}x; "
          f"max |W_raw - W_stats| = {gap:.2e}")

    del stats, data, ds
    ctx = multiprocessing.get_context("spawn")  # a fresh process: its memory is the fit's alone
    for init in ("random", "spectral"):
        with ctx.Pool(1) as pool:
            print(pool.apply(full_fit, (spec, init)))


def full_fit(spec, init):
    ds = make_dataset(spec)
    ds.train.fixed()
    import torch  # noqa: F401  (loaded before the baseline is read)
    meter = Meter("cpu")
    base = meter.peak_rss_mb()
    with meter.phase("fit"):
        em = EM(init=init).fit(ds.train)
    info = em.info()
    return (f"full em fit (init={init}): {meter.seconds['fit']:.2f} s, {info['iterations']} iterations, "
            f"converged={info['converged']}; peak RSS {meter.peak_rss_mb():.0f} MB of which "
            f"{base:.0f} MB before the fit (the prompts, the libraries)")


if __name__ == "__main__":
    main()
