"""Where results and checkpoints come from: the version and git commit of the code that made them."""
from __future__ import annotations

import os
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("mrbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"


def device_name(device: str, threads: int | None = None) -> str:
    """What ran or trained it, for run records and sidecars: 'cuda:0 (the GPU's name)', or
    'cpu' (with its thread count when given)."""
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return "cpu" if threads is None else f"cpu ({threads} threads)"


def git_commit() -> str:
    """HEAD of the checkout mrbench runs from, '+dirty' when tracked files differ from it.
    $MRBENCH_GIT_COMMIT, where set, stands for it: reports/publish.py checks the tree is clean
    once, then sets it, so that the results the first suites write (tracked files under
    reports/) do not make the later suites' rows read '+dirty'."""
    if os.environ.get("MRBENCH_GIT_COMMIT"):
        return os.environ["MRBENCH_GIT_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
