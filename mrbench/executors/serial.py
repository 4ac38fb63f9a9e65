"""The serial executor: every task in this process, one after the other."""
from __future__ import annotations

from typing import Callable

from .tasks import Task, execute


class Serial:
    def run(self, tasks: list[Task], on_done: Callable) -> None:
        for task in tasks:
            execute(task, on_done=on_done)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass
