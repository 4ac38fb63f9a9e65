"""Data-driven baselines on the prompt alone: min-norm least squares and ridge."""
import numpy as np

from mrbench import Solver


def prefix_grams(x, y, lo, hi):
    """Gram X^T X and X^T y of every prefix 0..i-1 for prompts lo:hi: (b, K, d, d), (b, K, d)."""
    xb, yb = x[lo:hi].astype(np.float64), y[lo:hi].astype(np.float64)
    b, K, d = xb.shape
    G, v = np.zeros((b, K, d, d)), np.zeros((b, K, d))
    np.cumsum(xb[:, :-1, :, None] * xb[:, :-1, None, :], axis=1, out=G[:, 1:])
    np.cumsum(xb[:, :-1] * yb[:, :-1, None], axis=1, out=v[:, 1:])
    return G, v


class OLS(Solver):
    """Min-norm least squares on the prefix (pseudo-inverse). Spikes at k = d: that is real."""

    name = "ols"
    family = "data-driven"

    def predict(self, x, y):
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        out = np.zeros(y.shape)
        for i in range(1, x.shape[1]):  # prefix of i pairs predicts position i
            w = np.linalg.pinv(x64[:, :i]) @ y64[:, :i, None]
            out[:, i] = np.einsum("nd,nd->n", x64[:, i], w[..., 0])
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
        for lo in range(0, n, 256):  # chunks keep the (b, K, d, d) Grams small
            G, v = prefix_grams(x, y, lo, lo + 256)
            w = np.linalg.solve(G + self.lam * np.eye(d), v[..., None])[..., 0]
            out[lo:lo + 256] = np.einsum("nkd,nkd->nk", x[lo:lo + 256].astype(np.float64), w)
        return out
