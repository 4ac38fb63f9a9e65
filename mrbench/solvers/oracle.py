"""Oracles: they know the truth of the spec's law (Pathak et al., displays 4 and 7, for the
prompt family) and predict with the family's own Bayes predictor. Nothing in-distribution
beats it."""
import dataclasses

from mrbench.families import family_of
from mrbench.predictors import argmin
from mrbench.solver import Solver, one_of


class FamilyBayes(Solver):
    """The family's Bayes-optimal predictor (`Family.bayes`), given what oracles see."""

    requires_truth = True
    group = "oracle"

    def fit(self, train, truth=None):
        self.spec_, self.truth_ = train.spec, truth
        return self

    def predict(self, x, y):
        return family_of(self.spec_).bayes(self.spec_, x, y, self.truth_, seed=self.seed)


class PosteriorMean(FamilyBayes):
    """Bayes-optimal posterior mean over the true pool, prior pi, noise sigma. pool = "train":
    the training pool (App. D's posterior mean: under a weight shift it is a comparator, no
    longer Bayes-optimal for the shifted prompts); "test": the pool the test prompts come from
    (the Bayes predictor of the shifted distribution, whose risk normalizes a shift's effect)."""

    name = "posterior_mean"
    families = ("prompt",)

    def __init__(self, pool="train"):
        self.pool = pool

    def check_params(self):
        super().check_params()
        one_of("pool", self.pool, ("train", "test"))

    def fit(self, train, truth=None):
        if self.pool == "test":
            truth = dataclasses.replace(truth, pool=truth.extra.get("test_pool", truth.pool))
        return super().fit(train, truth)


class SubgroupOracle(FamilyBayes):
    """Knows the pool, the input covariances, pi and sigma (mrbench.families.subgroup)."""

    name = "subgroup_oracle"
    families = ("subgroup",)


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
