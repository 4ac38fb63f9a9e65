"""Oracles: they know the true pool (Pathak et al., displays 4 and 7). Nothing in-distribution
beats the posterior mean."""
from mrbench import Solver
from mrbench.predictors import argmin, posterior_mean


class PosteriorMean(Solver):
    """Bayes-optimal posterior mean over the true pool, prior pi, noise sigma."""

    name = "posterior_mean"
    requires_truth = True
    group = "oracle"
    families = ("prompt",)

    def fit(self, train, truth=None):
        self.pool_, self.pi_, self.sigma_ = truth.pool, truth.pi, truth.sigma
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
