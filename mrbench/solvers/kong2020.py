"""Subspace, cluster, classify, refine: Kong, Somani, Song, Kakade, Oh 2020, "Meta-learning for
mixed linear regression" (arXiv 2002.08936), implemented from the paper's steps (not from its demo
code). Not the "SA" of Pathak et al. (Jain et al. 2023, Algorithm 1), whose text we do not have.

Our choices: the subspace uses every training prompt; clustering uses the first `n_cluster`
prompts (average linkage is quadratic in their number); classification and refinement use all.
"""
import numpy as np

from mrbench.lazy import torch
from mrbench.solvers.estimation import LOG_2PI, Stats, spectral_init
from mrbench.solvers.plug_in import PlugInEstimator


class Kong2020(PlugInEstimator):
    name = "kong2020"

    def __init__(self, n_cluster=1000, refine_steps=1, sigma="known", predictor="posterior_mean",
                 weights="uniform"):
        self.n_cluster, self.refine_steps, self.sigma = n_cluster, refine_steps, sigma
        self.predictor, self.weights = predictor, weights

    def fit(self, train, truth=None):
        data, m = train.fixed(), train.m
        W, labels = spectral_init(data.x, data.y, m, self.n_cluster)  # steps 1-3
        stats = Stats.from_prompts(data.x, data.y, self.device)
        W = torch.as_tensor(W, device=stats.XX.device)
        gamma = torch.zeros((len(labels), m), dtype=torch.float64, device=W.device)
        keep = np.flatnonzero(labels >= 0)
        gamma[keep, labels[keep]] = 1.0  # outliers of the clustering start unassigned
        for _ in range(self.refine_steps):
            count = gamma.sum(0).clamp_min(1.0)
            # residual variance and weight of each cluster, then step 4: classify every prompt
            s2 = ((stats.residuals(W)[: len(gamma)] * gamma).sum(0) / (count * stats.L)).clamp_min(1e-12)
            ll = torch.log(count / count.sum()) - 0.5 * stats.L * (LOG_2PI + torch.log(s2)) - stats.residuals(W) / (2 * s2)
            gamma = torch.nn.functional.one_hot(ll.argmax(1), m).double()
            W = stats.weighted_ls(gamma, 1e-6)  # step 5: least squares on each class's pairs
        count = gamma.sum(0).clamp_min(1.0)
        s2 = (stats.residuals(W) * gamma).sum(0) / (count * stats.L)
        self.pool_, self.pi_ = W.cpu().numpy(), (count / count.sum()).cpu().numpy()
        sigma_hat = float(np.sqrt(s2.cpu().numpy() @ self.pi_))
        self.sigma_ = train.sigma if self.sigma == "known" else sigma_hat
        self.fit_info_ = {"iterations": self.refine_steps, "sigma_hat": sigma_hat}
        return self
