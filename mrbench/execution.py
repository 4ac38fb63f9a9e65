"""Executing tasks: in this process, in supervised worker processes (-j N, hard timeouts), or on
a Dask distributed cluster.

A task is the cells of one solver on one training distribution (one fit, several test specs).
Whoever runs a task writes its cells to the store; the parent only collects statuses. A worker
process is a plain subprocess speaking over a socket pair, so it can be killed at a cell's hard
timeout (and replaced), and it can be started from inside a Dask worker too.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Callable

from .cells import base_row, frame, run_cell
from .data import TrainData, make_dataset, make_pool
from .errors import UserError
from .metrics import prompt_nmse
from .registry import instantiate, load_registry
from .specs import Spec, train_spec
from .statuses import FAILED, TIMEOUT
from .store import Store


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

    def rest(self, done: set[str]) -> "Task":
        return dataclasses.replace(self, cells=[c for c in self.cells if c.key not in done])


# ---- in this process --------------------------------------------------------------------------

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
    tkey = train_spec(spec)
    if tkey not in _trains:
        # A test dataset holds its training set: drop them together, or cached test sets would
        # keep old training sets (300 MB at n = 60000) alive.
        _trains.clear()
        _tests.clear()
        _trains[tkey] = TrainData(tkey, make_pool(spec.d, spec.m, spec.pool_seed))
    if spec not in _tests:
        _tests[spec] = make_dataset(spec, _trains[tkey])
        while len(_tests) > 16:
            _tests.popitem(last=False)
    return _tests[spec]


def execute(task: Task, on_start: Callable = lambda key: None, on_done: Callable = lambda key, status: None):
    """Run a task's cells in order in this process, writing each to the store."""
    store, fits = Store(task.out), {}
    for job in task.cells:
        on_start(job.key)
        rows, pred = run_cell(job.key, job.spec, lambda: _dataset(job.spec), _solver(task, job), task.device,
                              task.context, fits)
        scores = None if pred is None else prompt_nmse(pred, _dataset(job.spec).test.y, job.spec.d)
        store.write(job.key, rows, pred if job.keep_predictions else None, scores)
        on_done(job.key, rows["status"].iloc[0])


def write_failure(task: Task, job: CellJob, status: str, error: str) -> None:
    solver = _solver(task, job)
    Store(task.out).write(job.key, frame({**base_row(job.key, job.spec, solver, task.context),
                                          "status": status, "error": error}))


# ---- supervised worker processes --------------------------------------------------------------

class Slot:
    """One worker subprocess, reused across tasks, killed and replaced when a cell overruns."""

    def __init__(self, env: dict | None = None, start: bool = False):
        self.env, self.proc, self.conn = env or {}, None, None
        self.stopping = False  # set by stop(): the worker's death is ours, not the cell's
        self.lock = threading.Lock()  # stop() and starting a worker exclude each other
        if start:  # start now: the worker's imports overlap with the caller's planning
            self._start()

    def _start(self):
        a, b = socket.socketpair()
        self.proc = subprocess.Popen([sys.executable, "-m", "mrbench.execution", str(b.fileno())],
                                     pass_fds=(b.fileno(),), env={**os.environ, **self.env})
        b.close()
        self.conn = Connection(a.detach())

    def close(self):
        proc = self.proc  # the slot's thread may clear self.proc meanwhile
        if proc is not None:
            try:
                self.conn.send(None)
                proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            self.proc = None

    def stop(self):
        """Kill the worker now (the run was interrupted): its cell in flight is not stored,
        and the slot starts no other."""
        with self.lock:
            self.stopping = True
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def _kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.conn.close()
        self.proc = None

    def run(self, task: Task, timeout: float | None, on_done: Callable) -> None:
        done: set[str] = set()
        while len(done) < len(task.cells):
            with self.lock:
                if self.stopping:
                    raise KeyboardInterrupt
                if self.proc is None:
                    self._start()
            todo = task.rest(done)
            self.conn.send(todo)
            current, started = None, None
            while True:
                wait = 1.0 if current is None or timeout is None else max(0.0, min(1.0, started + timeout - time.monotonic()))
                if self.conn.poll(wait):
                    try:
                        msg = self.conn.recv()
                    except (EOFError, OSError):
                        msg = None
                    if msg is None:  # the worker died (out of memory, a crash in native code)
                        self._died(task, current, done, on_done)
                        break
                    if msg[0] == "start":
                        current, started = msg[1], time.monotonic()
                    elif msg[0] == "done":
                        done.add(msg[1])
                        on_done(msg[1], msg[2])
                        current = None
                    else:  # "task"
                        return
                elif current is not None and timeout is not None and time.monotonic() - started >= timeout:
                    self._kill()
                    job = next(c for c in todo.cells if c.key == current)
                    write_failure(task, job, TIMEOUT, f"killed after the {timeout:g} s timeout")
                    done.add(current)
                    on_done(current, TIMEOUT)
                    break
                elif self.proc.poll() is not None:
                    self._died(task, current, done, on_done)
                    break

    def _died(self, task, current, done, on_done):
        code = self.proc.wait()
        self.conn.close()
        self.proc = None
        if code == -signal.SIGINT or self.stopping:  # interrupted, not a failure of the cell
            raise KeyboardInterrupt
        if current is None:  # died outside a cell (while starting, say): charge the next cell, so a
            current = next(c.key for c in task.cells if c.key not in done)  # broken worker cannot loop
        job = next(c for c in task.cells if c.key == current)
        write_failure(task, job, FAILED, f"the worker process died (exit code {code})")
        done.add(current)
        on_done(current, FAILED)


def _worker_main(fd: int) -> None:
    conn = Connection(fd)
    load_registry()  # import the solvers, and torch, before the first task arrives
    import torch  # noqa: F401
    try:
        while True:
            task = conn.recv()
            if task is None:
                return
            execute(task, on_start=lambda key: conn.send(("start", key)),
                    on_done=lambda key, status: conn.send(("done", key, status)))
            conn.send(("task",))
    except (EOFError, OSError):  # the parent is gone (killed): nobody to report to
        return


def thread_env(threads: int) -> dict:
    """Limit a worker's BLAS and torch threads (read by the libraries when they load)."""
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n, "MRBENCH_TORCH_THREADS": n}


def start_slots(jobs: int, gpus: int = 0) -> list[Slot]:
    """`jobs` worker processes, BLAS threads split between them; GPU slots see one GPU each."""
    threads_each = max(1, (os.cpu_count() or 1) // jobs)
    slots = []
    for i in range(jobs):
        env = thread_env(threads_each)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
        slots.append(Slot(env, start=True))
    return slots


class _Board:
    """Hands out tasks so that each worker keeps to one training distribution (its data stays
    cached there) and workers start on different ones."""

    def __init__(self, tasks: list[Task]):
        self.tasks, self.lock, self.busy = list(tasks), threading.Lock(), {}

    def take(self, worker: int) -> Task | None:
        with self.lock:
            if not self.tasks:
                return None
            mine = self.busy.get(worker)
            others = {g for w, g in self.busy.items() if w != worker}
            pick = (next((t for t in self.tasks if _group(t) == mine), None)
                    or next((t for t in self.tasks if _group(t) not in others), None) or self.tasks[0])
            self.tasks.remove(pick)
            self.busy[worker] = _group(pick)
            return pick


def _group(task: Task):
    return train_spec(task.cells[0].spec)


def run_local(tasks: list[Task], slots: list[Slot], timeout: float | None, on_done: Callable) -> None:
    """Feed the tasks to the slots, one thread per slot; closes the slots."""
    board = _Board(tasks)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def done(key, status):
        with lock:
            on_done(key, status)

    def slot_loop(i, slot):
        try:
            while (task := board.take(i)) is not None:
                slot.run(task, timeout, done)
        except BaseException as exc:  # surface in the main thread
            errors.append(exc)
        finally:
            slot.close()

    workers = [threading.Thread(target=slot_loop, args=(i, s), daemon=True) for i, s in enumerate(slots)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]


def _dask_task(task: Task, timeout: float | None) -> list[tuple[str, str]]:
    statuses: list[tuple[str, str]] = []
    if timeout is None:
        execute(task, on_done=lambda k, s: statuses.append((k, s)))
    else:
        slot = Slot(thread_env(1))
        try:
            slot.run(task, timeout, lambda k, s: statuses.append((k, s)))
        finally:
            slot.close()
    return statuses


def run_dask(tasks: list[Task], scheduler, timeout: float | None, on_done: Callable) -> None:
    """Submit every task to a Dask distributed cluster (a scheduler address or a Client)."""
    from distributed import Client, as_completed

    try:
        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"--scheduler {scheduler!r}: cannot connect to a Dask scheduler: {exc}") from None
    try:
        gpu = {"GPU": 1}
        futures = {client.submit(_dask_task, t, timeout, pure=False,
                                 resources=gpu if t.device.startswith("cuda") else None): t for t in tasks}
        for fut in as_completed(futures):
            try:
                statuses = fut.result()
            except Exception as exc:  # the task itself broke (a worker lost, say): its cells fail
                statuses = _fail_unwritten(futures[fut], f"the Dask task failed: {type(exc).__name__}: {exc}")
            for key, status in statuses:
                on_done(key, status)
    finally:
        if client is not scheduler:
            client.close()


def _fail_unwritten(task: Task, error: str) -> list[tuple[str, str]]:
    """After a task broke: its cells this run wrote keep their rows, the others (absent, or
    left from an earlier run) become failures."""
    store, out = Store(task.out), []
    stored = store.statuses()
    for job in task.cells:
        if job.key in stored and store.created_at(job.key) == task.context.get("created_at"):
            out.append((job.key, stored[job.key]))
        else:
            write_failure(task, job, FAILED, error)
            out.append((job.key, FAILED))
    return out


if __name__ == "__main__":
    # Ctrl-C in the terminal reaches the workers too: die quietly, the parent sees -SIGINT
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if "MRBENCH_TORCH_THREADS" in os.environ:
        import torch

        torch.set_num_threads(int(os.environ["MRBENCH_TORCH_THREADS"]))
    _worker_main(int(sys.argv[1]))
