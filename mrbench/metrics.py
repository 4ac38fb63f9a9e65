"""Scores computed from predictions and truth. A solver never sees these."""
from __future__ import annotations

import numpy as np


def nmse_curve(pred: np.ndarray, y: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """NMSE (MSE / d) at every prefix length k = 0..P-1, and its standard error over prompts."""
    err = (np.asarray(pred, np.float64) - y) ** 2 / d
    n = err.shape[0]
    return err.mean(axis=0), err.std(axis=0, ddof=1) / np.sqrt(n)


def prompt_nmse(pred: np.ndarray, y: np.ndarray, d: int) -> np.ndarray:
    """Each prompt's NMSE averaged over k = 1..P-1: (n,). Stored per cell, so that two solvers
    can be compared on the same prompts (paired differences)."""
    return ((np.asarray(pred, np.float64)[:, 1:] - y[:, 1:]) ** 2).mean(axis=1) / d


def nmse_average(pred: np.ndarray, y: np.ndarray, d: int) -> tuple[float, float]:
    """Mean NMSE over k = 1..P-1 and its standard error, from per-prompt averages (the errors
    at different k of one prompt are correlated, so per-k SEs cannot simply be combined)."""
    per_prompt = prompt_nmse(pred, y, d)
    return float(per_prompt.mean()), float(per_prompt.std(ddof=1) / np.sqrt(len(per_prompt)))


def excess_curve(pred: np.ndarray, x: np.ndarray, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Excess MSE over the sample-level oracle x^T sum_k pi_k beta_k, per prefix length: the
    mean squared distance to the oracle's prediction (its expectation equals MSE - MSE_oracle,
    with less variance), and its standard error."""
    oracle = np.einsum("nkd,nd->nk", x.astype(np.float64), coef)
    dist = (np.asarray(pred, np.float64) - oracle) ** 2
    return dist.mean(axis=0), dist.std(axis=0, ddof=1) / np.sqrt(dist.shape[0])


def recovery_curve(est: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How well per-prompt component estimates recover the prompt's true components, per prefix
    length: est (n, K1, m, d) (NaN where nothing was estimated, as at k = 0), betas (n, m, d).
    For each prompt and k, the RMS over components of ||beta_hat_j - beta_p(j)|| under the best
    permutation p of the components (which covers the sign ambiguity of the symmetric case,
    beta_2 = -beta_1); its mean over prompts and standard error, per k."""
    from itertools import permutations

    est, betas = np.asarray(est, np.float64), np.asarray(betas, np.float64)
    m = betas.shape[1]
    best = np.full(est.shape[:2], np.inf)
    for perm in permutations(range(m)):
        err = ((est - betas[:, None, list(perm)]) ** 2).sum(-1).mean(-1)  # (n, K1)
        best = np.minimum(best, err)
    rms = np.sqrt(best)  # NaN where nothing was estimated: those k have no value
    defined = ~np.isnan(rms).any(axis=0)
    mean, se = np.full(rms.shape[1], np.nan), np.full(rms.shape[1], np.nan)
    mean[defined] = rms[:, defined].mean(axis=0)
    se[defined] = rms[:, defined].std(axis=0, ddof=1) / np.sqrt(len(rms))
    return mean, se


def pool_metrics(true_pool: np.ndarray, est_pool: np.ndarray, sigma: float,
                 true_pi: np.ndarray | None = None, est_pi: np.ndarray | None = None) -> dict[str, float]:
    """Recovery of an estimated pool.

    pool_mse: mean squared error per component after optimal (Hungarian) matching.
    pool_oracle_nmse: Pathak et al.'s oracle prediction error of the estimated pool,
        (sigma^2 + (1/m) sum_j min_w ||w_j - w||^2) / d.
    pi_error: total-variation distance between matched weights (when both are given).
    """
    m, d = true_pool.shape
    cost = ((true_pool[:, None, :] - est_pool[None, :, :]) ** 2).sum(-1)
    from scipy.optimize import (
        linear_sum_assignment,  # here: scipy.optimize takes 0.2 s to import
    )

    rows, cols = linear_sum_assignment(cost)
    out = {
        "pool_mse": float(cost[rows, cols].sum() / m),
        "pool_oracle_nmse": float((sigma**2 + cost.min(axis=1).mean()) / d),
        "pi_error": float("nan"),
    }
    if true_pi is not None and est_pi is not None and len(est_pi) == len(est_pool):
        matched = np.zeros(m)
        matched[rows] = np.asarray(est_pi)[cols]
        out["pi_error"] = float(0.5 * np.abs(matched - true_pi).sum())
    return out
