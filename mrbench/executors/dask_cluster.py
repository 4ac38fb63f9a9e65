"""The Dask executor: every task submitted to a Dask distributed cluster (a scheduler address
or a Client); a task with a timeout runs in a supervised worker process on the Dask worker."""
from __future__ import annotations

from typing import Callable

from ..errors import UserError
from ..statuses import FAILED
from ..store import Store
from .local import Slot, thread_env
from .tasks import Task, execute, write_failure


class DaskCluster:
    def __init__(self, scheduler, timeout: float | None):
        self.scheduler, self.timeout = scheduler, timeout

    def run(self, tasks: list[Task], on_done: Callable) -> None:
        run_dask(tasks, self.scheduler, self.timeout, on_done)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


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
    if not isinstance(task, Task):  # a training (training.TrainTask): nothing stored to keep
        task.fail(FAILED, error)
        return [(key.key, FAILED) for key in task.cells]
    store, out = Store(task.out), []
    stored = store.statuses()
    for job in task.cells:
        if job.key in stored and store.created_at(job.key) == task.context.get("created_at"):
            out.append((job.key, stored[job.key]))
        else:
            write_failure(task, job, FAILED, error)
            out.append((job.key, FAILED))
    return out
