"""Executors: who runs a run's tasks. Each has one interface, `run(tasks, on_done)`, `stop()`
(interrupted: no worker outlives the run) and `close()`:

- serial.Serial: this process;
- local.LocalWorkers: supervised worker processes (-j N > 1, or a hard timeout);
- dask_cluster.DaskCluster: a Dask distributed cluster.
"""
from __future__ import annotations

from ..errors import UserError
from .serial import Serial
from .tasks import CellJob, Task

EXECUTORS = ("serial", "dask")


def make_executor(executor: str = "serial", jobs: int = 1, timeout: float | None = None, device: str = "cpu",
                  scheduler=None, dry_run: bool = False):
    """The executor for the run's options; local workers start now (their imports overlap
    with planning). A dry run checks the options and gets the serial executor: it runs nothing."""
    if executor not in EXECUTORS:
        raise UserError(f"--executor {executor!r}: valid executors are {', '.join(EXECUTORS)}")
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise UserError(f"-j {jobs!r}: must be an integer >= 1")
    if executor == "dask":
        if scheduler is None:
            raise UserError("--executor dask needs --scheduler tcp://HOST:PORT")
        if jobs > 1:
            raise UserError("-j sets local worker processes; with --executor dask the cluster's workers set the parallelism")
    if dry_run:
        return Serial()
    if executor == "dask":
        from .dask_cluster import DaskCluster

        return DaskCluster(scheduler, timeout)
    if jobs > 1 or timeout is not None:
        if device.startswith("cuda:"):
            raise UserError(f"--device {device} with -j or --timeout: use --device cuda (worker i gets GPU i mod the count)")
        from .local import LocalWorkers

        return LocalWorkers(jobs, timeout, _gpu_count() if device.startswith("cuda") else 0)
    return Serial()


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


__all__ = ["CellJob", "EXECUTORS", "Task", "make_executor"]
