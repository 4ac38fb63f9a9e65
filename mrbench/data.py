"""Prompt generation for the prompt-level mixture (Pathak et al. 2023, Sec. 2) and the
sample-level one (Jin et al. 2024).

Determinism: every array comes from numpy's PCG64 seeded by a SeedSequence of explicit integers,
and y is computed by a fixed-order sum, so the same spec and seed give the same bits on any
machine with the same library versions. x is stored in float32 (it is the bulk of the memory);
y is float64, computed from the stored x, so the noiseless model holds exactly.

Two families: `prompt` (Pathak et al. 2023: one component per prompt, from a fixed pool) and
`sample` (Jin et al. 2024: every pair draws its own component).

Prompts are drawn in chunks of CHUNK, each chunk from its own stream: a training set of
n = 15000 is the first 15000 prompts of the n = 60000 set (nested sample sizes), and the test
set is shared by all shifts and noise levels of a pool (common random numbers).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np

from .specs import Spec, train_spec

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


def hide_query(y: np.ndarray) -> np.ndarray:
    """A copy of the labels with each prompt's last one, the query's, hidden (NaN): what
    `Solver.predict` is given."""
    y = y.copy()
    y[:, -1] = np.nan
    return y


@dataclass
class Prompts:
    """n prompts of K = k+1 pairs: x (n, K, d) float32, y (n, K) float64, component z ((n,) per
    prompt, (n, K) per pair), and for the sample-level family the oracle's coefficient
    coef = sum_k pi_k beta_k of each prompt (n, d) and its components betas (n, m, d), which
    score how well a solver recovers them. Training prompts carry none of these: z is None."""

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


def _components(rng, m, size, pi):
    return rng.choice(m, size=size, p=pi) if pi is not None else rng.integers(m, size=size)


def draw(pool: np.ndarray, sigma: float, n: int, K: int, rng: np.random.Generator,
         x_scale: float = 1.0, pi=None) -> Prompts:
    """Prompt-level mixture: one component of `pool` per prompt."""
    m, d = pool.shape
    z = _components(rng, m, n, pi)
    x = rng.standard_normal((n, K, d), dtype=np.float32)
    noise = rng.standard_normal((n, K))
    if x_scale != 1.0:
        x = x * np.float32(x_scale)
    return Prompts(x, _rowdot(x.astype(np.float64), pool[z][:, None, :]) + sigma * noise, z)


def sample_betas(spec: Spec, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, K, d) components of n prompts, each of norm snr * sigma (our law: uniform directions;
    the paper's is not confirmed). `fixed`: the same K for every prompt, from pool_seed."""
    scale = spec.snr * spec.sigma
    if spec.components == "fixed":
        B = np.broadcast_to(make_pool(spec.d, spec.m, spec.pool_seed) / np.sqrt(spec.d) * scale, (n, spec.m, spec.d))
    else:
        g = rng.standard_normal((n, spec.m, spec.d))
        B = g / np.sqrt(_rowdot(g, g))[..., None] * scale
    if spec.symmetric:
        B = np.stack([B[:, 0], -B[:, 0]], axis=1)
    return np.ascontiguousarray(B)


def draw_sample(spec: Spec, n: int, K: int, rng: np.random.Generator) -> Prompts:
    """Sample-level mixture (Jin et al. 2024): every pair draws its own component."""
    pi = None if spec.pi is None else np.asarray(spec.pi)
    z = _components(rng, spec.m, (n, K), pi)
    x = rng.standard_normal((n, K, spec.d), dtype=np.float32)
    noise = rng.standard_normal((n, K))
    B = sample_betas(spec, n, rng)
    chosen = np.take_along_axis(B, z[..., None], axis=1)  # (n, K, d)
    weights = np.full(spec.m, 1.0 / spec.m) if pi is None else pi
    coef = np.einsum("k,nkd->nd", weights, B)
    return Prompts(x, _rowdot(x.astype(np.float64), chosen) + spec.sigma * noise, z, coef, B)


def _draw(spec: Spec, pool, n: int, K: int, rng, x_scale: float = 1.0) -> Prompts:
    if spec.family == "sample":
        return draw_sample(spec, n, K, rng)
    return draw(pool, spec.sigma, n, K, rng, x_scale, None if spec.pi is None else np.asarray(spec.pi))


def _draw_chunked(tag: int, spec: Spec, pool, n: int, K: int, x_scale: float = 1.0) -> Prompts:
    parts = []
    for c in range(-(-n // CHUNK)):
        rng = np.random.default_rng(np.random.SeedSequence([tag, spec.seed, c]))
        # Every chunk is drawn whole and cut, so a smaller set is a prefix of a larger one.
        parts.append(_draw(spec, pool, CHUNK, K, rng, x_scale).head(min(CHUNK, n - c * CHUNK)))
    fields = {f: np.concatenate([getattr(p, f) for p in parts]) for f in ("x", "y", "z")}
    for f in ("coef", "betas"):
        fields[f] = None if getattr(parts[0], f) is None else np.concatenate([getattr(p, f) for p in parts])
    return Prompts(**fields)


def test_pool(spec: Spec, pool: np.ndarray) -> np.ndarray:
    """The pool the test prompts are drawn from: weight shifts apply at test time only."""
    if spec.shift_kind == "weight_scale":
        return pool * spec.shift_value
    if spec.shift_kind == "weight_shift":
        return pool + spec.shift_value / np.sqrt(spec.d)
    return pool


@dataclass
class Truth:
    """What only oracles see: the training distribution's pool (None when components are
    drawn per prompt), weights and noise level, and for the sample-level family the
    coefficient sum_k pi_k beta_k of each test prompt."""

    pool: np.ndarray | None
    pi: np.ndarray
    sigma: float
    test_coef: np.ndarray | None = None
    test_x: np.ndarray | None = field(default=None, repr=False)  # the prompts test_coef belongs to

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


@dataclass
class TrainData:
    """Training data handed to `Solver.fit`.

    `fixed()` is the spec's fixed training set (or DEFAULT_N_TRAIN prompts when the spec
    streams); `sample(n, rng)` draws fresh prompts from the training distribution, for solvers
    that can consume a stream (`spec.n_train is None`).

    The fixed set is drawn on first use and shared by every solver of the training
    distribution; `generation_seconds` counts the time spent drawing it, which the runner
    takes out of the fit time of whichever solver asked first.
    """

    spec: Spec
    _pool: np.ndarray = field(repr=False)
    _fixed: Prompts | None = field(default=None, repr=False)
    generation_seconds: float = field(default=0.0, repr=False)

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
            t0 = time.perf_counter()
            self._fixed = _draw_chunked(_TRAIN, self.spec, self._pool, self.n, self.K).unlabelled()
            self.generation_seconds += time.perf_counter() - t0
        return self._fixed

    def sample(self, n: int, rng: np.random.Generator, K: int | None = None) -> Prompts:
        if not self.streaming:
            raise RuntimeError("this spec has a fixed training set (n_train); use fixed()")
        return _draw(self.spec, self._pool, n, K or self.K, rng).unlabelled()


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
        train = TrainData(train_spec(spec), pool)
    x_scale = spec.shift_value if spec.shift_kind == "covariate_scale" else 1.0
    test = _draw_chunked(_TEST, spec, test_pool(spec, pool), spec.n_test, spec.k_max + 1, x_scale)
    pi = np.full(spec.m, 1.0 / spec.m) if spec.pi is None else np.asarray(spec.pi)
    if spec.family == "sample":
        fixed = spec.components == "fixed"
        truth = Truth(pool=sample_betas(spec, 1, None)[0] if fixed else None, pi=pi, sigma=spec.sigma,
                      test_coef=test.coef, test_x=test.x)
    else:
        truth = Truth(pool=pool, pi=pi, sigma=spec.sigma)
    return Dataset(spec=spec, train=train, test=test, truth=truth)
