"""Executors (serial, -j 2, Dask LocalCluster), hard timeouts, corrupt files, malformed suites."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import mrbench
from mrbench.errors import UserError
from mrbench.specs import load_suite

SUITE = """
[suite]
name = "ex"
[defaults]
d = 4
k_max = 8
n_test = 64
n_train = 300
[sections.a]
grid = { m = [2, 3], sigma = [0.0, 0.5] }
"""

PLUGIN = """
import time
import numpy as np
from mrbench import Solver

class Crasher(Solver):
    name = "crasher"
    def predict(self, x, y):
        import os
        os._exit(9)  # a crash in native code, as far as the runner can tell


class Sleeper(Solver):
    name = "sleeper"
    def __init__(self, seconds=3600.0):
        self.seconds = seconds
    def predict(self, x, y):
        time.sleep(self.seconds)
        return np.zeros(y.shape)
"""


@pytest.fixture
def suite(tmp_path):
    (tmp_path / "s.toml").write_text(SUITE)
    (tmp_path / "p.py").write_text(PLUGIN)
    return tmp_path


def _nmse(frame):
    return frame.sort_values(["cell_key", "k"]).set_index(["cell_key", "k"])["nmse"]


def test_serial_parallel_and_dask_give_identical_results(suite):
    common = dict(suite=str(suite / "s.toml"), solvers="posterior_mean,ols,ridge,em,kong2020", seeds=2,
                  progress=False, report=False)
    serial = mrbench.run(out=suite / "serial", **common)
    parallel = mrbench.run(out=suite / "j2", jobs=2, **common)
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        dask = mrbench.run(out=suite / "dask", executor="dask", scheduler=client, **common)
    assert len(serial) == 4 * 2 * 5 * 9 and (serial.status == "ok").all()
    for other in (parallel, dask):
        pd.testing.assert_series_equal(_nmse(serial), _nmse(other))


def test_hard_timeout_kills_cell_and_run_goes_on(suite):
    frame = mrbench.run(suite=str(suite / "s.toml"), solvers="sleeper,ols", plugins=[suite / "p.py"],
                        where="m == 2", timeout="2s", out=suite / "r", progress=False, report=False)
    cells = frame.drop_duplicates("cell_key")
    assert (cells[cells.solver == "sleeper"].status == "timeout").all()
    assert cells[cells.solver == "sleeper"].error.str.contains("2 s timeout").all()
    assert (frame[frame.solver == "ols"].status == "ok").all() and len(frame[frame.solver == "ols"]) == 2 * 9


def test_dying_worker_is_a_failed_cell_and_run_goes_on(suite):
    frame = mrbench.run(suite=str(suite / "s.toml"), solvers="crasher,ols", plugins=[suite / "p.py"],
                        where="m == 2", jobs=2, out=suite / "r", progress=False, report=False)
    cells = frame.drop_duplicates("cell_key")
    crashed = cells[cells.solver == "crasher"]
    assert (crashed.status == "failed").all() and crashed.error.str.contains("died \\(exit code 9\\)").all()
    assert (cells[cells.solver == "ols"].status == "ok").all() and len(cells) == 4


def test_corrupt_file_is_reported_and_rerun(suite):
    out = suite / "r"
    first = mrbench.run(suite=str(suite / "s.toml"), solvers="ols", out=out, progress=False, report=False)
    victim = sorted(out.glob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:100])  # truncated, as by a dying disk
    with pytest.warns(UserWarning, match="unreadable"):
        again = mrbench.run(suite=str(suite / "s.toml"), solvers="ols", out=out, progress=False, report=False)
    pd.testing.assert_series_equal(_nmse(first), _nmse(again))
    assert len(pd.read_parquet(out)) == len(first)


@pytest.mark.parametrize("kwargs,match", [
    (dict(timeout="abc"), "--timeout"), (dict(jobs=0), "-j"), (dict(executor="dask"), "--scheduler"),
    (dict(executor="spark"), "--executor"), (dict(device="tpu"), "--device"), (dict(seeds=0), "--seeds"),
])
def test_bad_run_options(suite, kwargs, match):
    with pytest.raises(UserError, match=match):
        mrbench.run(suite=str(suite / "s.toml"), out=suite / "r", progress=False, report=False, **kwargs)


toml_scalars = st.one_of(st.integers(-5, 70), st.floats(allow_nan=True), st.booleans(), st.text(max_size=4),
                         st.just("stream"), st.just("covariate_scale"))
toml_values = st.one_of(toml_scalars, st.lists(toml_scalars, max_size=3))
keys = st.sampled_from(["d", "m", "sigma", "k_max", "n_train", "n_test", "shift_kind", "shift_value", "seed",
                        "pool_seed", "grid", "zip", "bogus", "family", "description"])


def _render(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if np.isnan(value) else ("inf" if value == float("inf") else "-inf" if value == -float("inf") else repr(value))
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    return str(value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(keys, toml_values, max_size=5), st.dictionaries(st.sampled_from(["m", "sigma", "d"]),
                                                                        st.lists(toml_scalars, max_size=3), max_size=2))
def test_malformed_suites_give_clean_errors(tmp_path, section, grid):
    body = "[suite]\nname = 'h'\n[sections.s]\n" + "".join(f"{k} = {_render(v)}\n" for k, v in section.items()
                                                           if k not in ("grid", "zip"))
    if grid:
        body += "grid = { " + ", ".join(f"{k} = {_render(v)}" for k, v in grid.items()) + " }\n"
    path = tmp_path / "h.toml"
    path.write_text(body)
    try:
        suite = load_suite(path)
    except UserError as exc:
        assert str(path) in str(exc) or "h.toml" in str(exc)
        return
    assert all(s.m >= 1 and s.sigma >= 0 for s in suite.specs)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_garbage_files_give_clean_errors(tmp_path, data):
    path = tmp_path / "g.toml"
    path.write_bytes(data)
    with pytest.raises(UserError):
        load_suite(path)
