"""The solver contract (scikit-learn's estimator contract, adapted).

A solver is one class with a `name`, hyperparameters as keyword arguments of `__init__`
(stored as-is, no logic), `fit(train, truth=None) -> self` and `predict(x, y) -> (n, k+1)`.
Entry i of a prediction row is the prediction for y_i from pairs 0..i-1 and x_i; y's last
column (the final query) arrives as NaN. Fitted state ends in `_`.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
from typing import Any, ClassVar

import numpy as np


class Solver:
    name: ClassVar[str] = ""
    requires_truth: ClassVar[bool] = False  # an oracle: fit receives the true pool
    trained: ClassVar[bool] = False  # learns from the spec's training prompts
    family: ClassVar[str] = ""  # display group: oracle, plug-in, data-driven, trained
    version: ClassVar[str] = "1"  # bump to invalidate stored results by hand
    families: ClassVar[tuple[str, ...]] = ("prompt", "sample")  # data families it applies to
    test_params: ClassVar[dict[str, Any]] = {}  # parameters for the contract checks (fast, small)

    # Set by the runner before fit; plain attributes so a solver also works on its own.
    seed: int = 0
    device: str = "cpu"

    def set_context(self, seed: int = 0, device: str = "cpu") -> "Solver":
        self.seed, self.device = int(seed), device
        return self

    @property
    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        sig = inspect.signature(cls.__init__)
        return {p.name: p.default for p in sig.parameters.values()
                if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.param_defaults()}

    def label(self) -> str:
        """Display label: the name, plus the parameters that differ from their defaults."""
        defaults = self.param_defaults()
        diff = [f"{k}={v}" for k, v in self.get_params().items() if v != defaults[k]]
        return f"{self.name}[{','.join(diff)}]" if diff else self.name

    @classmethod
    def code_version(cls) -> str:
        """Changes when the solver's source (its class and its bases below Solver) changes, so
        stored results of old code are redone."""
        return _code_version(cls)

    def skip_reason(self, spec, device: str) -> str | None:
        """Why this solver cannot run on `spec` here (no GPU, missing dependency, budget), or
        None. Raising SkipSolver in fit works too. Skipped cells are retried by later runs."""
        return None

    def fit(self, train, truth=None) -> "Solver":
        return self

    def predict(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """Fitted quantities stored beside the curve (pool recovery, iterations, checkpoint)."""
        return {}

    def __repr__(self) -> str:
        return self.label()


@functools.cache
def _code_version(cls: type) -> str:  # cached: reading class sources is slow and called per cell
    parts = []
    for klass in cls.__mro__:
        if klass is Solver or klass is object:
            break
        try:
            parts.append(inspect.getsource(klass))
        except (OSError, TypeError):
            parts.append(klass.__qualname__)
    src = "\n".join(parts)
    return f"{cls.version}-{hashlib.sha256(src.encode()).hexdigest()[:12]}"


def canonical_params(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
