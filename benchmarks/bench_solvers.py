"""Fit and predict time, peak memory and accuracy of every registered CPU solver."""
from .common import FAMILY, PER_PROMPT, TRAINED, dataset, fitted, hidden, nmse_ratio


class PerPrompt:
    """Solvers with nothing to train (oracles, prompt-only baselines): predict on 500 prompts."""

    params = (PER_PROMPT, [5, 20], [20, 60])
    param_names = ["solver", "m", "k"]
    timeout = 300

    def setup_cache(self):
        return {(f, m, k): dataset(m, k, n_train=1, family=f) for f in ("prompt", "sample")
                for m in self.params[1] for k in self.params[2]}

    def setup(self, data, name, m, k):
        self.ds = data[(FAMILY[name], m, k)]
        self.solver = fitted(name, self.ds)
        self.y = hidden(self.ds.test.y)

    def time_predict(self, data, name, m, k):
        self.solver.predict(self.ds.test.x, self.y)

    def peakmem_predict(self, data, name, m, k):
        self.solver.predict(self.ds.test.x, self.y)

    def track_nmse_ratio(self, data, name, m, k):
        return nmse_ratio(self.solver.predict(self.ds.test.x, self.y), self.ds)

    track_nmse_ratio.unit = "ratio to posterior_mean"


class TrainedFit:
    """Solvers that learn a pool from n_train training prompts: fit time, memory, accuracy."""

    params = (TRAINED, [5, 20], [4000, 16000])
    param_names = ["solver", "m", "n_train"]
    timeout = 600

    def setup_cache(self):
        out = {}
        for f in ("prompt", "sample"):
            for m in self.params[1]:
                for n in self.params[2]:
                    ds = dataset(m, 60 if f == "prompt" else 20, n_train=n, family=f)
                    ds.train.fixed()  # generated here, once, and cached with the dataset
                    out[(f, m, n)] = ds
        return out

    def setup(self, data, name, m, n_train):
        self.ds = data[(FAMILY[name], m, n_train)]

    def time_fit(self, data, name, m, n_train):
        fitted(name, self.ds)

    def peakmem_fit(self, data, name, m, n_train):
        fitted(name, self.ds)

    def track_nmse_ratio(self, data, name, m, n_train):
        return nmse_ratio(fitted(name, self.ds).predict(self.ds.test.x, hidden(self.ds.test.y)), self.ds)

    track_nmse_ratio.unit = "ratio to posterior_mean"


class TrainedPredict:
    """The same solvers, fitted: predict time on 500 prompts."""

    params = (TRAINED, [5, 20])
    param_names = ["solver", "m"]

    def setup_cache(self):
        out = {}
        for f in ("prompt", "sample"):
            for m in self.params[1]:
                ds = dataset(m, 60 if f == "prompt" else 20, n_train=4000, family=f)
                ds.train.fixed()
                out[(f, m)] = ds
        return out

    def setup(self, data, name, m):
        self.ds = data[(FAMILY[name], m)]
        self.y = hidden(self.ds.test.y)
        self.solver = fitted(name, self.ds)

    def time_predict(self, data, name, m):
        self.solver.predict(self.ds.test.x, self.y)
