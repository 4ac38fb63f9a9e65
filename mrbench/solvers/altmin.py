"""Alternating minimization (Yi, Caramanis, Sanghavi 2014): hard assignment of whole prompts,
per-component least squares, from the spectral initialization."""
from mrbench.solvers.estimation import Stats, batch_em, spectral_init
from mrbench.solvers.plug_in import PlugInEstimator


class AltMin(PlugInEstimator):
    name = "altmin"

    def __init__(self, tol=1e-3, max_iter=1000, predictor="posterior_mean", weights="uniform"):
        self.tol, self.max_iter = tol, max_iter
        self.predictor, self.weights = predictor, weights

    def fit(self, train, truth=None):
        data = train.fixed()
        W0, _ = spectral_init(data.x, data.y, train.m)
        stats = Stats.from_prompts(data.x, data.y, self.device)
        # Hard assignments are the sigma -> 0 limit of EM's E-step: argmin of the residual.
        r = batch_em(stats, W0, [1.0 / train.m] * train.m, 1.0, estimate_sigma=True,
                     tol=self.tol, max_iter=self.max_iter, hard=True)
        self.pool_, self.pi_, self.sigma_ = r.pool, r.pi, train.sigma
        self.fit_info_ = {"iterations": r.iterations, "converged": r.converged, "sigma_hat": r.sigma,
                          "empty_components": r.empty}
        return self
