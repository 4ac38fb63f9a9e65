"""Data of a spec: prompts drawn in deterministic chunks, the training data solvers learn
from, and the truth only oracles see.

Determinism: every array comes from numpy's PCG64 seeded by a SeedSequence of explicit integers,
and y is computed by a fixed-order sum, so the same spec and seed give the same bits on any
machine with the same library versions. x is stored in float32 (it is the bulk of the memory);
y is float64, computed from the stored x, so the noiseless model holds exactly.

What a prompt is depends on the spec's data family (mrbench.families): this module draws
them in chunks, each family draws one chunk; the containers are in mrbench.prompts.

Prompts are drawn in chunks of CHUNK, each chunk from its own stream: a training set of
n = 15000 is the first 15000 prompts of the n = 60000 set (nested sample sizes), and the test
set is shared by all shifts and noise levels of a pool (common random numbers).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .families import family_of
from .prompts import Prompts, Truth
from .spec import Spec, train_spec

CHUNK = 1024
DEFAULT_N_TRAIN = 15000  # fixed-set size given to solvers when a spec streams (n_train = null)
_TRAIN, _TEST = 0x7241, 0x7E57


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
class TrainData:
    """Training data handed to `Solver.fit`.

    `fixed()` is the spec's fixed training set (or DEFAULT_N_TRAIN prompts when the spec
    streams); `fresh(n, rng)` draws fresh prompts from the training distribution, for solvers
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

    def fresh(self, n: int, rng: np.random.Generator, pairs: int | None = None) -> Prompts:
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


def oracle_predictions(ds: Dataset) -> np.ndarray:
    """The family's Bayes-optimal predictions on a dataset's test prompts: (n, k_max + 1)."""
    return family_of(ds.spec).oracle_predictions(ds)
