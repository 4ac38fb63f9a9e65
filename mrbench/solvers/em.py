"""Batch EM over the training prompts (Pathak et al. 2023, Appendix C.2), plug-in prediction."""
import numpy as np

from mrbench.solver import at_least, one_of
from mrbench.solvers.estimation import Stats, batch_em, spectral_init, sphere
from mrbench.solvers.plug_in import PlugInEstimator


class EM(PlugInEstimator):
    """Latent component per prompt. Defaults are the paper's: random init (pi uniform on the
    simplex, w uniform on the sphere of radius sqrt(d)), tol 1e-3, max_iter 20000, sigma known.
    `n_init` restarts keep the best objective; `init="spectral"` starts from the moment subspace."""

    name = "em"

    def __init__(self, n_init=1, init="random", sigma="known", tol=1e-3, max_iter=20000, ridge=1e-6,
                 predictor="posterior_mean", weights="uniform"):
        self.n_init, self.init, self.sigma = n_init, init, sigma
        self.tol, self.max_iter, self.ridge = tol, max_iter, ridge
        self.predictor, self.weights = predictor, weights

    def check_params(self):
        super().check_params()
        one_of("init", self.init, ("random", "spectral"))
        at_least("n_init", self.n_init, 1)
        at_least("max_iter", self.max_iter, 1)
        at_least("tol", self.tol, 0)
        at_least("ridge", self.ridge, 0)

    def fit(self, train, truth=None):
        data, rng = train.fixed(), self.rng
        stats = Stats.from_prompts(data.x, data.y, self.device)
        runs = []
        W_spectral = spectral_init(data.x, data.y, train.m)[0] if self.init == "spectral" else None
        for _ in range(self.n_init):
            W0 = W_spectral if W_spectral is not None else sphere(train.m, train.d, rng)
            pi0 = rng.dirichlet(np.ones(train.m))  # uniform on the simplex
            runs.append(batch_em(stats, W0, pi0, train.sigma, self.sigma == "estimated", self.tol,
                                 self.max_iter, self.ridge))
        best = max(runs, key=lambda r: r.objective)
        self.pool_, self.pi_ = best.pool, best.pi
        self.sigma_ = best.sigma if self.sigma == "estimated" else train.sigma
        self.fit_info_ = {"iterations": best.iterations, "converged": best.converged, "objective": best.objective,
                          "sigma_hat": best.sigma, "total_iterations": sum(r.iterations for r in runs),
                          "empty_components": best.empty}
        return self
