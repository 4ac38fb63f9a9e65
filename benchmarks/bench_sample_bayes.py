"""The sample family's Bayes reference at the size jin2024 needs: 500 prompts of 80 pairs,
d = 10, K = 2 (the target: under a minute on 2 cores), beside in-context EM on the same prompts
(the baseline of the same run: the solver the reference is most often compared with)."""
import os

from mrbench.data import make_dataset
from mrbench.families import make_spec
from mrbench.prompts import hide_query
from mrbench.registry import instantiate, load_registry, parse_solver_arg


class _Setup:
    param_names = ["solver"]
    timeout = 600
    number, repeat = 1, 1  # one call is the measurement (tens of seconds)

    def setup(self, name):
        scale = float(os.environ.get("MRBENCH_BENCH_SCALE", "1"))
        spec = make_spec({"family": "sample", "prior": "gaussian", "d": 10, "K": 2, "k_max": 80, "n_train": 10,
                          "n_test": max(2, round(500 * scale)), "snr": 5.0, "sigma": 1.0})
        self.ds = make_dataset(spec)
        [self.solver] = instantiate(load_registry(), parse_solver_arg(name))
        self.solver.set_context(seed=0).fit(self.ds.train, self.ds.truth if self.solver.requires_truth else None)
        self.y = hide_query(self.ds.test.y)



class SampleBayes(_Setup):
    params = (["sample_bayes", "icl_em"],)

    def time_predict(self, name):
        self.solver.predict(self.ds.test.x, self.y)


class SampleBayesError(_Setup):
    """The reference's Monte Carlo variance as a share of its MSE, at the worst k, on the first
    100 of the prompts (a share: its size does not depend on the count)."""

    params = (["sample_bayes"],)

    def setup(self, name):
        super().setup(name)
        self.x, self.y = self.ds.test.x[:100], self.y[:100]

    def track_mc_variance_share(self, name):
        self.solver.predict(self.x, self.y)
        return self.solver.info()["mc_variance_share_max"]

    track_mc_variance_share.unit = "share"
