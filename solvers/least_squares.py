"""Data-driven baselines on the prompt alone: min-norm least squares and ridge."""
import numpy as np

from mrbench import Solver
from mrbench.lazy import torch


def prefix_grams(x, y, lo, hi):
    """Gram X^T X and X^T y of every prefix 0..i-1 for prompts lo:hi: (b, K, d, d), (b, K, d)."""
    xb, yb = x[lo:hi].astype(np.float64), y[lo:hi].astype(np.float64)
    b, K, d = xb.shape
    G, v = np.zeros((b, K, d, d)), np.zeros((b, K, d))
    np.cumsum(xb[:, :-1, :, None] * xb[:, :-1, None, :], axis=1, out=G[:, 1:])
    np.cumsum(xb[:, :-1] * yb[:, :-1, None], axis=1, out=v[:, 1:])
    return G, v


def min_norm_lstsq(X, y):
    """Min-norm least-squares solutions of a batch, X (n, i, d), y (n, i) float64 tensors.

    Householder QR (of X when i >= d, of X^T when i < d) is backward stable and a quarter of
    the cost of an SVD per prompt; prompts whose R is numerically singular (relative pivot
    below 1e-10) are solved again with the pseudo-inverse. Agrees with it to ~1e-12."""
    n, i, d = X.shape
    if i >= d:
        Q, R = torch.linalg.qr(X)
        w = torch.linalg.solve_triangular(R, Q.mT @ y[..., None], upper=True)[..., 0]
    else:
        Q, R = torch.linalg.qr(X.mT)
        w = (Q @ torch.linalg.solve_triangular(R.mT, y[..., None], upper=False))[..., 0]
    pivots = R.diagonal(dim1=-2, dim2=-1).abs()
    bad = pivots.min(-1).values <= 1e-10 * pivots.max(-1).values
    if bad.any():
        w[bad] = (torch.linalg.pinv(X[bad]) @ y[bad][..., None])[..., 0]
    return w


class OLS(Solver):
    """Min-norm least squares on the prefix. Spikes at k = d: that is real."""

    name = "ols"
    family = "data-driven"

    def predict(self, x, y):
        x64, y64 = torch.from_numpy(x.astype(np.float64)), torch.from_numpy(y.astype(np.float64))
        out = np.zeros(y.shape)
        for i in range(1, x.shape[1]):  # prefix of i pairs predicts position i
            w = min_norm_lstsq(x64[:, :i], y64[:, :i])
            out[:, i] = torch.einsum("nd,nd->n", x64[:, i], w).numpy()
        return out


class Ridge(Solver):
    """Ridge on the prefix: w = (X^T X + lam I)^-1 X^T y. lam = sigma^2 is the Bayes choice for
    a N(0, I) prior on w; the default 1.0 matches sigma = 1."""

    name = "ridge"
    family = "data-driven"

    def __init__(self, lam=1.0):
        self.lam = lam

    def predict(self, x, y):
        n, K, d = x.shape
        out = np.zeros((n, K))
        for lo in range(0, n, 32):  # chunks keep the (b, K, d, d) Grams in cache (40% faster than 256)
            G, v = prefix_grams(x, y, lo, lo + 32)
            w = np.linalg.solve(G + self.lam * np.eye(d), v[..., None])[..., 0]
            out[lo:lo + 32] = np.einsum("nkd,nkd->nk", x[lo:lo + 32].astype(np.float64), w)
        return out
