"""The Bayes predictor of the sample-level mixture under the Gaussian law: E[y_query | prefix].

Law (`prior = "gaussian"`): beta_1..beta_K i.i.d. N(0, tau^2 I_d) per prompt, tau^2 = snr^2 sigma^2
/ d (so E||beta||^2 = snr^2 sigma^2); each pair's label z_i ~ pi; y_i = x_i^T beta_{z_i} + N(0,
sigma^2). `symmetric` (K = 2): beta_2 = -beta_1, one Gaussian read with the sign of the label.

Given the labels, each beta is a Bayesian linear regression (conjugate): the posterior of the
labels is all that is uncertain, and the prediction x^T sum_k pi_k E[beta_k | prefix] needs the
sum over K^k labelings. It is computed by sequential importance sampling over the labels with
the betas integrated out (a Rao-Blackwellized particle filter, Liu and Chen's sequential
imputation): each particle holds a labeling of the prefix and the Gaussian posterior of every
beta given it; pair i's label is drawn from its exact conditional, the particle's weight is
multiplied by the pair's predictive density, and particles are resampled when the effective
sample size falls below half. One pass predicts every prefix length.

The Monte Carlo error is measured, not assumed: `replicates` independent filters; the
reference is their mean and the spread gives each prediction's standard error.
`enumerate_posterior_mean` is the brute force (every labeling, batch formulas) it is tested
against.
"""
from __future__ import annotations

import itertools

import numpy as np

PARTICLES, REPLICATES, CHUNK = 256, 4, 64


def layout(K: int, symmetric: bool) -> tuple[np.ndarray, np.ndarray]:
    """Label k reads Gaussian component c[k] with sign s[k]."""
    if symmetric:
        return np.zeros(2, dtype=int), np.array([1.0, -1.0])
    return np.arange(K), np.ones(K)


def coefficient_weights(pi: np.ndarray, comp: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """w with sum_k pi_k s_k beta_{c_k} = sum_j w_j beta_j: the prediction's coefficient."""
    out = np.zeros(comp.max() + 1)
    np.add.at(out, comp, pi * sign)
    return out


def posterior_mean(x: np.ndarray, y: np.ndarray, pi, sigma: float, tau2: float, symmetric: bool = False,
                   particles: int = PARTICLES, replicates: int = REPLICATES, seed: int = 0,
                   chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, its Monte Carlo standard error), both (n, P): entry i predicts y_i from
    pairs 0..i-1 and x_i; y's last column is never read."""
    x, y, pi = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(pi, np.float64)
    runs = np.zeros((replicates, *y.shape))
    # each prompt's random numbers come from the seed, the replicate and the prompt's own first
    # x, so that its prediction does not depend on which prompts share the call
    keys = np.frombuffer(np.ascontiguousarray(x[:, 0], dtype=np.float32).tobytes(), dtype=np.uint32)
    keys = keys.reshape(len(x), -1).astype(np.uint64)
    for r in range(replicates):
        for lo in range(0, len(x), chunk):
            draws = [np.random.default_rng([seed, r, *k]).random((y.shape[1], particles + 1)) for k in keys[lo:lo + chunk]]
            runs[r, lo:lo + chunk] = _filter(x[lo:lo + chunk], y[lo:lo + chunk], pi, sigma, tau2, symmetric,
                                             particles, np.stack(draws))
    se = runs.std(axis=0, ddof=1) / np.sqrt(replicates) if replicates > 1 else np.full(y.shape, np.nan)
    return runs.mean(axis=0), se


def _filter(x, y, pi, sigma, tau2, symmetric, N, uniforms) -> np.ndarray:
    """One filter of N particles over a chunk of prompts, in torch float64. Memory traffic
    over the covariances bounds it: each step reads them once (S x for every component) and
    updates one component per particle in place. `uniforms` (n, P, N + 1): per prompt and
    pair, one for each particle's label and one for the resampling offset."""
    import torch

    n, P, d = x.shape
    comp, sign = layout(len(pi), symmetric)
    J, K = comp.max() + 1, len(pi)
    f64 = torch.float64
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    logpi, sgn, comp_t = torch.from_numpy(np.log(pi)), torch.from_numpy(sign), torch.from_numpy(comp)
    mean = torch.zeros((n, N, J, d), dtype=f64)
    cov = (tau2 * torch.eye(d, dtype=f64)).expand(n, N, J, d, d).contiguous()
    flat_mean, flat_cov = mean.view(-1, d), cov.view(-1, d, d)
    logw = torch.zeros((n, N), dtype=f64)
    coef_w = torch.from_numpy(coefficient_weights(pi, comp, sign))
    U = torch.from_numpy(uniforms)
    base = torch.arange(n * N) * J
    out = torch.zeros((n, P), dtype=f64)
    for i in range(P):
        w = torch.softmax(logw, dim=1)
        out[:, i] = torch.einsum("np,npjd,j,nd->n", w, mean, coef_w, X[:, i])
        if i == P - 1:
            break
        xi, yi = X[:, i], Y[:, i]
        Sx = (cov @ xi[:, None, None, :, None])[..., 0]  # (n, N, J, d)
        q = (Sx * xi[:, None, None]).sum(-1)  # x^T S x
        mu = (mean * xi[:, None, None]).sum(-1)
        var = sigma**2 + q[..., comp_t]  # (n, N, K)
        resid = yi[:, None, None] - sgn * mu[..., comp_t]
        loga = logpi - 0.5 * torch.log(2 * np.pi * var) - 0.5 * resid**2 / var
        logw += torch.logsumexp(loga, dim=2)
        # the label from its exact conditional, then that component's conjugate update
        cdf = torch.cumsum(torch.softmax(loga, dim=2), dim=2)
        z = (U[:, i, :N, None] > cdf).sum(dim=2).clamp_(max=K - 1).view(-1)
        rows = torch.arange(n * N)
        v, e = var.view(-1, K)[rows, z], resid.view(-1, K)[rows, z] * sgn[z]
        at = base + comp_t[z]
        g = Sx.view(-1, d)[at]
        flat_mean[at] += g * (e / v)[:, None]
        sel = flat_cov[at]
        sel.sub_(g[:, :, None] * (g / v[:, None])[:, None, :])
        flat_cov[at] = sel
        # resample (systematic) the prompts whose effective sample size fell below half
        w = torch.softmax(logw, dim=1)
        low = torch.nonzero(1.0 / (w**2).sum(dim=1) < N / 2)[:, 0]
        if len(low):
            u = (U[low, i, N:] + torch.arange(N)) / N
            pick = torch.searchsorted(torch.cumsum(w[low], dim=1), u).clamp_(max=N - 1)
            mean[low] = mean[low[:, None], pick]
            cov[low] = cov[low[:, None], pick]
            logw[low] = 0.0
    return out.numpy()


def enumerate_posterior_mean(x: np.ndarray, y: np.ndarray, pi, sigma: float, tau2: float,
                             symmetric: bool = False) -> np.ndarray:
    """The exact posterior mean by brute force, for tiny prompts: every labeling of each prefix,
    its marginal likelihood y_j ~ N(0, sigma^2 I + tau^2 X_j X_j^T) per component and the betas'
    posterior means tau^2 X_j^T (sigma^2 I + tau^2 X_j X_j^T)^{-1} y_j. (n, P), O(K^P)."""
    x, y, pi = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(pi, np.float64)
    comp, sign = layout(len(pi), symmetric)
    J = comp.max() + 1
    coef_w = coefficient_weights(pi, comp, sign)
    n, P, d = x.shape
    out = np.zeros((n, P))
    for a in range(n):
        for i in range(P):
            logs, preds = [], []
            for labels in itertools.product(range(len(pi)), repeat=i):
                labels = np.array(labels, dtype=int)
                logp = float(np.log(pi[labels]).sum()) if i else 0.0
                beta = np.zeros((J, d))
                for j in range(J):
                    rows = np.flatnonzero(comp[labels] == j) if i else np.array([], dtype=int)
                    if len(rows) == 0:
                        continue
                    X = x[a, rows] * sign[labels[rows], None]
                    C = sigma**2 * np.eye(len(rows)) + tau2 * X @ X.T
                    yj = y[a, rows]
                    sol = np.linalg.solve(C, yj)
                    _, logdet = np.linalg.slogdet(C)
                    logp += -0.5 * (yj @ sol + logdet + len(rows) * np.log(2 * np.pi))
                    beta[j] = tau2 * X.T @ sol
                logs.append(logp)
                preds.append(x[a, i] @ (coef_w @ beta))
            logs = np.array(logs)
            w = np.exp(logs - logs.max())
            out[a, i] = w @ np.array(preds) / w.sum()
    return out
