"""The data-family contract: everything one kind of data means, in one class.

A family owns its spec fields (with defaults and validation), the numpy generator of its
prompts, the torch sampler that training draws from (the same law, tested to be), the truth its
oracle sees, the name of its Bayes-optimal solver (the leaderboard's reference), its extra per-k
scores, and which report panels apply. The framework asks the family; nothing outside the
families branches on a family's name.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import numpy as np

from ..errors import UserError
from ..prompts import hide_query


class Family:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    fields: ClassVar[dict[str, Any]] = {}  # its own spec fields and their defaults (bool, int, float or str)
    oracle: ClassVar[str] = ""  # the registered solver that is Bayes-optimal on it
    solvers: ClassVar[tuple[type, ...]] = ()  # Solver classes it brings (its oracle, when no module has it)
    solvers_of: ClassVar[tuple[str, ...]] = ()  # non-oracle solvers declared for these families apply too
    # test-time shifts it takes: shift_kind -> (shift_value's neutral default, must it be > 0)
    shift_kinds: ClassVar[dict[str, tuple[float, bool]]] = {}
    # fields a claim may fit a slope over (the common ones d, m, sigma, k_max, n_train always)
    slope_fields: ClassVar[tuple[str, ...]] = ()
    # the extra per-k columns curve_scores returns and their types: the store's schema holds
    # them; a column returned and not declared here fails the cell
    scores: ClassVar[dict[str, type]] = {}
    slope_score: ClassVar[str | None] = None  # the column of `scores` (with its `_se`) a slope claim fits at k = k_max
    panels: ClassVar[tuple[str, ...]] = ()  # report panels beyond the NMSE curves: "shifts", "probe", "excess"
    noiseless_ok: ClassVar[bool] = True  # sigma = 0 is a valid spec
    # the highest peak learning rate training on it is known to work with: a recipe's higher rate
    # is lowered to it unless `mrbench train --lr` names one (None: the recipe's rate)
    max_lr: ClassVar[float | None] = None

    # -- spec fields --------------------------------------------------------------------------
    def validate(self, where: str, values: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        """The family's own fields from raw `values` (defaults filled in), checked against the
        common fields already validated in `spec`. The default checks each value's type
        against its default's; override to add ranges, and call super()."""
        out = {}
        for key, default in self.fields.items():
            value = values.get(key, default)
            if isinstance(default, bool) and not isinstance(value, bool):
                raise _invalid(where, key, value, "must be true or false")
            if isinstance(default, float) and (isinstance(value, bool) or not isinstance(value, (int, float))
                                               or not np.isfinite(value)):
                raise _invalid(where, key, value, "must be a finite number")
            if isinstance(default, str) and not isinstance(value, str):
                raise _invalid(where, key, value, "must be a string")
            if isinstance(default, int) and not isinstance(default, bool) and (
                    isinstance(value, bool) or not isinstance(value, int)):
                raise _invalid(where, key, value, "must be an integer")
            out[key] = float(value) if isinstance(default, float) else value
        if spec["sigma"] == 0 and not self.noiseless_ok:
            raise _invalid(where, "sigma", 0.0, f"must be > 0 for family '{self.name}'")
        return out

    def training_recipe(self, recipe):
        """`recipe` (a transformer Recipe) with its learning rate lowered to max_lr."""
        if self.max_lr is None or recipe.lr <= self.max_lr:
            return recipe
        return dataclasses.replace(recipe, lr=self.max_lr)

    def tiny(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """A valid variant of the contract checks' tiny spec for this family."""
        return overrides

    # -- data ---------------------------------------------------------------------------------
    def pool(self, spec) -> np.ndarray:
        """Parameters of the training distribution drawn once per (d, m, pool_seed): by default
        m components uniform on the sphere of radius sqrt(d)."""
        from ..prompts import make_pool

        return make_pool(spec.d, spec.m, spec.pool_seed)

    def draw(self, spec, pool: np.ndarray, n: int, P: int, rng: np.random.Generator, test: bool = False):
        """n prompts of P pairs (data.Prompts); `test`: the test distribution (shifts apply)."""
        raise NotImplementedError

    def truth(self, spec, pool: np.ndarray, test):
        """What the oracles see (data.Truth), given the test prompts."""
        raise NotImplementedError

    def sampler(self, spec, pool: np.ndarray, device: str, gen) -> Callable:
        """`sample(b, P, dims) -> (x, y)` torch tensors of the training distribution, on
        `device`, drawn with the torch generator `gen`; x zero beyond the first `dims`
        coordinates (the dimension curriculum) when dims < d."""
        raise NotImplementedError

    def bayes(self, spec, x: np.ndarray, y: np.ndarray, truth, seed: int = 0) -> np.ndarray:
        """The Bayes-optimal prediction at every position of prompts (x, y) of `spec`, the
        queries' labels hidden, given what oracles see (`truth`): (n, P). The family's oracle
        solver predicts with it; `seed` for a Monte Carlo one."""
        raise NotImplementedError

    def oracle_predictions(self, ds) -> np.ndarray:
        """The reference on a dataset's test prompts: the oracle solver's predictions there."""
        return self.bayes(ds.spec, ds.test.x, hide_query(ds.test.y), ds.truth, seed=ds.spec.seed)

    # -- scores -------------------------------------------------------------------------------
    def curve_scores(self, ds, pred: np.ndarray) -> dict[str, np.ndarray]:
        """Extra per-k result columns beyond the NMSE, those declared in `scores`."""
        return {}


def weights(spec) -> np.ndarray:
    """The spec's component weights pi (uniform when it gives none)."""
    return np.full(spec.m, 1.0 / spec.m) if spec.pi is None else np.asarray(spec.pi)


def _invalid(where: str, key: str, value, allowed: str) -> UserError:
    return UserError(f"{where}: field '{key}' = {value!r} is invalid: {allowed}")

