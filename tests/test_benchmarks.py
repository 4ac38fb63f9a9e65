"""Every asv benchmark runs: its setup and body once, at the smallest value of each parameter
(every value of a solver-name parameter, so each registered solver is benchmarked) on tiny
data (MRBENCH_BENCH_SCALE). What `asv run --quick` would find broken fails here, in seconds
rather than the quarter of an hour a quick asv pass takes on 2 cores."""
import importlib
import inspect
import itertools
import pkgutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

PREFIXES = ("time_", "peakmem_", "mem_", "track_", "timeraw_")


def _benchmarks():
    import benchmarks

    found = []
    for info in pkgutil.iter_modules(benchmarks.__path__):
        module = importlib.import_module(f"benchmarks.{info.name}")
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and obj.__module__ == module.__name__:
                methods = [m for m in vars(obj) if m.startswith(PREFIXES)]
                found += [(obj, m) for m in methods]
            elif inspect.isfunction(obj) and name.startswith(PREFIXES) and obj.__module__ == module.__name__:
                found.append((obj, None))
    return found


def _param_sets(owner):
    params = getattr(owner, "params", None)
    if params is None:
        return [()]
    if not (isinstance(params, tuple) or (params and isinstance(params[0], list))):
        params = (params,)
    axes = []
    for values in params:
        names = [v for v in values if isinstance(v, str)]
        axes.append(values if names else [min(values)])  # every solver; the smallest size
    return list(itertools.product(*axes))


@pytest.fixture(scope="module", autouse=True)
def tiny(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MRBENCH_BENCH_SCALE", "0.02")
    mp.setenv("MRBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


def test_benchmarks_are_found():
    names = {f"{o.__name__}.{m}" for o, m in _benchmarks()}
    assert {"PerPrompt.time_predict", "TrainedFit.time_fit", "StoreIO.time_read"} <= names


@pytest.mark.parametrize("owner, method", _benchmarks(), ids=lambda v: getattr(v, "__name__", v))
def test_benchmark_runs_once(owner, method):
    if method is None:  # a module-level benchmark function
        owner()
        return
    cached = owner().setup_cache() if hasattr(owner, "setup_cache") else None
    for args in _param_sets(owner):
        bench = owner()
        args = ((cached,) if cached is not None else ()) + tuple(args)
        try:
            if hasattr(bench, "setup"):
                bench.setup(*args)
        except NotImplementedError:  # asv's way to skip (no CUDA device, say)
            continue
        try:
            getattr(bench, method)(*args)
        finally:
            if hasattr(bench, "teardown"):
                bench.teardown(*args)
