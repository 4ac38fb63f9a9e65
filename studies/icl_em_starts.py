"""How icl_em's default starts were chosen: EM run on each prefix has local optima, so more
starts (`restarts`, further rotations of the spectral init) and a warm start (the previous
prefix's answer) each give a run, and the run of highest penalized likelihood is kept. Run
from the repository root:

    python -m studies.icl_em_starts              # d = 10, sigma = 1, snr = 10, n = 40, 300 prompts

It prints, per variant, the excess MSE over the known-beta bound at the last query (k = n,
the papers' quantity), the mean NMSE ratio to the Bayes reference over k = 1..n (paired SE)
and the seconds to predict, all on the same prompts.
"""
import argparse
import time

import numpy as np

from mrbench.data import make_dataset
from mrbench.families import make_spec
from mrbench.metrics import excess_curve
from mrbench.prompts import hide_query
from mrbench.registry import instantiate, load_registry, parse_solver_arg

VARIANTS = ["icl_em[warm=False]", "icl_em[warm=False,restarts=10]", "icl_em[warm=False,restarts=30]",
            "icl_em", "icl_em[restarts=10]", "icl_gradient_em[warm=False]", "icl_gradient_em"]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-test", type=int, default=300)
    ap.add_argument("--snr", type=float, default=10.0)
    ap.add_argument("--variants", nargs="*", default=VARIANTS)
    args = ap.parse_args(argv)
    spec = make_spec({"family": "sample", "prior": "gaussian", "d": 10, "K": 2, "sigma": 1.0, "snr": args.snr,
                      "n": 40, "B": 10, "n_test": args.n_test})
    ds = make_dataset(spec)
    y = hide_query(ds.test.y)
    registry = load_registry()

    def run(name):
        [solver] = instantiate(registry, parse_solver_arg(name))
        solver.set_context(seed=0).fit(ds.train, ds.truth if solver.requires_truth else None)
        t = time.perf_counter()
        pred = solver.predict(ds.test.x, y)
        return pred, time.perf_counter() - t

    ref, ref_s = run("sample_bayes")
    err_ref = ((ref - ds.test.y)[:, 1:] ** 2).mean(axis=1)
    print(f"d = 10, sigma = 1, snr = {args.snr:g}, n = 40, {args.n_test} prompts")
    print("solver | excess MSE at k = 40 (SE) | mean NMSE ratio to sample_bayes, k = 1..40 (paired SE) | predict s")
    for name in ["sample_bayes", *args.variants]:
        pred, secs = (ref, ref_s) if name == "sample_bayes" else run(name)
        excess, se = excess_curve(pred, ds.test.x, ds.test.coef)
        err = ((pred - ds.test.y)[:, 1:] ** 2).mean(axis=1)
        diff = (err - err_ref) / err_ref.mean()
        print(f"{name} | {excess[-1]:.2f} ({se[-1]:.2f}) | {err.mean() / err_ref.mean():.4f} "
              f"({diff.std(ddof=1) / np.sqrt(len(diff)):.4f}) | {secs:.1f}")


if __name__ == "__main__":
    main()
