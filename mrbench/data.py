"""Prompt generation for the prompt-level mixture (Pathak et al. 2023, REFERENCE section 1).

Determinism: every array comes from numpy's PCG64 seeded by a SeedSequence of explicit integers,
and y is computed by a fixed-order sum, so the same spec and seed give the same bits on any
machine with the same library versions. x is stored in float32 (it is the bulk of the memory);
y is float64, computed from the stored x, so the noiseless model holds exactly.

Prompts are drawn in chunks of CHUNK, each chunk from its own stream: a training set of
n = 15000 is the first 15000 prompts of the n = 60000 set (nested sample sizes), and the test
set is shared by all shifts and noise levels of a pool (common random numbers).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .specs import Spec

CHUNK = 1024
DEFAULT_N_TRAIN = 15000  # fixed-set size given to solvers when a spec streams (n_train = null)
_POOL, _TRAIN, _TEST = 0x5001, 0x7241, 0x7E57


def make_pool(d: int, m: int, pool_seed: int) -> np.ndarray:
    """m components uniform on the sphere of radius sqrt(d); depends on (d, m, pool_seed) only."""
    rng = np.random.default_rng(np.random.SeedSequence([_POOL, pool_seed, d, m]))
    g = rng.standard_normal((m, d))
    norm = np.sqrt(_rowdot(g, g))
    return g / norm[:, None] * np.sqrt(d)


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum over the last axis in a fixed order (no BLAS, no SIMD reassociation)."""
    out = a[..., 0] * b[..., 0]
    for i in range(1, a.shape[-1]):
        out = out + a[..., i] * b[..., i]
    return out


@dataclass
class Prompts:
    """n prompts of K = k+1 pairs: x (n, K, d) float32, y (n, K) float64, component z (n,)."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    def __len__(self) -> int:
        return self.x.shape[0]

    def head(self, n: int) -> "Prompts":
        return Prompts(self.x[:n], self.y[:n], self.z[:n])


def _label(x: np.ndarray, pool: np.ndarray, z: np.ndarray, noise: np.ndarray, sigma: float) -> np.ndarray:
    return _rowdot(x.astype(np.float64), pool[z][:, None, :]) + sigma * noise


def draw(pool: np.ndarray, sigma: float, n: int, K: int, rng: np.random.Generator,
         x_scale: float = 1.0, pi: np.ndarray | None = None) -> Prompts:
    """Draw n prompts of K pairs from one random stream."""
    m, d = pool.shape
    z = rng.choice(m, size=n, p=pi) if pi is not None else rng.integers(m, size=n)
    x = rng.standard_normal((n, K, d), dtype=np.float32)
    noise = rng.standard_normal((n, K))
    if x_scale != 1.0:
        x = x * np.float32(x_scale)
    return Prompts(x, _label(x, pool, z, noise, sigma), z)


def _draw_chunked(tag: int, seed: int, pool: np.ndarray, sigma: float, n: int, K: int,
                  x_scale: float = 1.0) -> Prompts:
    parts = []
    for c in range(-(-n // CHUNK)):
        rng = np.random.default_rng(np.random.SeedSequence([tag, seed, c]))
        # Every chunk is drawn whole and cut, so a smaller set is a prefix of a larger one.
        parts.append(draw(pool, sigma, CHUNK, K, rng, x_scale).head(min(CHUNK, n - c * CHUNK)))
    return Prompts(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("x", "y", "z")))


def test_pool(spec: Spec, pool: np.ndarray) -> np.ndarray:
    """The pool the test prompts are drawn from: weight shifts apply at test time only."""
    if spec.shift_kind == "weight_scale":
        return pool * spec.shift_value
    if spec.shift_kind == "weight_shift":
        return pool + spec.shift_value / np.sqrt(spec.d)
    return pool


@dataclass
class Truth:
    """What only oracles see: the training distribution's pool, weights and noise level."""

    pool: np.ndarray
    pi: np.ndarray
    sigma: float


@dataclass
class TrainData:
    """Training data handed to `Solver.fit`.

    `fixed()` is the spec's fixed training set (or DEFAULT_N_TRAIN prompts when the spec
    streams); `sample(n, rng)` draws fresh prompts from the training distribution, for solvers
    that can consume a stream (`spec.n_train is None`).
    """

    spec: Spec
    _pool: np.ndarray = field(repr=False)
    _fixed: Prompts | None = field(default=None, repr=False)

    @property
    def d(self) -> int:
        return self.spec.d

    @property
    def m(self) -> int:
        return self.spec.m

    @property
    def sigma(self) -> float:
        return self.spec.sigma

    @property
    def K(self) -> int:
        return self.spec.k_max + 1

    @property
    def streaming(self) -> bool:
        return self.spec.n_train is None

    @property
    def n(self) -> int:
        return self.spec.n_train if self.spec.n_train is not None else DEFAULT_N_TRAIN

    def fixed(self) -> Prompts:
        if self._fixed is None:
            self._fixed = _draw_chunked(_TRAIN, self.spec.seed, self._pool, self.spec.sigma, self.n, self.K)
        return self._fixed

    def sample(self, n: int, rng: np.random.Generator, K: int | None = None) -> Prompts:
        if not self.streaming:
            raise RuntimeError("this spec has a fixed training set (n_train); use fixed()")
        return draw(self._pool, self.spec.sigma, n, K or self.K, rng)


@dataclass
class Dataset:
    spec: Spec
    train: TrainData
    test: Prompts
    truth: Truth


def make_dataset(spec: Spec, train: TrainData | None = None) -> Dataset:
    """All data of one spec and seed. Training data is generated lazily, on first use; pass
    `train` to share it between specs that differ only in their test distribution."""
    pool = make_pool(spec.d, spec.m, spec.pool_seed)
    if train is None:
        train = TrainData(dataclasses.replace(spec, shift_kind="none", shift_value=0.0), pool)
    x_scale = spec.shift_value if spec.shift_kind == "covariate_scale" else 1.0
    test = _draw_chunked(_TEST, spec.seed, test_pool(spec, pool), spec.sigma, spec.n_test, spec.k_max + 1, x_scale)
    truth = Truth(pool=pool, pi=np.full(spec.m, 1.0 / spec.m), sigma=spec.sigma)
    return Dataset(spec=spec, train=train, test=test, truth=truth)
