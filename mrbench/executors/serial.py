"""The serial executor: every task in this process, one after the other."""
from __future__ import annotations

from typing import Callable

from .tasks import Runnable


class Serial:
    def run(self, tasks: list[Runnable], on_done: Callable) -> None:
        for task in tasks:
            task.execute(lambda key: None, on_done)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass
