"""The Dask executor: every task submitted to a Dask distributed cluster (a scheduler address
or a Client); a task with a timeout runs in a supervised worker process on the Dask worker."""
from __future__ import annotations

from typing import Callable

from ..errors import UserError
from .local import Slot, thread_env
from .tasks import Runnable


class DaskCluster:
    def __init__(self, scheduler, timeout: float | None):
        self.scheduler, self.timeout = scheduler, timeout

    def run(self, tasks: list[Runnable], on_done: Callable) -> None:
        run_dask(tasks, self.scheduler, self.timeout, on_done)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


def _dask_task(task: Runnable, timeout: float | None) -> list[tuple[str, str]]:
    statuses: list[tuple[str, str]] = []
    if timeout is None:
        task.execute(lambda key: None, lambda k, s: statuses.append((k, s)))
    else:
        slot = Slot(thread_env(1))
        try:
            slot.run(task, timeout, lambda k, s: statuses.append((k, s)))
        finally:
            slot.close()
    return statuses


def run_dask(tasks: list[Runnable], scheduler, timeout: float | None, on_done: Callable) -> None:
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
                statuses = futures[fut].fail_unwritten(f"the Dask task failed: {type(exc).__name__}: {exc}")
            for key, status in statuses:
                on_done(key, status)
    finally:
        if client is not scheduler:
            client.close()
