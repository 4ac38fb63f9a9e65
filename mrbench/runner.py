"""Expand suite × solvers × seeds into cells, hand them to an executor, summarize.

Each spec's data is generated once per process and every solver gets the same prompts. Cells
of one solver that share a training distribution (specs differing only in test-time shift or
test size) form one task with one fit. A failing cell becomes a failure row and the run goes on.
"""
from __future__ import annotations

import dataclasses
import functools
import glob
import hashlib
import json
import os
import platform
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import pandas as pd

from .atomic import atomic_write
from . import formatting as fmt
from .errors import UserError
from .executors import CellJob, Task, make_executor
from .families import families
from .leaderboard import leaderboard_text
from .provenance import __version__, device_name, git_commit
from .registry import instantiate, load_registry, parse_solver_arg
from .resources import memory_estimate, parse_memory
from .solver import Solver, _source, canonical_params
from .spec import Spec, train_spec
from .statuses import FAILED, FINAL, OK, SKIPPED, TIMEOUT
from .store import Store, check_writable, load_results
from .suites import filter_specs, load_suite


@dataclass
class Cell:
    spec: Spec  # with the replicate's seed
    solver: Solver

    @cached_property
    def key(self) -> str:
        payload = {"spec": dataclasses.asdict(self.spec), "solver": self.solver.name,
                   "params": json.loads(canonical_params(self.solver.get_params())),
                   "code": self.solver.code_version(), "cell_code": _cell_code()}
        artifact = self.solver.artifact(self.spec)
        if artifact is not None:  # absent otherwise: every other cell keeps its key
            payload["artifact"] = artifact
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]

    def job(self, keep_predictions: bool = False) -> CellJob:
        return CellJob(self.key, self.spec, self.solver.name, canonical_params(self.solver.get_params()),
                       keep_predictions)


@functools.cache
def _cell_code() -> str:
    """Data generation and scoring, the data families' included, in every cell's key: a change
    there redoes every cell."""
    modules = [f"mrbench.{m}" for m in ("cells", "data", "prompts", "metrics", "families.base")]
    sources = "".join(_source(m) for m in modules + sorted({type(f).__module__ for f in families().values()}))
    return hashlib.sha256(sources.encode()).hexdigest()[:12]


def resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", device):
        raise UserError(f"--device {device!r}: valid values are auto, cpu, cuda, cuda:N")
    if device == "cpu" or (device == "auto" and not glob.glob("/dev/nvidia[0-9]*") and sys.platform == "linux"):
        return "cpu"  # no NVIDIA device node: no need to import torch to know
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


def parse_duration(text) -> float | None:
    """'90', '90s', '10m', '1.5h' -> seconds."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"--timeout {text!r}: expected a positive duration such as 90s, 10m or 1.5h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


CELL_LIMIT = 100_000  # a grid larger than this runs only with --yes (mrbench run --yes)


def plan(suite="quick", solvers=None, seeds=1, where=None, plugins=(), yes=False,
         memory=None) -> tuple[list[Cell], object]:
    """The cells of a run. A grid of over CELL_LIMIT cells needs `yes`; a spec whose estimated
    memory exceeds `memory` bytes (default: the machine's) is an error naming it."""
    registry = load_registry(plugins)  # first: plugin files may define the data family a suite uses
    suite_obj = load_suite(suite, max_specs=None if yes else CELL_LIMIT)
    specs = filter_specs(suite_obj.specs, where)
    if not specs:
        raise UserError(f"--where {where!r} selects no spec of suite '{suite_obj.name}'")
    limit = parse_memory() if memory is None else memory
    for spec in specs:
        need = memory_estimate(spec)
        if need > limit:
            raise UserError(f"spec {spec.name or spec.canonical()}: a cell needs about {need / 2**30:.1f} GiB "
                            f"(n_test={spec.n_test}, n_train={spec.n_train}, k_max={spec.k_max}, d={spec.d}), "
                            f"more than the {limit / 2**30:.1f} GiB limit (the machine's memory, or --memory-limit)")
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise UserError(f"--seeds {seeds!r}: must be an integer >= 1")
    chosen = {}  # request -> solvers, shared by the specs that ask for the same ones
    cells = []
    for spec in specs:  # the command's --solvers, else the spec's section's, else the suite's
        request = solvers or suite_obj.solvers_for(spec)
        if request not in chosen:
            try:
                chosen[request] = _solvers(registry, request)
            except UserError as exc:
                if solvers:
                    raise
                raise UserError(f"{suite_obj.path}: [sections.{spec.section}] (or [suite]) solvers: {exc}") from None
        named, every = chosen[request]
        cells += [Cell(spec.with_seed(spec.seed + r), solver) for r in range(seeds)
                  for solver in named + [s for s in every if s.applies_to(spec.family)]]
        if len(cells) > CELL_LIMIT and not yes:
            raise UserError(f"this run has over {CELL_LIMIT:,} cells ({len(specs):,} specs x solvers x {seeds} seed(s)): "
                            f"pass --yes to run it")
    return cells, suite_obj


def _solvers(registry, request: str) -> tuple[list[Solver], list[Solver]]:
    """The solvers named in a request, and those 'all' adds. 'all' means every solver that
    applies to each spec's data family; a solver named explicitly runs on every spec (and is
    recorded as not applicable where it is not)."""
    requests = parse_solver_arg(request)
    named = instantiate(registry, [r for r in requests if r[0] != "all"])
    labels = {s.label() for s in named}
    every = [s for s in instantiate(registry, [r for r in requests if r[0] == "all"]) if s.label() not in labels]
    if not named and not every:
        raise UserError(f"--solvers {request!r} names no solver; valid solvers: {', '.join(sorted(registry))}")
    return named, every


def make_tasks(cells: list[Cell], keep=lambda cell: False, **common) -> list[Task]:
    """One task per (training distribution, solver): one fit, then every test spec. `keep`
    says which cells store their predictions."""
    groups: dict[tuple, list[Cell]] = defaultdict(list)
    for c in cells:
        groups[(train_spec(c.spec), c.solver.label())].append(c)
    return [Task(cells=[c.job(keep(c)) for c in group], **common) for group in groups.values()]


def _record_run(out: Path, suite_obj, cells: list[Cell], context: dict, options: dict) -> dict:
    """Provenance of this invocation, and the cells it planned (so a report can list what is missing)."""
    import numpy

    record = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "argv": sys.argv,
              "suite": suite_obj.name,
              # absolute: never read relative to someone else's working directory
              "suite_path": str(Path(suite_obj.path).resolve()), "options": options, "device": context["device"],
              "versions": {"mrbench": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
                           "pandas": pd.__version__, "torch": _version("torch")},
              "platform": platform.platform(), "git_commit": context["git_commit"],
              "cells": [{"key": c.key, "spec": c.spec.name, "seed": c.spec.seed, "label": c.solver.label()} for c in cells]}
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    record["_path"] = str(out / "_runs" / f"{stamp}-{os.getpid()}.json")
    _write_record(record)
    return record


def _write_record(record: dict) -> None:
    path = Path(record["_path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({k: v for k, v in record.items() if k != "_path"}, indent=1, default=str)
    atomic_write(path, lambda f: f.write(text.encode()))


def run(suite: str = "quick", solvers: str | None = None, seeds: int = 1, out: str | Path = "results",
        where: str | None = None, device: str = "auto", dry_run: bool = False, force: bool = False,
        plugins=(), save_predictions: bool = False, progress: bool = True, jobs: int = 1,
        executor: str = "serial", scheduler=None, timeout=None, echo=print,
        yes: bool = False, memory_limit: str | int | None = None) -> pd.DataFrame:
    """Run a suite and return the rows of its cells (stored before or now) as a DataFrame:
    plan the cells, execute those not stored, record the run, summarize. The report is a
    layer above (`mrbench.run` and `mrbench run` write it: report.after_run).

    executor: "serial" (this process; -j N > 1 or a timeout use worker processes) or "dask"
    (`scheduler`: an address such as tcp://host:8786, or a distributed.Client).
    """
    if isinstance(solvers, (list, tuple)):
        solvers = ",".join(solvers)
    timeout, device = parse_duration(timeout), resolve_device(device)
    runner = make_executor(executor, jobs, timeout, device, scheduler, dry_run=dry_run)
    try:
        plugins = tuple(str(Path(p).resolve()) for p in plugins)
        memory = None if memory_limit is None else parse_memory(memory_limit)
        cells, suite_obj = plan(suite, solvers, seeds, where, plugins, yes, memory)
        out = _out_dir(out)
        statuses, todo, keep = _todo(cells, suite_obj, Store(out), force, save_predictions, sweep=not dry_run)
        if dry_run:
            return _dry_run(cells, statuses, todo, out, device, echo, jobs, force)
        if not todo:  # nothing to store: a read-only directory of complete results still reports
            return _summarize(out, cells, [], progress, echo, suite_obj)
        check_writable(out)
        context = {"mrbench_version": __version__, "git_commit": git_commit(), "device": device_name(device),
                   "created_at": datetime.now(timezone.utc)}
        record = _record_run(out, suite_obj, cells, context,
                             {"jobs": jobs, "executor": executor, "timeout": timeout, "seeds": seeds, "where": where})
        tasks = make_tasks(todo, keep, plugins=plugins, out=str(out), device=device, context=context)
        bar, ran = _progress(len(todo), progress), []

        def on_done(key, status):
            ran.append(status)
            bar.update(1)

        started = time.perf_counter()
        runner.run(tasks, on_done)
        record.update(cells_run=len(todo), execution_seconds=round(time.perf_counter() - started, 3),
                      finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        _write_record(record)
    except BaseException:  # Ctrl-C (maybe sent to this process only) or an error: no worker outlives it
        runner.stop()
        raise
    finally:
        runner.close()
    bar.close()
    return _summarize(out, cells, ran, progress, echo, suite_obj)


def _out_dir(out) -> Path:
    out = Path(out).resolve()  # workers elsewhere (Dask) write here too: never their own cwd
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    return out


def _todo(cells: list[Cell], suite_obj, store: Store, force: bool, save_predictions: bool, sweep: bool):
    """The stored cells' statuses, the cells to run (not stored, or stored without predictions
    that are wanted now) and which cells keep their predictions (--save-predictions, or a
    section whose figure needs them, like fig4's probe)."""
    if sweep and store.root.is_dir():
        store.sweep()
    statuses = store.statuses(set_aside=sweep)  # a dry run moves nothing

    def keep(cell):
        return save_predictions or cell.spec.section in suite_obj.save_predictions

    todo = [c for c in cells if force or statuses.get(c.key) not in FINAL
            or (keep(c) and statuses[c.key] == OK and not store.has_predictions(c.key))]
    return statuses, todo, keep


DRY_RUN_ROWS = 1000  # a longer plan prints its first rows and the counts


def _dry_run(cells: list[Cell], statuses: dict, todo: list[Cell], out: Path, device: str, echo,
             jobs: int = 1, force: bool = False) -> pd.DataFrame:
    """The plan, cell by cell: stored, to run, or to run and skip here (no checkpoint, no GPU,
    another family): what a run would do, without running anything."""
    running = {c.key for c in todo}

    def why_not(c: Cell) -> str:
        if not c.solver.applies_to(c.spec.family):
            return f"not applicable to family {c.spec.family}"
        return c.solver.skip_reason(c.spec, device) or ""

    frame = pd.DataFrame([{"spec": c.spec.name, "seed": c.spec.seed, "solver": c.solver.label(),
                           "stored": statuses.get(c.key) in FINAL, "key": c.key,
                           "skips": why_not(c) if c.key in running else ""} for c in cells])
    echo(frame.head(DRY_RUN_ROWS).drop(columns="skips").to_string(index=False))
    if len(frame) > DRY_RUN_ROWS:
        echo(f"... and {len(frame) - DRY_RUN_ROWS:,} more cells")
    skips = frame[frame["skips"] != ""]
    if len(skips):
        echo(f"{len(skips)} of the cells to run will not run here:")
        for (solver, reason), part in skips.groupby(["solver", "skips"], sort=False):
            echo(f"  {solver} on {len(part)} spec(s): {reason.splitlines()[0]}")
    again = int((frame["stored"] & frame["key"].isin(running)).sum())  # --force, or stored without predictions
    why = "stored, rerun by --force" if force else "stored without the predictions their figure needs"
    notes = [f"{len(skips)} of them skip here"] * bool(len(skips)) + [f"{again} of them {why}"] * bool(again)
    detail = f" ({'; '.join(notes)})" if notes else ""
    echo(f"{len(cells)} cells, {len(todo)} to run{detail}, "
         f"{len(cells) - len(todo)} stored in {out}")
    estimate = _time_estimate(frame[frame["key"].isin(running) & (frame["skips"] == "")], out, jobs)
    if estimate:
        echo(estimate)
    return frame


def _time_estimate(to_run: pd.DataFrame, out: Path, jobs: int) -> str:
    """The solver time (fit + predict) the cells to run would take, from the timings this
    directory stored: the same spec, seed and solver run before (under other code, or cut
    short), else the solver's median over the other specs it ran here."""
    if to_run.empty:
        return ""
    stored = load_results(out) if out.is_dir() else pd.DataFrame()
    if stored.empty:
        return f"no time estimate: {out} holds no timings yet"
    cells = stored[stored["status"] == OK].drop_duplicates("cell_key")
    cells = cells.assign(seconds=cells["fit_seconds"].fillna(0) + cells["predict_seconds"].fillna(0))
    same = cells.sort_values("created_at").groupby(["spec", "seed", "label"])["seconds"].last().to_dict()
    median = cells.groupby("label")["seconds"].median().to_dict()
    total, exact, typical = 0.0, 0, 0
    for row in to_run.itertuples(index=False):
        if (row.spec, row.seed, row.solver) in same:
            total, exact = total + same[row.spec, row.seed, row.solver], exact + 1
        elif row.solver in median:
            total, typical = total + median[row.solver], typical + 1
    unknown = len(to_run) - exact - typical
    if not exact + typical:
        return f"no time estimate: none of the {len(to_run)} cells' solvers has a stored timing in {out}"
    with_jobs = f", about {fmt.duration(total / jobs)} with -j {jobs}" if jobs > 1 else ""
    return (f"estimated solver time (fit + predict, data generation not counted): about {fmt.duration(total)}"
            f"{with_jobs}, for {exact + typical} of the {len(to_run)} cells that would run ({exact} timed here "
            f"before, {typical} at their solver's median here{f'; {unknown} never timed here' if unknown else ''})")


def _summarize(out: Path, cells: list[Cell], ran: list[str], progress: bool, echo, suite_obj=None) -> pd.DataFrame:
    """The run's rows, the leaderboard on the console; `attrs` say where they are stored, what
    is missing, whether anything new ran and which suite file the run loaded."""
    results = load_results(out)
    planned = {c.key: c for c in cells}
    results = results[results["cell_key"].isin(planned)].reset_index(drop=True)
    stored = set(results["cell_key"])  # a row of any status: failures and skips say why
    missing = [planned[k] for k in planned if k not in stored]
    results.attrs["missing"] = [c.key for c in missing]
    if progress:
        echo(leaderboard_text(results, Store(out)))
    echo(f"{len(stored)} of {len(planned)} planned cells stored in {out}" + (
        f"; missing: {', '.join(f'{c.spec.name} {c.solver.label()} (seed {c.spec.seed})' for c in missing[:5])}"
        f"{' ...' if len(missing) > 5 else ''}" if missing else ""))
    results.attrs.update(out=str(out), news=any(status != SKIPPED for status in ran),
                         suite_path=getattr(suite_obj, "path", None) or None)
    return results


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="cell", dynamic_ncols=True, file=sys.stderr)


def any_failed(results: pd.DataFrame) -> bool:
    return bool(results.drop_duplicates("cell_key")["status"].isin([FAILED, TIMEOUT]).any())
