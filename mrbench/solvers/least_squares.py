"""Prompt-only baselines: min-norm least squares and ridge on each prompt's own pairs."""
import numpy as np

from mrbench.lazy import torch
from mrbench.solver import Solver


def prefix_solutions(x, y, lam=0.0, start=1):
    """x_i . w_i for positions i >= start, w_i the least-squares (lam = 0) or ridge solution on
    the pairs before i: (n, P) predictions and an (n, P) mask of numerically singular prefixes.

    Recursive least squares in QR form: the triangular factor [R | Q^T y] of [X; sqrt(lam) I] is
    updated by d Givens rotations per arriving pair, so each prefix costs one back substitution
    instead of its own QR. Backward stable like Householder QR, O(d^2) work per pair, and
    vectorized over prompts (batch on the last axis keeps every row operation contiguous).
    """
    n, P, d = x.shape
    A = np.zeros((d, d + 1, n))  # rows of [R | Q^T y], upper trapezoidal
    A[np.arange(d), np.arange(d)] = np.sqrt(lam)
    xt = np.ascontiguousarray(np.moveaxis(x, 0, -1), dtype=np.float64)  # (P, d, n)
    yt = np.ascontiguousarray(y.T, dtype=np.float64)
    out, singular = np.zeros((n, P)), np.zeros((n, P), dtype=bool)
    c, s, rho, w = np.empty(n), np.empty(n), np.empty(n), np.empty((d, n))
    for i in range(1, P):
        v = np.concatenate([xt[i - 1], yt[i - 1][None]])  # the pair that arrived: rotate it in
        for j in range(d):
            np.hypot(A[j, j], v[j], out=rho)
            live = rho > 0
            np.divide(A[j, j], rho, out=c, where=live)
            np.divide(v[j], rho, out=s, where=live)
            c[~live], s[~live] = 1.0, 0.0
            row = A[j, j:].copy()
            A[j, j:] = c * row + s * v[j:]
            v[j:] = c * v[j:] - s * row
        if i < start:
            continue
        pivots = np.abs(A[np.arange(d), np.arange(d)])
        singular[:, i] = pivots.min(0) <= 1e-10 * pivots.max(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            for j in range(d - 1, -1, -1):  # back substitution R w = Q^T y
                w[j] = (A[j, d] - np.einsum("ln,ln->n", A[j, j + 1:d], w[j + 1:])) / A[j, j]
        out[:, i] = np.einsum("dn,dn->n", xt[i], w)
    return out, singular


def min_norm_lstsq(X, y):
    """Min-norm least-squares solutions of a batch, X (n, i, d), y (n, i) float64 tensors.

    Householder QR (of X when i >= d, of X^T when i < d); prompts whose R is numerically
    singular (relative pivot below 1e-10) are solved again with the pseudo-inverse."""
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
    group = "prompt-only"

    def predict(self, x, y):
        n, P, d = x.shape
        # From d pairs on, the recursively updated QR; rank-deficient prefixes (and the
        # underdetermined ones, i < d, whose min-norm solution needs the QR of X^T) go to
        # `min_norm_lstsq`, which agrees with the pseudo-inverse to ~1e-12.
        out, singular = prefix_solutions(x, y, start=d)
        singular[:, 1:min(d, P)] = True
        x64, y64 = torch.from_numpy(x.astype(np.float64)), torch.from_numpy(y.astype(np.float64))
        for i in np.flatnonzero(singular.any(0)):
            rows = torch.from_numpy(np.flatnonzero(singular[:, i]))
            w = min_norm_lstsq(x64[rows, :i], y64[rows, :i])
            out[rows.numpy(), i] = torch.einsum("nd,nd->n", x64[rows, i], w).numpy()
        return out


class Ridge(Solver):
    """Ridge on the prefix: w = (X^T X + lam I)^-1 X^T y. lam = sigma^2 is the Bayes choice for
    a N(0, I) prior on w; the default 1.0 matches sigma = 1."""

    name = "ridge"
    group = "prompt-only"

    def __init__(self, lam=1.0):
        self.lam = lam

    def check_params(self):
        super().check_params()
        if self.lam <= 0:
            raise ValueError(f"ridge needs lam > 0 (got {self.lam}); lam = 0 is the `ols` solver")

    def predict(self, x, y):
        return prefix_solutions(x, y, lam=self.lam)[0]
