"""Prompts and what only oracles see: the containers every layer shares, the component pool
and the fixed-order numerics that keep the data bit-reproducible (see mrbench.data)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

_POOL = 0x5001


def make_pool(d: int, m: int, pool_seed: int) -> np.ndarray:
    """m components uniform on the sphere of radius sqrt(d); depends on (d, m, pool_seed) only."""
    rng = np.random.default_rng(np.random.SeedSequence([_POOL, pool_seed, d, m]))
    g = rng.standard_normal((m, d))
    norm = np.sqrt(rowdot(g, g))
    return g / norm[:, None] * np.sqrt(d)


def rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum over the last axis in a fixed order (no BLAS, no SIMD reassociation)."""
    out = a[..., 0] * b[..., 0]
    for i in range(1, a.shape[-1]):
        out = out + a[..., i] * b[..., i]
    return out


def hide_query(y: np.ndarray) -> np.ndarray:
    """A copy of the labels with each prompt's last one, the query's, hidden (NaN): what
    `Solver.predict` is given."""
    y = y.copy()
    y[:, -1] = np.nan
    return y


@dataclass
class Prompts:
    """n prompts of P = k_max + 1 pairs (P, not K: Jin et al. call the components K):
    x (n, P, d) float32, y (n, P) float64, component z ((n,) per prompt, (n, P) per pair), and
    for the sample-level family the oracle's coefficient coef = sum_k pi_k beta_k of each prompt
    (n, d) and its components betas (n, m, d), which score how well a solver recovers them.
    Training prompts carry none of these: z is None."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray | None
    coef: np.ndarray | None = None
    betas: np.ndarray | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def head(self, n: int) -> "Prompts":
        return Prompts(*(None if a is None else a[:n] for a in (self.x, self.y, self.z, self.coef, self.betas)))

    def unlabelled(self) -> Prompts:
        """x and y only: what a solver may learn from (the latent components stay hidden)."""
        return Prompts(self.x, self.y, None)


def components(rng, m, size, pi):
    """Latent component indices of the given size, with weights pi (None: uniform)."""
    return rng.choice(m, size=size, p=pi) if pi is not None else rng.integers(m, size=size)


@dataclass
class Truth:
    """What only oracles see: the training distribution's pool (None when components are
    drawn per prompt), weights and noise level, for the sample-level family the coefficient
    sum_k pi_k beta_k of each test prompt, and whatever else a family's oracle needs (`extra`)."""

    pool: np.ndarray | None
    pi: np.ndarray
    sigma: float
    test_coef: np.ndarray | None = None
    test_x: np.ndarray | None = field(default=None, repr=False)  # the prompts test_coef belongs to
    extra: dict = field(default_factory=dict, repr=False)

    def coef_for(self, x: np.ndarray) -> np.ndarray:
        """test_coef of each prompt of x, found by the prompt's content: any subset or order of
        the test prompts gets its own rows; a prompt that is not a test prompt is an error."""
        if self._index is None:
            self._index = {_fingerprint(p): i for i, p in enumerate(self.test_x)}
        rows = [self._index.get(_fingerprint(p), -1) for p in x]
        if min(rows, default=0) < 0:
            raise ValueError(f"prompt {rows.index(-1)} is not one of this spec's test prompts: their "
                             "coefficients are the only ones known")
        return self.test_coef[rows]

    _index: dict | None = field(default=None, init=False, repr=False, compare=False)


def _fingerprint(prompt_x: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(prompt_x, dtype=np.float32).tobytes(), digest_size=16).digest()
