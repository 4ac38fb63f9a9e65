"""One cell: fit (or reuse a fit), predict on the test prompts, score, and shape the rows."""
from __future__ import annotations

import json
import traceback
from typing import Callable

import numpy as np
import pandas as pd

from .data import Dataset
from .errors import SkipSolver
from .families import family_of, own_fields
from .measure import Meter
from .metrics import nmse_average, nmse_curve, pool_metrics, prompt_nmse, recovery_curve
from .prompts import hide_query
from .solver import Solver, canonical_params
from .spec import Spec
from .statuses import FAILED, NOT_APPLICABLE, OK, SKIPPED
from .store import schema


def base_row(key: str, spec: Spec, solver: Solver, context: dict) -> dict:
    row = dict.fromkeys(own_fields()) | spec.fields()
    del row["name"]
    row["pi"] = "uniform" if spec.pi is None else json.dumps(list(spec.pi))
    row.update(spec=spec.name, solver=solver.name, solver_params=canonical_params(solver.get_params()),
               label=solver.label(), solver_group=solver.group, oracle=bool(solver.requires_truth),
               trained=bool(solver.trained), cell_key=key, code_version=solver.code_version(),
               status=OK, error=None, **context)
    return row


def frame(base: dict, curve: dict | None = None) -> pd.DataFrame:
    """The cell's rows: one per k, or one row with k null for a cell without a curve."""
    if curve is None:
        out = pd.DataFrame([{**base, "k": None}])
    else:
        out = pd.DataFrame({**{k: [v] * len(curve["k"]) for k, v in base.items()}, **curve})
    columns = schema().names
    unknown = [c for c in out if c not in columns]
    if unknown:  # never dropped in silence: a family declares its score columns (Family.scores)
        raise ValueError(f"no result column {', '.join(map(repr, unknown))}: a data family's extra scores must be "
                         "declared in its `scores`")
    for col in columns:
        if col not in out:
            out[col] = None
    return out[columns]


def run_cell(key: str, spec: Spec, dataset: Callable[[], Dataset], solver: Solver, device: str, context: dict,
             fits: dict) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray | None]:
    """Run one cell: its rows, its predictions and each test prompt's NMSE (None when it did
    not predict); never raises for the solver's faults. `solver` is the cell's own, unfitted
    instance. `fits` caches fitted solvers by label within one training distribution, so
    shifted test specs reuse one fit; oracles are fitted afresh (their truth can describe
    the test prompts)."""
    base = base_row(key, spec, solver, context)
    if not solver.applies_to(spec.family):
        return frame({**base, "status": NOT_APPLICABLE,
                      "error": f"applies to family {' or '.join(solver.families)}, not {spec.family}"}), None, None
    meter = Meter(device)
    try:
        reason = solver.skip_reason(spec, device)
        if reason:
            return frame({**base, "status": SKIPPED, "error": reason}), None, None
        import torch  # noqa: F401  (imported lazily elsewhere: about 1.5 s no solver's fit should pay)

        ds = dataset()  # generated (or taken from the cache) only for a cell that runs
        cached = None if solver.requires_truth else fits.get(solver.label())
        if cached is None:
            solver.set_context(seed=ds.spec.seed, device=device)
            drawn = ds.train.generation_seconds
            with meter.phase("fit"):
                solver.fit(ds.train, ds.truth if solver.requires_truth else None)
            # the shared training set is data, not this solver's work
            meter.seconds["fit"] -= ds.train.generation_seconds - drawn
            fits[solver.label()] = (solver, meter.seconds["fit"])
        else:
            solver, meter.seconds["fit"] = cached
        with meter.phase("predict"):
            pred = np.asarray(solver.predict(ds.test.x, hide_query(ds.test.y)), dtype=np.float64)
        if pred.shape != ds.test.y.shape:
            raise ValueError(f"predict returned shape {pred.shape}, expected {ds.test.y.shape}")
        if not np.isfinite(pred).all():
            raise ValueError(f"predict returned {int((~np.isfinite(pred)).sum())} non-finite values")
        row = _scored(base, solver, ds, pred, meter)  # calls the solver's info()
        curve = _curve(ds, pred, solver)
    except SkipSolver as exc:
        return frame({**base, "status": SKIPPED, "error": str(exc)}), None, None
    except Exception as exc:
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        error = f"{type(exc).__name__}: {exc}\n" + "".join(tb[-3:])
        return frame({**base, "status": FAILED, "error": error, "fit_seconds": meter.seconds.get("fit"),
                      "peak_rss_mb": meter.peak_rss_mb()}), None, None
    return frame(row, curve), pred, prompt_nmse(pred, ds.test.y, ds.spec.d)


def _curve(ds: Dataset, pred: np.ndarray, solver: Solver) -> dict:
    nmse, se = nmse_curve(pred, ds.test.y, ds.spec.d)
    curve = {"k": np.arange(len(nmse)), "nmse": nmse, "nmse_se": se}
    family = family_of(ds.spec)
    scores = family.curve_scores(ds, pred)
    undeclared = sorted(set(scores) - set(family.scores))
    if undeclared:
        raise ValueError(f"data family '{family.name}' returned score column(s) {', '.join(undeclared)} that its "
                         f"`scores` does not declare (declared: {', '.join(family.scores) or 'none'})")
    curve.update(scores)
    est = solver.estimated_components()
    if est is not None and ds.test.betas is not None and est.shape[2:] == ds.test.betas.shape[1:]:
        curve["recovery_error"], curve["recovery_error_se"] = recovery_curve(est, ds.test.betas)
    return curve


def _scored(base: dict, solver: Solver, ds: Dataset, pred: np.ndarray, meter: Meter) -> dict:
    avg, avg_se = nmse_average(pred, ds.test.y, ds.spec.d)
    info = dict(solver.info())
    est = info.pop("pool", None)
    recovery = {}
    if est is not None:
        recovery = pool_metrics(ds.truth.pool, np.asarray(est), ds.spec.sigma, ds.truth.pi, info.pop("pi", None))
    return {**base, "fit_seconds": meter.seconds["fit"], "predict_seconds": meter.seconds["predict"],
            "peak_rss_mb": meter.peak_rss_mb(), "peak_gpu_mb": meter.gpu_mb(), "nmse_avg": avg,
            "nmse_avg_se": avg_se, "iterations": info.pop("iterations", None),
            "converged": info.pop("converged", None),
            "info": json.dumps(info, default=_jsonable) if info else None, **recovery}


def _jsonable(value):
    return value.tolist() if isinstance(value, np.ndarray) else float(value)
