"""mrbench: a benchmark suite for solvers of mixtures of linear regressions."""
from importlib.metadata import PackageNotFoundError, version

from .errors import SkipSolver, UserError
from .solver import Solver

try:
    __version__ = version("mrbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"


def run(*args, **kwargs):
    """Run a suite × solvers × seeds; returns the results as a long DataFrame (see runner.run)."""
    from .runner import run as _run

    return _run(*args, **kwargs)


def load_results(path):
    """Read a results directory into a long DataFrame, one row per cell and prefix length."""
    from .store import load_results as _load

    return _load(path)


__all__ = ["Solver", "SkipSolver", "UserError", "run", "load_results", "__version__"]
