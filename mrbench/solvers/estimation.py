"""Pool estimation from training prompts: sufficient statistics, batch EM, spectral start.

Used by the plug-in solvers (em, altmin, kong2020). Everything runs in torch float64 on the
run's device; per-prompt sufficient statistics (X^T X, X^T y, y^T y) are computed once, so an
EM iteration costs O(n m d^2) whatever the prompt length.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mrbench.lazy import torch

LOG_2PI = math.log(2 * math.pi)


@dataclass
class Stats:
    """Per-prompt sufficient statistics: XX (n, d(d+1)/2), the upper triangle of X^T X row by
    row; Xy (n, d); yy (n,); L pairs per prompt. Storing the triangle only halves both products
    of an EM iteration (they stream XX from memory: 25 MB instead of 48 at n = 15000, d = 20)."""

    XX: torch.Tensor
    Xy: torch.Tensor
    yy: torch.Tensor
    L: int

    @classmethod
    def from_prompts(cls, x: np.ndarray, y: np.ndarray, device: str = "cpu", chunk: int = 256) -> "Stats":
        # numpy on the host, then one copy to the device: small chunks keep each chunk's float64
        # copy in cache, four times faster than torch's batched product here
        n, L, d = x.shape
        iu, ju = np.triu_indices(d)
        XX, Xy, yy = np.empty((n, len(iu))), np.empty((n, d)), np.empty(n)
        for lo in range(0, n, chunk):
            xb, yb = x[lo:lo + chunk].astype(np.float64), y[lo:lo + chunk].astype(np.float64)
            XX[lo:lo + chunk] = np.matmul(xb.transpose(0, 2, 1), xb)[:, iu, ju]
            Xy[lo:lo + chunk] = np.matmul(yb[:, None, :], xb)[:, 0]
            yy[lo:lo + chunk] = np.einsum("nl,nl->n", yb, yb)
        return cls(*(torch.from_numpy(a).to(device) for a in (XX, Xy, yy)), L)

    @property
    def n(self) -> int:
        return self.Xy.shape[0]

    @property
    def d(self) -> int:
        return self.Xy.shape[1]

    def _triu(self):
        return torch.triu_indices(self.d, self.d, device=self.XX.device)

    def residuals(self, W: torch.Tensor) -> torch.Tensor:
        """r_ij = ||y_i - X_i w_j||^2 for every prompt and component, (n, m), by expansion:
        w^T G w = sum over the triangle a <= b of (2 - [a = b]) G_ab w_a w_b."""
        iu, ju = self._triu()
        WW = W[:, iu] * W[:, ju] * torch.where(iu == ju, 1.0, 2.0).to(W)
        r = self.yy[:, None] - 2 * self.Xy @ W.T + self.XX @ WW.T
        return r.clamp_min_(0.0)  # round-off can push an exact fit (sigma = 0) below zero

    def weighted_ls(self, gamma: torch.Tensor, ridge: float) -> torch.Tensor:
        """argmin_w sum_i gamma_ij ||y_i - X_i w||^2 + ridge ||w||^2, for every j: (m, d)."""
        d, (iu, ju) = self.d, self._triu()
        upper = gamma.T @ self.XX
        A = ridge * torch.eye(d, dtype=gamma.dtype, device=gamma.device).repeat(len(upper), 1, 1)
        A[:, iu, ju] += upper
        A[:, ju[iu != ju], iu[iu != ju]] += upper[:, iu != ju]
        b = gamma.T @ self.Xy
        return torch.linalg.solve(A, b[..., None])[..., 0]


def sphere(m: int, d: int, rng: np.random.Generator) -> np.ndarray:
    g = rng.standard_normal((m, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True) * np.sqrt(d)


def half_estimates(x: np.ndarray, y: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """b = X^T y / t on the first and second halves of each prompt: unbiased estimates of the
    prompt's w, since E[x x^T] = I. Chunked, so no float64 copy of all prompts is made."""
    t = x.shape[1] // 2
    b1, b2 = np.empty((len(x), x.shape[2])), np.empty((len(x), x.shape[2]))
    for lo in range(0, len(x), chunk):
        xb, yb = x[lo:lo + chunk].astype(np.float64), y[lo:lo + chunk].astype(np.float64)
        b1[lo:lo + chunk] = np.einsum("nld,nl->nd", xb[:, :t], yb[:, :t]) / t
        b2[lo:lo + chunk] = np.einsum("nld,nl->nd", xb[:, t:2 * t], yb[:, t:2 * t]) / t
    return b1, b2


def moment_subspace(x: np.ndarray, y: np.ndarray, m: int) -> np.ndarray:
    """Kong et al. 2020, step 1: top-m eigenvectors of M = mean_i sym(b1_i b2_i^T), whose
    expectation is sum_j pi_j w_j w_j^T. Returns U (d, m)."""
    b1, b2 = half_estimates(x, y)
    M = b1.T @ b2 / len(b1)
    vals, vecs = np.linalg.eigh((M + M.T) / 2)
    return vecs[:, np.argsort(vals)[::-1][:m]]


def subspace_clusters(x: np.ndarray, y: np.ndarray, U: np.ndarray, m: int) -> np.ndarray:
    """Kong et al. 2020, step 2: with a, c the projected estimates X^T y / t from the two halves
    of each prompt, H_ij = (a_i - a_j).(c_i - c_j) estimates ||U^T (w_zi - w_zj)||^2 without
    bias; average linkage on H, cut into m clusters. Quadratic in len(x). Labels (n,), -1 for
    prompts left out as outliers."""
    b1, b2 = half_estimates(x, y)
    G = (b1 @ U) @ (b2 @ U).T
    H = np.diag(G)[:, None] + np.diag(G)[None, :] - G - G.T
    H = np.clip(H, 0.0, None)  # an unbiased estimate can dip below zero; linkage needs >= 0
    np.fill_diagonal(H, 0.0)
    from scipy.cluster.hierarchy import (  # here: 0.17 s to import, for fits only
        fcluster,
        linkage,
    )
    from scipy.spatial.distance import squareform

    tree = linkage(squareform(H, checks=False), method="average")
    # Our guard against outliers (heavy-tailed H): cut into c >= m clusters, the fewest for
    # which m clusters hold at least 1/(5m) of the prompts each; the rest are left unlabeled (-1).
    min_size = max(1, len(x) // (5 * m))
    for c in range(m, len(x) + 1):
        labels = fcluster(tree, c, criterion="maxclust") - 1
        sizes = np.bincount(labels)
        big = np.argsort(sizes)[::-1][:m]
        if len(big) == m and sizes[big].min() >= min_size or c == len(x):
            break
    remap = np.full(len(sizes), -1)
    remap[big] = np.arange(len(big))
    return remap[labels]


def spectral_init(x: np.ndarray, y: np.ndarray, m: int, n_cluster: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Kong et al. 2020, steps 1-3: moment subspace from all prompts, clusters of the first
    n_cluster prompts, each component the projected mean estimate of its cluster.
    Returns (pool (m, d), cluster labels of the first n_cluster prompts)."""
    U = moment_subspace(x, y, m)
    xs, ys = x[:n_cluster], y[:n_cluster]
    labels = subspace_clusters(xs, ys, U, m)
    b = np.einsum("nld,nl->nd", xs.astype(np.float64), ys.astype(np.float64)) / xs.shape[1]
    return np.stack([U @ U.T @ b[labels == j].mean(0) for j in range(m)]), labels


@dataclass
class EMResult:
    pool: np.ndarray
    pi: np.ndarray
    sigma: float
    objective: float
    iterations: int
    converged: bool
    trace: list[float] = field(default_factory=list)
    # components left with less than one prompt's worth of responsibility: their M-step has no
    # data, the ridge pulls them to w = 0, and they stay there (a fixed point EM calls converged)
    empty: int = 0


def batch_em(stats: Stats, W0: np.ndarray, pi0: np.ndarray, sigma: float, estimate_sigma: bool = False,
             tol: float = 1e-3, max_iter: int = 20000, ridge: float = 1e-6, hard: bool = False,
             min_sigma: float = 1e-3) -> EMResult:
    """Batch EM (Pathak et al., Appendix C.2, Algorithm 1) on sufficient statistics.

    E-step in the log domain; M-step weighted least squares with a small ridge (so the tracked
    objective is the log-likelihood minus ridge * sum ||w_j||^2 / 2 sigma^2, which EM never
    decreases); pi by mean responsibility; sigma (shared) optionally re-estimated. Stops when
    max_j min_j' ||w_j^t - w_j'^(t-1)|| <= tol or after max_iter iterations. `hard` assigns each
    prompt to its most likely component (alternating minimization).
    """
    dev = stats.XX.device
    W = torch.as_tensor(W0, dtype=torch.float64, device=dev).clone()
    log_pi = torch.log(torch.as_tensor(pi0, dtype=torch.float64, device=dev).clamp_min(1e-300))
    s2 = max(sigma, min_sigma) ** 2
    N = stats.n * stats.L
    trace, converged, it = [], False, 0

    def e_step(r):
        """Responsibilities; records the objective. One exp serves both the log-sum-exp and
        the normalized responsibilities (float64 exp is a third of an iteration's time)."""
        ll = log_pi - 0.5 * stats.L * (LOG_2PI + math.log(s2)) - r / (2 * s2)
        top = ll.amax(1, keepdim=True)
        e = torch.exp(ll - top)
        total = e.sum(1, keepdim=True)
        trace.append(float((top + torch.log(total)).sum() - ridge * (W * W).sum() / (2 * s2)))
        return e / total

    r = stats.residuals(W)  # one residual evaluation per iterate, shared by sigma and the E-step
    for it in range(1, max_iter + 1):
        gamma = e_step(r)
        if hard:  # each prompt goes to the component with the least residual
            gamma = torch.nn.functional.one_hot(r.argmin(1), W.shape[0]).double()
        W_new = stats.weighted_ls(gamma, ridge)
        r_new = stats.residuals(W_new)
        log_pi = torch.log((gamma.mean(0)).clamp_min(1e-300))
        if estimate_sigma:
            s2 = max(float(((gamma * r_new).sum() + ridge * (W_new * W_new).sum()) / N), min_sigma**2)
        shift = torch.cdist(W_new, W).min(1).values.max()
        W, r = W_new, r_new
        if float(shift) <= tol:
            converged = True
            break
    e_step(r)
    pi = torch.exp(log_pi).cpu().numpy()
    return EMResult(pool=W.cpu().numpy(), pi=pi, sigma=math.sqrt(s2), objective=trace[-1], iterations=it,
                    converged=converged, trace=trace, empty=int((pi * stats.n < 1).sum()))
