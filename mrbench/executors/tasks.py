"""Tasks and how one runs in a process: whichever executor runs a task writes its cells to
the store; the parent only collects statuses.

A task is the cells of one solver on one training distribution (one fit, several test specs).
"""
from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from ..cells import base_row, frame, run_cell
from ..data import make_dataset, train_data
from ..registry import instantiate, load_registry
from ..spec import Spec, train_spec
from ..store import Store


@dataclass(frozen=True)
class CellJob:
    key: str
    spec: Spec
    solver: str
    params: str  # canonical JSON
    keep_predictions: bool = False


@dataclass
class Task:
    cells: list[CellJob]
    plugins: tuple[str, ...]
    out: str
    device: str
    context: dict

    def train_spec(self) -> Spec:
        """The training distribution its cells share (one per task)."""
        return train_spec(self.cells[0].spec)

    def rest(self, done: set[str]) -> "Task":
        return dataclasses.replace(self, cells=[c for c in self.cells if c.key not in done])


_registries: dict = {}
_trains: dict = {}
_tests: OrderedDict = OrderedDict()


def _solver(task: Task, job: CellJob):
    if task.plugins not in _registries:
        _registries[task.plugins] = load_registry(task.plugins)
    return instantiate(_registries[task.plugins], [(job.solver, json.loads(job.params))])[0]


def _dataset(spec: Spec):
    """Datasets are cached per process: the current training distribution's training set (the
    big one) and the test sets of its last few specs."""
    train = train_spec(spec)
    if train not in _trains:
        # A test dataset holds its training set: drop them together, or cached test sets would
        # keep old training sets (300 MB at n = 60000) alive.
        _trains.clear()
        _tests.clear()
        _trains[train] = train_data(spec)
    if spec not in _tests:
        _tests[spec] = make_dataset(spec, _trains[train])
        while len(_tests) > 16:
            _tests.popitem(last=False)
    return _tests[spec]


def execute(task: Task, on_start: Callable = lambda key: None, on_done: Callable = lambda key, status: None):
    """Run a task's cells in order in this process, writing each to the store. A task of
    another kind (a checkpoint's training: training.TrainTask) runs itself."""
    if not isinstance(task, Task):
        return task.execute(on_start, on_done)
    store, fits = Store(task.out), {}
    for job in task.cells:
        on_start(job.key)
        rows, pred, scores = run_cell(job.key, job.spec, lambda: _dataset(job.spec), _solver(task, job),
                                      task.device, task.context, fits)
        store.write(job.key, rows, pred if job.keep_predictions else None, scores)
        on_done(job.key, rows["status"].iloc[0])


def write_failure(task: Task, job: CellJob, status: str, error: str) -> None:
    if not isinstance(task, Task):  # a training: its saved state is its record
        return task.fail(status, error)
    solver = _solver(task, job)
    Store(task.out).write(job.key, frame({**base_row(job.key, job.spec, solver, task.context),
                                          "status": status, "error": error}))
