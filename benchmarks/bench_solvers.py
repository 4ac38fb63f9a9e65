"""Fit and predict time, peak memory and accuracy of every registered CPU solver.

Timing runs over the size grid; peak memory and accuracy over a smaller one (asv starts a fresh
process for every benchmark and parameter set, so the grid is the suite's cost)."""
from mrbench.prompts import hide_query

from .common import FAMILIES, FAMILY, PER_PROMPT, TRAINED, dataset, fitted, nmse_ratio


class _PerPromptSetup:
    param_names = ["solver", "m", "k"]
    timeout = 300

    def setup_cache(self):
        return {(f, m, k): dataset(m, k, n_train=1, family=f) for f in FAMILIES
                for m in (5, 20) for k in (20, 60)}

    def setup(self, data, name, m, k):
        self.ds = data[(FAMILY[name], m, k)]
        self.solver = fitted(name, self.ds)
        self.y = hide_query(self.ds.test.y)
        self.solver.predict(self.ds.test.x[:2], self.y[:2])  # lazy imports (torch: ~1 s) out of the timing


class PerPrompt(_PerPromptSetup):
    """Solvers with nothing to train (oracles, prompt-only baselines): predict 500 prompts."""

    params = (PER_PROMPT, [5, 20], [20, 60])

    def time_predict(self, data, name, m, k):
        self.solver.predict(self.ds.test.x, self.y)


class PerPromptMemoryAccuracy(_PerPromptSetup):
    params = (PER_PROMPT, [20], [60])  # the larger m: each value is a process of its own

    def peakmem_predict(self, data, name, m, k):
        self.solver.predict(self.ds.test.x, self.y)

    def track_nmse_ratio(self, data, name, m, k):
        return nmse_ratio(self.solver.predict(self.ds.test.x, self.y), self.ds)

    track_nmse_ratio.unit = "ratio to the oracle"


class _TrainedSetup:
    param_names = ["solver", "m", "n_train"]
    timeout = 600

    def setup_cache(self):
        out = {}
        for f in FAMILIES:
            for m in (5, 20):
                for n in (2000, 4000, 8000):
                    ds = dataset(m, n_train=n, family=f)
                    ds.train.fixed()  # generated here, once, and cached with the dataset
                    out[(f, m, n)] = ds
        return out

    def setup(self, data, name, m, n_train):
        import torch  # noqa: F401  (the solvers import it lazily: ~1 s that is not the fit's)

        self.ds = data[(FAMILY[name], m, n_train)]


class TrainedFit(_TrainedSetup):
    """Solvers that learn from n_train training prompts: fit time."""

    params = (TRAINED, [5, 20], [2000, 8000])

    def time_fit(self, data, name, m, n_train):
        fitted(name, self.ds)


class TrainedFitMemoryAccuracy(_TrainedSetup):
    params = (TRAINED, [5, 20], [4000])  # each is a fit in a process of its own: the smaller n

    def peakmem_fit(self, data, name, m, n_train):
        fitted(name, self.ds)

    def track_nmse_ratio(self, data, name, m, n_train):
        return nmse_ratio(fitted(name, self.ds).predict(self.ds.test.x, hide_query(self.ds.test.y)), self.ds)

    track_nmse_ratio.unit = "ratio to the oracle"


class TrainedPredict:
    """The same solvers, fitted: predict time on 500 prompts."""

    params = (TRAINED, [5, 20])
    param_names = ["solver", "m"]

    def setup_cache(self):
        out = {}
        for f in FAMILIES:
            for m in (5, 20):
                ds = dataset(m, n_train=4000, family=f)
                ds.train.fixed()
                out[(f, m)] = ds
        return out

    def setup(self, data, name, m):
        self.ds = data[(FAMILY[name], m)]
        self.y = hide_query(self.ds.test.y)
        self.solver = fitted(name, self.ds)

    def time_predict(self, data, name, m):
        self.solver.predict(self.ds.test.x, self.y)
