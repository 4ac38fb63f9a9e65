"""Predictors over a known (or estimated) pool of components: posterior mean and argmin.

Shared by the oracles (true pool) and the plug-in solvers (estimated pool). All in float64
and in the log domain: residual sums reach 1e3 / sigma^2, far past exp's range.
"""
from __future__ import annotations

import numpy as np

from .data import hide_query


def component_predictions(x: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """<w_j, x_i> for every prompt, position and component: (n, K, m)."""
    return np.einsum("nkd,md->nkm", x.astype(np.float64), pool.astype(np.float64))


def prefix_residuals(preds: np.ndarray, y: np.ndarray) -> np.ndarray:
    """R[n, i, j] = sum_{l < i} (<w_j, x_l> - y_l)^2; never reads y's last column (the query)."""
    n, K, m = preds.shape
    r2 = (preds[:, : K - 1] - y[:, : K - 1, None].astype(np.float64)) ** 2
    R = np.zeros((n, K, m))
    np.cumsum(r2, axis=1, out=R[:, 1:])
    return R


def posterior_weights(R: np.ndarray, sigma: float, pi: np.ndarray | None = None) -> np.ndarray:
    """p_j ∝ pi_j exp(-R_j / 2 sigma^2), by log-sum-exp. sigma = 0: the argmin, ties (k = 0 above
    all) weighted by pi, which is the limit of the posterior as sigma -> 0."""
    if sigma**2 == 0:  # sigma = 0, or so small that sigma^2 underflows
        if pi is not None:  # components of prior weight 0 are never the answer
            R = np.where(np.asarray(pi) > 0, R, np.inf)
        best = R.min(axis=-1, keepdims=True)
        hit = (R <= best + 1e-12 * np.maximum(1.0, best)).astype(np.float64)  # ties within 1e-12
        if pi is not None:
            hit *= np.asarray(pi, dtype=np.float64)
        return hit / hit.sum(axis=-1, keepdims=True)
    logp = -R / (2.0 * sigma**2)
    if pi is not None:
        with np.errstate(divide="ignore"):
            logp = logp + np.log(np.asarray(pi, dtype=np.float64))
    logp -= logp.max(axis=-1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(axis=-1, keepdims=True)


def posterior_mean(x, y, pool, sigma: float, pi=None) -> np.ndarray:
    """Bayes-optimal prediction under a prior on `pool` (display 4 of Pathak et al.): (n, K)."""
    preds = component_predictions(x, pool)
    w = posterior_weights(prefix_residuals(preds, y), sigma, pi)
    return np.einsum("nkm,nkm->nk", w, preds)


def oracle_predictions(ds) -> np.ndarray:
    """The family's Bayes-optimal predictions on a dataset's test prompts: the posterior mean
    over the true pool (prompt family), x^T sum_k pi_k beta_k (sample family)."""
    if ds.spec.family == "sample":
        return np.einsum("nkd,nd->nk", ds.test.x.astype(np.float64), ds.test.coef)
    return posterior_mean(ds.test.x, hide_query(ds.test.y), ds.truth.pool, ds.truth.sigma, ds.truth.pi)


def argmin(x, y, pool) -> np.ndarray:
    """Prediction of the component with the least prefix residual sum (display 7), ties averaged."""
    return posterior_mean(x, y, pool, 0.0)
