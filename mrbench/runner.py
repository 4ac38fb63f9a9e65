"""Expand suite × solvers × seeds into cells, run them, store one file per cell.

Each spec's data is generated once and every solver gets the same prompts. Cells that share a
training distribution (specs that differ only in test-time shift or test size) share one fit.
A failing cell becomes a failure row and the run goes on.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import subprocess
import sys
import traceback
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .data import Dataset, TrainData, make_dataset, make_pool
from .errors import SkipSolver, UserError
from .measure import Meter
from .metrics import nmse_average, nmse_curve, pool_metrics
from .registry import instantiate, load_registry, parse_solver_arg
from .solver import Solver, canonical_params
from .specs import Spec, filter_specs, load_suite
from .store import COLUMNS, Store, load_results

OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass
class Cell:
    spec: Spec  # with the replicate's seed
    solver: Solver

    @property
    def key(self) -> str:
        payload = {"spec": dataclasses.asdict(self.spec), "solver": self.solver.name,
                   "params": json.loads(canonical_params(self.solver.get_params())),
                   "code": self.solver.code_version()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]

    @property
    def train_key(self) -> tuple:
        s = self.spec
        return (s.family, s.d, s.m, s.sigma, s.k_max, s.n_train, s.pool_seed, s.seed)


def resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"--device {device!r}: valid values are auto, cpu, cuda, cuda:N")
    if device == "cpu":
        return "cpu"
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise UserError(f"--device {device}: no CUDA device is available here")
    return device


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu"


def git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _clone(solver: Solver) -> Solver:
    return type(solver)(**solver.get_params())


def _base_row(cell: Cell, context: dict) -> dict:
    s, solver = cell.spec, cell.solver
    row = {f: getattr(s, f) for f in ("family", "d", "m", "sigma", "k_max", "n_train", "n_test",
                                      "shift_kind", "shift_value", "pool_seed", "seed", "suite", "section")}
    row.update(spec=s.name, solver=solver.name, solver_params=canonical_params(solver.get_params()),
               label=solver.label(), solver_family=solver.family, oracle=bool(solver.requires_truth),
               trained=bool(solver.trained), cell_key=cell.key, code_version=solver.code_version(),
               status=OK, error=None, **context)
    return row


def _frame(base: dict, curve: dict | None) -> pd.DataFrame:
    if curve is None:
        frame = pd.DataFrame([{**base, "k": None}])
    else:
        frame = pd.DataFrame({**{k: [v] * len(curve["k"]) for k, v in base.items()}, **curve})
    for col in COLUMNS:
        if col not in frame:
            frame[col] = None
    return frame[COLUMNS]


def run_cell(cell: Cell, ds: Dataset, device: str, context: dict, fits: dict) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Run one cell; never raises for the solver's faults. `fits` caches fitted solvers by
    label within one training distribution."""
    base = _base_row(cell, context)
    solver = cell.solver
    reason = solver.skip_reason(cell.spec, device)
    if reason:
        return _frame({**base, "status": SKIPPED, "error": reason}, None), None
    meter = Meter(device)
    try:
        cached = fits.get(solver.label())
        if cached is None:
            solver = _clone(solver).set_context(seed=cell.spec.seed, device=device)
            with meter.phase("fit"):
                solver.fit(ds.train, ds.truth if solver.requires_truth else None)
            fits[solver.label()] = (solver, meter.seconds["fit"])
        else:
            solver, meter.seconds["fit"] = cached
        x, y = ds.test.x, ds.test.y.copy()
        y[:, -1] = np.nan  # the final query's label is hidden
        with meter.phase("predict"):
            pred = np.asarray(solver.predict(x, y), dtype=np.float64)
        if pred.shape != ds.test.y.shape:
            raise ValueError(f"predict returned shape {pred.shape}, expected {ds.test.y.shape}")
        if not np.isfinite(pred).all():
            raise ValueError(f"predict returned {int((~np.isfinite(pred)).sum())} non-finite values")
    except SkipSolver as exc:
        return _frame({**base, "status": SKIPPED, "error": str(exc)}, None), None
    except Exception as exc:
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        error = f"{type(exc).__name__}: {exc}\n" + "".join(tb[-3:])
        return _frame({**base, "status": FAILED, "error": error, "fit_seconds": meter.seconds.get("fit"),
                       "peak_rss_mb": meter.peak_rss_mb()}, None), None
    nmse, se = nmse_curve(pred, ds.test.y, cell.spec.d)
    avg, avg_se = nmse_average(pred, ds.test.y, cell.spec.d)
    info = dict(solver.info())
    est = info.pop("pool", None)
    recovery = {}
    if est is not None:
        recovery = pool_metrics(ds.truth.pool, np.asarray(est), cell.spec.sigma, ds.truth.pi, info.pop("pi", None))
    base.update(fit_seconds=meter.seconds["fit"], predict_seconds=meter.seconds["predict"],
                peak_rss_mb=meter.peak_rss_mb(), peak_gpu_mb=meter.gpu_mb(), nmse_avg=avg, nmse_avg_se=avg_se,
                iterations=info.pop("iterations", None), converged=info.pop("converged", None),
                info=json.dumps(info, default=float) if info else None, **recovery)
    curve = {"k": np.arange(len(nmse)), "nmse": nmse, "nmse_se": se}
    return _frame(base, curve), pred


def plan(suite="quick", solvers=None, seeds=1, where=None, plugins=()) -> tuple[list[Cell], object]:
    suite_obj = load_suite(suite)
    specs = filter_specs(suite_obj.specs, where)
    if not specs:
        raise UserError(f"--where {where!r} selects no spec of suite '{suite_obj.name}'")
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise UserError(f"--seeds {seeds!r}: must be an integer >= 1")
    registry = load_registry(plugins)
    request = solvers or ",".join(suite_obj.solvers) or "all"
    solver_list = instantiate(registry, parse_solver_arg(request))
    if not solver_list:
        raise UserError(f"--solvers {request!r} names no solver; valid solvers: {', '.join(sorted(registry))}")
    cells = [Cell(spec.with_seed(spec.seed + r), solver)
             for spec in specs for r in range(seeds) for solver in solver_list]
    return cells, suite_obj


def run(suite: str = "quick", solvers: str | None = None, seeds: int = 1, out: str | Path = "results",
        where: str | None = None, device: str = "auto", dry_run: bool = False, force: bool = False,
        plugins=(), save_predictions: bool = False, progress: bool = True, echo=print) -> pd.DataFrame:
    """Run a suite and return the rows of its cells (stored before or now) as a DataFrame."""
    cells, suite_obj = plan(suite, solvers, seeds, where, plugins)
    device = resolve_device(device)
    store = Store(out)
    statuses = store.statuses()
    todo = [c for c in cells if force or statuses.get(c.key) != OK]
    if dry_run:
        frame = pd.DataFrame([{"spec": c.spec.name, "seed": c.spec.seed, "solver": c.solver.label(),
                               "stored": statuses.get(c.key) == OK, "key": c.key} for c in cells])
        echo(frame.to_string(index=False))
        echo(f"{len(cells)} cells, {len(todo)} to run, {len(cells) - len(todo)} stored in {out}")
        return frame
    context = {"mrbench_version": __version__, "git_commit": git_commit(), "device": device_name(device),
               "created_at": None}
    groups: dict[tuple, list[Cell]] = defaultdict(list)
    for c in todo:
        groups[c.train_key].append(c)
    bar = _progress(len(todo), progress)
    for group in groups.values():
        first = group[0].spec
        train = TrainData(dataclasses.replace(first, shift_kind="none", shift_value=0.0),
                          make_pool(first.d, first.m, first.pool_seed))
        fits: dict = {}
        by_spec: dict[Spec, list[Cell]] = defaultdict(list)
        for c in group:
            by_spec[c.spec].append(c)
        for spec, spec_cells in by_spec.items():
            ds = make_dataset(spec, train)
            for cell in spec_cells:
                bar.set_postfix_str(f"{cell.solver.label()} on {spec.name}", refresh=False)
                context["created_at"] = datetime.now(timezone.utc)
                rows, pred = run_cell(cell, ds, device, context, fits)
                store.write(cell.key, rows, pred if save_predictions else None)
                bar.update(1)
    bar.close()
    results = load_results(out)
    results = results[results["cell_key"].isin({c.key for c in cells})].reset_index(drop=True)
    if progress:
        echo(leaderboard_text(results))
    return results


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="cell", dynamic_ncols=True, file=sys.stderr)


def leaderboard(results: pd.DataFrame) -> pd.DataFrame:
    """Per spec: solvers ranked by mean NMSE over k = 1..k_max, with the ratio to the oracle
    posterior mean (averaged over seeds)."""
    cells = results.drop_duplicates("cell_key")
    ok = cells[cells["status"] == OK]
    if ok.empty:
        return pd.DataFrame()
    table = (ok.groupby(["spec", "label"], sort=False)
             .agg(nmse=("nmse_avg", "mean"), se=("nmse_avg_se", "mean"), oracle=("oracle", "first"),
                  fit_s=("fit_seconds", "mean"), predict_s=("predict_seconds", "mean"))
             .reset_index())
    ref = table[table["label"] == "posterior_mean"].set_index("spec")["nmse"]
    table["ratio_to_posterior_mean"] = table["nmse"] / table["spec"].map(ref)
    table["rank"] = table.groupby("spec")["nmse"].rank(method="min").astype(int)
    return table.sort_values(["spec", "rank"]).reset_index(drop=True)


def leaderboard_text(results: pd.DataFrame) -> str:
    table = leaderboard(results)
    cells = results.drop_duplicates("cell_key")
    lines = []
    for spec, part in (table.groupby("spec", sort=False) if not table.empty else []):
        lines.append(f"\n== {spec}")
        view = part.drop(columns=["spec"]).copy()
        view["oracle"] = view["oracle"].map({True: "oracle", False: ""})
        lines.append(view.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    bad = cells[cells["status"] != OK]
    for _, row in bad.iterrows():
        first = (row["error"] or "").splitlines()[0] if row["error"] else ""
        lines.append(f"[{row['status']}] {row['label']} on {row['spec']} (seed {row['seed']}): {first}")
    counts = cells["status"].value_counts().to_dict()
    lines.append("cells: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return "\n".join(lines)
