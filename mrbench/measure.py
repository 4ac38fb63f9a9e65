"""Wall time (GPU synchronized) and peak memory of one phase of a cell."""
from __future__ import annotations

import resource
import time
from contextlib import contextmanager


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0): the peak is then this cell's own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # lifetime peak, KiB on Linux


class Meter:
    """Times phases and tracks the peak memory over all of them."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.seconds: dict[str, float] = {}
        self.peak_gpu_mb = float("nan")
        _reset_peak_rss()
        if device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats()

    @contextmanager
    def phase(self, name: str):
        _sync(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            _sync(self.device)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def peak_rss_mb(self) -> float:
        return _peak_rss_mb()

    def gpu_mb(self) -> float:
        if self.device.startswith("cuda"):
            import torch

            return torch.cuda.max_memory_allocated() / 2**20
        return float("nan")
