"""The solver contract (scikit-learn's estimator contract, adapted).

A solver is one class with a `name`, hyperparameters as keyword arguments of `__init__`
(stored as-is, no logic), `fit(train, truth=None) -> self` and `predict(x, y) -> (n, k+1)`.
Entry i of a prediction row is the prediction for y_i from pairs 0..i-1 and x_i; y's last
column (the final query) arrives as NaN. Fitted state ends in `_`.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .families import get


class Solver:
    name: ClassVar[str] = ""
    requires_truth: ClassVar[bool] = False  # an oracle: fit receives the true pool
    trained: ClassVar[bool] = False  # learns from the spec's training prompts
    group: ClassVar[str] = ""  # display group: oracle, bound, prompt-only, plug-in, in-context (trained in context)
    version: ClassVar[str] = "1"  # bump to invalidate stored results by hand
    families: ClassVar[tuple[str, ...] | None] = None  # data families it applies to; None: every one
    test_params: ClassVar[dict[str, Any]] = {}  # parameters for the contract checks (fast, small)
    code_also: ClassVar[tuple[str, ...]] = ()  # modules imported inside methods that results depend on

    # Set by the runner before fit; plain attributes so a solver also works on its own.
    seed: int = 0
    device: str = "cpu"

    def set_context(self, seed: int = 0, device: str = "cpu") -> "Solver":
        self.seed, self.device = int(seed), device
        return self

    @classmethod
    def applies_to(cls, family: str) -> bool:
        """Declared for the family, or (not an oracle) for one whose solvers it accepts."""
        if cls.families is None or family in cls.families:
            return True
        return not cls.requires_truth and bool(set(get(family).solvers_of) & set(cls.families))

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
        """Changes when the source a solver depends on changes (`code_modules`), so stored
        results of old code are redone."""
        return _code_version(cls)

    def check_params(self) -> None:
        """Raise ValueError for a parameter value this solver cannot take. The runner calls it
        when it plans a run, so a bad value exits (code 2) before anything runs. The default
        checks numbers and booleans against their defaults' types; override to add ranges and
        choices, and call super()."""
        for name, default in self.param_defaults().items():
            value, kind = getattr(self, name), _KINDS.get(type(default))
            if kind is not None and not (isinstance(value, kind[0]) and not isinstance(value, kind[1])):
                raise ValueError(f"{name}={value!r}: expected {kind[2]}")

    def artifact(self, spec) -> str | None:
        """A digest of what, beside its code and parameters, decides this solver's results on
        `spec` (a trained model's weights), or None. It enters the cell key: a replaced
        artifact reruns exactly its cells."""
        return None

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

    def estimated_components(self) -> np.ndarray | None:
        """For solvers that estimate each prompt's own components (in-context EM): after
        predict, (n, k+1, m, d), entry i from the prefix that predicts position i (NaN at
        i = 0). The framework scores their recovery against the truth (`recovery_error`)."""
        return None

    def __repr__(self) -> str:
        return self.label()


@functools.cache
def _code_version(cls: type) -> str:  # cached: reading sources is slow and called per cell
    src = "\n".join(_source(m) for m in code_modules(cls) + sorted(cls.code_also))
    return f"{cls.version}-{hashlib.sha256(src.encode()).hexdigest()[:12]}"


def code_modules(cls: type) -> list[str]:
    """The modules whose source a solver's results depend on: those defining it and its bases,
    and every mrbench module they reach through what they import (the predictors, the EM
    core, the data generator, ...), so that editing a helper also redoes the cells. Not the
    package's top level (which reaches the runner), not the plumbing in _PLUMBING, and not
    imports made inside functions."""
    todo = [k.__module__ for k in cls.__mro__ if k not in (Solver, object)]
    seen: list[str] = []
    while todo:
        name = todo.pop()
        if name in seen or name in _PLUMBING or name not in sys.modules:
            continue
        seen.append(name)
        for value in vars(sys.modules[name]).values():
            ref = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
            if isinstance(ref, str) and ref.startswith("mrbench.") and ref not in seen:
                todo.append(ref)
    return sorted(seen)


# the contract, errors, spec values and their validation (a spec's values are in the cell key), lazy imports
_PLUMBING = {"mrbench.solver", "mrbench.errors", "mrbench.spec", "mrbench.families.fields", "mrbench.lazy"}


def _source(module: str) -> str:
    """A module's source, read from its file without importing it (code_also names modules
    whose import is deliberately put off, such as torch-heavy ones)."""
    try:
        return Path(importlib.util.find_spec(module).origin).read_text(errors="replace")  # compiled ones too
    except (ImportError, ValueError, AttributeError, TypeError, OSError):
        return module


# default's type -> (accepted types, rejected subtypes, description); bool is a subtype of int
_KINDS = {bool: (bool, (), "true or false"), int: (int, bool, "an integer"),
          float: ((int, float), bool, "a number")}


def one_of(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r}: must be one of {', '.join(map(str, choices))}")


def at_least(name: str, value, low, strict: bool = False) -> None:
    if value < low or (strict and value == low):
        raise ValueError(f"{name}={value!r}: must be {'>' if strict else '>='} {low}")


def canonical_params(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
