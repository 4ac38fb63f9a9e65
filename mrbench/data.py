"""Data of a spec: prompts drawn in deterministic chunks, the training data solvers learn
from, and the truth only oracles see.

Determinism: every array comes from numpy's PCG64 seeded by a SeedSequence of explicit integers,
and y is computed by a fixed-order sum, so the same spec and seed give the same bits on any
machine with the same library versions. x is stored in float32 (it is the bulk of the memory);
y is float64, computed from the stored x, so the noiseless model holds exactly.

What a prompt is depends on the spec's data family (mrbench.families): this module draws
them in chunks and holds the containers; each family draws one chunk.

Prompts are drawn in chunks of CHUNK, each chunk from its own stream: a training set of
n = 15000 is the first 15000 prompts of the n = 60000 set (nested sample sizes), and the test
set is shared by all shifts and noise levels of a pool (common random numbers).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np

from .families import family_of
from .specs import Spec, train_spec

CHUNK = 1024
DEFAULT_N_TRAIN = 15000  # fixed-set size given to solvers when a spec streams (n_train = null)
_POOL, _TRAIN, _TEST = 0x5001, 0x7241, 0x7E57


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


def _draw_chunked(tag: int, spec: Spec, pool, n: int, P: int, test: bool = False) -> Prompts:
    family = family_of(spec)
    parts = []
    for c in range(-(-n // CHUNK)):
        rng = np.random.default_rng(np.random.SeedSequence([tag, spec.seed, c]))
        # Every chunk is drawn whole and cut, so a smaller set is a prefix of a larger one.
        parts.append(family.draw(spec, pool, CHUNK, P, rng, test).head(min(CHUNK, n - c * CHUNK)))
    fields = {f: np.concatenate([getattr(p, f) for p in parts]) for f in ("x", "y", "z")}
    for f in ("coef", "betas"):
        fields[f] = None if getattr(parts[0], f) is None else np.concatenate([getattr(p, f) for p in parts])
    return Prompts(**fields)


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
    def pairs(self) -> int:
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
            self._fixed = _draw_chunked(_TRAIN, self.spec, self._pool, self.n, self.pairs).unlabelled()
            self.generation_seconds += time.perf_counter() - t0
        return self._fixed

    def sample(self, n: int, rng: np.random.Generator, pairs: int | None = None) -> Prompts:
        if not self.streaming:
            raise RuntimeError("this spec has a fixed training set (n_train); use fixed()")
        return family_of(self.spec).draw(self.spec, self._pool, n, pairs or self.pairs, rng).unlabelled()


@dataclass
class Dataset:
    spec: Spec
    train: TrainData
    test: Prompts
    truth: Truth


def train_data(spec: Spec) -> TrainData:
    """The (lazily drawn) training data of a spec's training distribution."""
    return TrainData(train_spec(spec), family_of(spec).pool(spec))


def make_dataset(spec: Spec, train: TrainData | None = None) -> Dataset:
    """All data of one spec and seed. Training data is generated lazily, on first use; pass
    `train` to share it between specs that differ only in their test distribution."""
    family = family_of(spec)
    pool = family.pool(spec)
    if train is None:
        train = TrainData(train_spec(spec), pool)
    test = _draw_chunked(_TEST, spec, pool, spec.n_test, spec.k_max + 1, test=True)
    return Dataset(spec=spec, train=train, test=test, truth=family.truth(spec, pool, test))
