"""Contract checks every solver must pass (like scikit-learn's check_estimator).

`run_checks(cls)` runs them all on a tiny spec of each data family the solver declares;
tests/test_contract.py runs them over every registered solver, so a new solver gets the checks
for free, and `mrbench check FILE.py|NAME` runs them for a plugin author.
"""
from __future__ import annotations

import time
import traceback

import numpy as np

from .data import make_dataset
from .errors import SkipSolver
from .families import families, make_spec
from .families import get as get_family
from .prompts import hide_query
from .solver import Solver

TINY = dict(d=4, m=3, k_max=8, n_train=256, n_test=24, pool_seed=1, seed=2)


def tiny_dataset(family: str = "prompt", **overrides):
    return make_dataset(make_spec({**TINY, **get_family(family).tiny({"family": family, **overrides})}))


def declared_families(cls) -> list[str]:
    """The registered data families a solver applies to: its checks run on each."""
    return [name for name in families() if cls.applies_to(name)]


def _tiny_for(cls, family=None, **overrides):
    return tiny_dataset(family or declared_families(cls)[0], **overrides)


def _fit_predict(cls, ds, params, device="cpu", seed=0, y=None):
    solver = cls(**params).set_context(seed=seed, device=device)
    reason = solver.skip_reason(ds.spec, device)
    if reason:
        raise SkipSolver(reason)
    assert solver.fit(ds.train, ds.truth if cls.requires_truth else None) is solver, "fit must return self"
    x = ds.test.x
    return solver, solver.predict(x, hide_query(ds.test.y) if y is None else y)


def check_params(cls, params):
    solver = cls(**params)
    got = solver.get_params()
    assert set(got) == set(cls.param_defaults()), "get_params must return every __init__ parameter"
    for k, v in params.items():
        assert got[k] is v or got[k] == v, f"__init__ must store parameter {k!r} as given"
    assert cls.name and isinstance(cls.name, str), "a solver needs a `name`"


def check_shapes_and_finite(cls, params, sigma, family=None):
    ds = _tiny_for(cls, family, sigma=sigma)
    _, pred = _fit_predict(cls, ds, params)
    pred = np.asarray(pred)
    assert pred.shape == ds.test.y.shape, f"predict must return (n, k+1) = {ds.test.y.shape}, got {pred.shape}"
    assert np.isfinite(pred).all(), f"non-finite predictions at sigma={sigma} (the query label arrives as NaN)"


def check_deterministic(cls, params, family=None):
    ds = _tiny_for(cls, family)
    _, a = _fit_predict(cls, ds, params, seed=7)
    _, b = _fit_predict(cls, _tiny_for(cls, family), params, seed=7)
    np.testing.assert_array_equal(a, b, err_msg="the same seed must give the same predictions")


def check_no_mutation(cls, params, family=None):
    ds = _tiny_for(cls, family)
    train = ds.train.fixed()
    arrays = lambda: [a for a in (ds.test.x, ds.test.y, train.x, train.y, ds.truth.pool) if a is not None]  # noqa: E731
    before = [a.copy() for a in arrays()]
    y = hide_query(ds.test.y)
    y_before = y.copy()
    solver = cls(**params).set_context(seed=0)
    if solver.skip_reason(ds.spec, "cpu"):
        raise SkipSolver(solver.skip_reason(ds.spec, "cpu"))
    solver.fit(ds.train, ds.truth if cls.requires_truth else None)
    solver.predict(ds.test.x, y)
    for a, b in zip(before, arrays()):
        np.testing.assert_array_equal(a, b, err_msg="fit/predict must not modify their inputs")
    np.testing.assert_array_equal(y, y_before, err_msg="predict must not modify y")


def check_causal(cls, params, family=None):
    """Prediction i may use pairs 0..i-1 and x_i only: changing y_j moves nothing at i <= j."""
    ds = _tiny_for(cls, family)
    solver, base = _fit_predict(cls, ds, params)
    P = ds.test.y.shape[1]
    for j in range(P - 1):  # every label: a solver may peek at any position
        y = hide_query(ds.test.y)
        y[:, j] += 10.0
        moved = solver.predict(ds.test.x, y)
        np.testing.assert_allclose(moved[:, : j + 1], base[:, : j + 1], rtol=1e-6, atol=1e-8,
                                   err_msg=f"predictions at k <= {j} changed with y_{j}: the solver reads labels it must not see")


def check_subset_invariance(cls, params, family=None):
    """Predictions for some of the prompts, in another order, are the same rows of the full
    prediction: a solver must not depend on which other prompts share the call."""
    ds = _tiny_for(cls, family)
    solver, full = _fit_predict(cls, ds, params)
    rows = np.array([7, 2, 11, 0])
    part = solver.predict(ds.test.x[rows], hide_query(ds.test.y)[rows])
    np.testing.assert_allclose(part, np.asarray(full)[rows], rtol=1e-6, atol=1e-8,
                               err_msg="predictions for a subset of the prompts differ from the same rows of the full call")


def check_fast_on_tiny(cls, params, family=None, limit=60.0):
    t0 = time.perf_counter()
    _fit_predict(cls, _tiny_for(cls, family), params)
    assert time.perf_counter() - t0 < limit, f"a tiny spec took more than {limit} s"


CHECKS = (check_shapes_and_finite, check_deterministic, check_no_mutation, check_causal, check_subset_invariance,
          check_fast_on_tiny)


def run_check(check, cls, params: dict, family: str) -> None:
    if check is check_shapes_and_finite:
        for sigma in (1.0, 0.0):
            check(cls, params, sigma, family)
    else:
        check(cls, params, family)


def run_checks(cls: type[Solver], params: dict | None = None) -> list[tuple[str, str, str, str]]:
    """(family, check, status, message) for every check on every declared family, status
    PASS, FAIL or SKIP: the report of `mrbench check`."""
    params = {**cls.test_params, **(params or {})}
    out = []
    try:
        check_params(cls, params)
        out.append(("-", "check_params", "PASS", ""))
    except AssertionError as exc:
        return [("-", "check_params", "FAIL", str(exc))]
    for family in declared_families(cls):
        for check in CHECKS:
            try:
                run_check(check, cls, params, family)
                out.append((family, check.__name__, "PASS", ""))
            except SkipSolver as exc:
                out.append((family, check.__name__, "SKIP", str(exc)))
            except Exception as exc:  # an assertion, or the solver's own error: both fail the check
                out.append((family, check.__name__, "FAIL", _failure(exc)))
    return out


def _failure(exc: Exception) -> str:
    """One line: the error and its message's first two lines (numpy's assertions start with a
    blank line and put the check's own words second), or, for a bare assert, the failing line."""
    message = "; ".join([line.strip() for line in str(exc).splitlines() if line.strip()][:2])
    if message:
        return f"{type(exc).__name__}: {message}"
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__} at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}: {frame.line}"
