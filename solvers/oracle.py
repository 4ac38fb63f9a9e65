"""Oracles: they know the true pool (Pathak et al., displays 4 and 7). Nothing in-distribution
beats the posterior mean."""
from mrbench import Solver
from mrbench.solver import one_of
from mrbench.predictors import argmin, posterior_mean


class PosteriorMean(Solver):
    """Bayes-optimal posterior mean over the true pool, prior pi, noise sigma. pool = "train":
    the training pool (App. D's posterior mean: under a weight shift it is a comparator, no
    longer Bayes-optimal for the shifted prompts); "test": the pool the test prompts come from
    (the Bayes predictor of the shifted distribution, whose risk normalizes a shift's effect)."""

    name = "posterior_mean"
    requires_truth = True
    group = "oracle"
    families = ("prompt",)

    def __init__(self, pool="train"):
        self.pool = pool

    def check_params(self):
        super().check_params()
        one_of("pool", self.pool, ("train", "test"))

    def fit(self, train, truth=None):
        self.check_params()
        self.pool_ = truth.extra.get("test_pool", truth.pool) if self.pool == "test" else truth.pool
        self.pi_, self.sigma_ = truth.pi, truth.sigma
        return self

    def predict(self, x, y):
        return posterior_mean(x, y, self.pool_, self.sigma_, self.pi_)


class Argmin(Solver):
    """The true component with the least residual sum on the prefix (ties averaged)."""

    name = "argmin"
    requires_truth = True
    group = "oracle"
    families = ("prompt",)

    def fit(self, train, truth=None):
        self.pool_ = truth.pool
        return self

    def predict(self, x, y):
        return argmin(x, y, self.pool_)
