"""Tasks and how one runs in a process: whichever executor runs a task writes its cells to
the store; the parent only collects statuses.

A task is the cells of one solver on one training distribution (one fit, several test specs).
The executors run anything shaped like Task (`Runnable`): a checkpoint's training
(training.TrainTask) is the other kind.
"""
from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Protocol

from ..cells import base_row, frame, run_cell
from ..data import make_dataset, train_data
from ..registry import instantiate, load_registry
from ..spec import Spec, train_spec
from ..statuses import FAILED
from ..store import Store


class Runnable(Protocol):
    """What an executor runs: `cells`, each with a `key` (what it reports statuses of), on `device`."""
    cells: list
    device: str

    def train_spec(self) -> Spec:
        """The training distribution, so that a worker keeps its training set for the next task."""

    def rest(self, done: set[str]) -> "Runnable":
        """Itself without the cells in `done` (a worker restarted mid-task continues it)."""

    def execute(self, on_start: Callable, on_done: Callable) -> None:
        """Run in this process: on_start(key) before each cell, on_done(key, status) after."""

    def fail(self, key: str, status: str, error: str) -> None:
        """Record that cell `key` ended with `status` (a timeout, a worker lost) without running."""

    def fail_unwritten(self, error: str) -> list[tuple[str, str]]:
        """After the task broke outside any cell: each cell's status, recording the failures."""


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

    def execute(self, on_start: Callable = lambda key: None, on_done: Callable = lambda key, status: None) -> None:
        """Run the cells in order, writing each to the store."""
        store, fits = Store(self.out), {}
        for job in self.cells:
            on_start(job.key)
            rows, pred, scores = run_cell(job.key, job.spec, lambda: _dataset(job.spec), _solver(self, job),
                                          self.device, self.context, fits)
            store.write(job.key, rows, pred if job.keep_predictions else None, scores)
            on_done(job.key, rows["status"].iloc[0])

    def fail(self, key: str, status: str, error: str) -> None:
        job = next(c for c in self.cells if c.key == key)
        Store(self.out).write(job.key, frame({**base_row(job.key, job.spec, _solver(self, job), self.context),
                                              "status": status, "error": error}))

    def fail_unwritten(self, error: str) -> list[tuple[str, str]]:
        """The cells this run wrote keep their rows; the others (absent, or left from an earlier
        run) become failures."""
        store, out = Store(self.out), []
        stored = store.statuses()
        for job in self.cells:
            if job.key in stored and store.created_at(job.key) == self.context.get("created_at"):
                out.append((job.key, stored[job.key]))
            else:
                self.fail(job.key, FAILED, error)
                out.append((job.key, FAILED))
        return out


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
