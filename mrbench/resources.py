"""What a run will need, estimated before it starts: memory per cell, and the limit it must fit."""
from __future__ import annotations

import os
import re

from .data import DEFAULT_N_TRAIN
from .errors import UserError
from .spec import Spec


def memory_estimate(spec: Spec) -> int:
    """Bytes a cell of `spec` may hold at its peak, from the sizes of its arrays: test prompts
    (x float32, y float64) with the float64 copies that solvers and scoring make, and the fixed
    training set a fitted solver reads. The factors are measured peaks: OLS on 20000 test prompts
    at d = 20, k_max = 60 added 615 MB (about 24 bytes per x entry), EM's 15000 training prompts
    about 200 MB (about 11). Plus 0.5 GB for the process and its libraries."""
    P = spec.k_max + 1
    train = spec.n_train if spec.n_train is not None else DEFAULT_N_TRAIN
    return int(spec.n_test * P * (24 * spec.d + 64) + train * P * (12 * spec.d + 16) + 5e8)


def parse_memory(text=None) -> int:
    """--memory-limit ('8G', '512M', bytes), else the machine's physical memory."""
    if text is None:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return 2**62
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)[bB]?\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"--memory-limit {text!r}: expected a size such as 8G or 512M")
    return int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2).upper() or " "))
