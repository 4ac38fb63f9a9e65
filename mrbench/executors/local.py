"""Supervised worker processes (-j N, hard timeouts). A worker is a plain subprocess speaking
over a socket pair, so it can be killed at a cell's hard timeout (and replaced), and it can be
started from inside a Dask worker too. Workers start when the executor is made, so their
imports overlap with the caller's planning."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Callable

from ..errors import UserError
from ..registry import load_registry
from ..statuses import FAILED, TIMEOUT
from .tasks import Runnable


class LocalWorkers:
    def __init__(self, jobs: int, timeout: float | None, gpus: int = 0):
        self.timeout, self.slots = timeout, start_slots(jobs, gpus)

    def run(self, tasks: list[Runnable], on_done: Callable) -> None:
        run_local(tasks, self.slots, self.timeout, on_done)

    def stop(self) -> None:
        for slot in self.slots:
            slot.stop()

    def close(self) -> None:
        for slot in self.slots:
            slot.close()


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
        self.proc = subprocess.Popen([sys.executable, "-m", "mrbench.executors.local", str(b.fileno())],
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
            kill_tree(proc.pid)
            proc.wait()

    def _kill(self):
        """The worker and every process it started, also those that left its process group
        or session (setsid): the worker is their subreaper, so orphans stay its descendants."""
        kill_tree(self.proc.pid)
        self.proc.wait()
        self.conn.close()
        self.proc = None

    def run(self, task: Runnable, timeout: float | None, on_done: Callable) -> None:
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
                    elif msg[0] == "error":  # the store cannot be written: the run stops, in one line
                        raise UserError(msg[1])
                    else:  # "task"
                        return
                elif current is not None and timeout is not None and time.monotonic() - started >= timeout:
                    self._kill()
                    task.fail(current, TIMEOUT, f"killed after the {timeout:g} s timeout")
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
        task.fail(current, FAILED, f"the worker process died (exit code {code})")
        done.add(current)
        on_done(current, FAILED)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (found through /proc; elsewhere, the process)."""
    for _ in range(3):  # a descendant may fork while we walk: walk again
        victims = _descendants(pid)
        for p in victims:
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if not victims:
            break
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdecimal()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":  # a zombie is gone already
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _become_subreaper() -> None:
    """Linux: orphans of this process's descendants are reparented to it, not to init, so a
    timeout kill finds them (prctl PR_SET_CHILD_SUBREAPER)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
        except (OSError, AttributeError):
            pass


def _worker_main(fd: int) -> None:
    _become_subreaper()
    conn = Connection(fd)
    load_registry()  # import the solvers, and torch, before the first task arrives
    import torch  # noqa: F401
    try:
        while True:
            task = conn.recv()
            if task is None:
                return
            try:
                task.execute(on_start=lambda key: conn.send(("start", key)),
                             on_done=lambda key, status: conn.send(("done", key, status)))
            except UserError as exc:  # a write error: the parent says it, once
                conn.send(("error", str(exc)))
                continue
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

    def __init__(self, tasks: list[Runnable]):
        self.tasks, self.lock, self.busy = list(tasks), threading.Lock(), {}

    def take(self, worker: int) -> Runnable | None:
        with self.lock:
            if not self.tasks:
                return None
            mine = self.busy.get(worker)
            others = {g for w, g in self.busy.items() if w != worker}
            pick = (next((t for t in self.tasks if t.train_spec() == mine), None)
                    or next((t for t in self.tasks if t.train_spec() not in others), None) or self.tasks[0])
            self.tasks.remove(pick)
            self.busy[worker] = pick.train_spec()
            return pick


def run_local(tasks: list[Runnable], slots: list[Slot], timeout: float | None, on_done: Callable) -> None:
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


if __name__ == "__main__":
    # Ctrl-C in the terminal reaches the workers too: die quietly, the parent sees -SIGINT
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if "MRBENCH_TORCH_THREADS" in os.environ:
        import torch

        torch.set_num_threads(int(os.environ["MRBENCH_TORCH_THREADS"]))
    _worker_main(int(sys.argv[1]))
