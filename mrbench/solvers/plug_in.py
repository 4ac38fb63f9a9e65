"""The plug-in predictor shared by solvers that estimate a pool: the posterior mean or argmin
of Pathak et al. (displays 4 and 7) over the estimated components."""
import numpy as np

from mrbench.predictors import argmin, posterior_mean
from mrbench.solver import Solver, one_of

PREDICTORS = ("posterior_mean", "argmin")
WEIGHTS = ("uniform", "estimated")


def plug_in_predict(x, y, pool, sigma, pi, predictor="posterior_mean", weights="uniform"):
    one_of("predictor", predictor, PREDICTORS)
    one_of("weights", weights, WEIGHTS)
    if predictor == "argmin":
        return argmin(x, y, pool)
    # The paper's plug-in uses the uniform distribution over the estimated components.
    prior = np.full(len(pool), 1.0 / len(pool)) if weights == "uniform" else pi
    return posterior_mean(x, y, pool, sigma, prior)


class PlugInEstimator(Solver):
    """Base of the pool estimators: fit sets pool_, pi_, sigma_ and fit_info_; prediction is
    the plug-in predictor chosen by the `predictor` and `weights` parameters."""

    trained = True
    group = "plug-in"
    families = ("prompt",)

    def check_params(self):
        super().check_params()
        one_of("predictor", self.predictor, PREDICTORS)
        one_of("weights", self.weights, WEIGHTS)
        if hasattr(self, "sigma"):
            one_of("sigma", self.sigma, ("known", "estimated"))

    def predict(self, x, y):
        return plug_in_predict(x, y, self.pool_, self.sigma_, self.pi_, self.predictor, self.weights)

    def info(self):
        return {"pool": self.pool_, "pi": self.pi_, **self.fit_info_}
