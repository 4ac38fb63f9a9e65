"""mrbench: a benchmark suite for solvers of mixtures of linear regressions."""
from .errors import SkipSolver, UserError
from .provenance import __version__
from .solver import Solver


def run(*args, report: bool = True, **kwargs):
    """Run a suite × solvers × seeds; returns the results as a long DataFrame (see runner.run),
    and with `report` writes the directory's HTML report (report.after_run)."""
    from .runner import run as _run

    results = _run(*args, **kwargs)
    if report and not kwargs.get("dry_run"):
        from .report import after_run

        after_run(results, kwargs.get("echo", print))
    return results


def load_results(path):
    """Read a results directory into a long DataFrame, one row per cell and prefix length."""
    from .store import load_results as _load

    return _load(path)


def leaderboards(path, where: str | None = None, solvers: str | None = None):
    """The leaderboards of a results directory as a DataFrame: per spec and solver the rank
    (paired over prompts), mean NMSE, SE, excess over and ratio to the family's Bayes reference;
    `where` and `solvers` as in `mrbench leaderboard`."""
    from .tables import board

    return board(path, where, solvers)


def scorecard(path, suites=(), where: str | None = None, solvers: str | None = None):
    """The claims scorecard of a results directory as a DataFrame: per claim (and model variant)
    its source, the measured value with its interval, the threshold, the verdict and the quote.
    `suites`: suite files (or built-in names) whose claims to score, else the built-in suites
    the results name; `where` and `solvers` as in `mrbench report`."""
    from .report import verdicts
    from .tables import claims_table

    return claims_table(verdicts(path, suites, where, solvers))


def compare(a, b, where: str | None = None, solvers: str | None = None):
    """The cells two results directories both hold: NMSE in each, B / A and the paired change."""
    from .tables import compare as _compare

    return _compare(a, b, where, solvers)


__all__ = ["Solver", "SkipSolver", "UserError", "run", "load_results", "leaderboards", "scorecard", "compare", "__version__"]
