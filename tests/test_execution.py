"""Executors (serial, -j 2, Dask LocalCluster), hard timeouts, corrupt files, malformed suites."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mrbench
from mrbench.errors import UserError
from mrbench.suites import load_suite

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
        import os, pathlib
        if "MARK" in os.environ:
            pathlib.Path(os.environ["MARK"]).touch()  # in flight
        time.sleep(self.seconds)
        return np.zeros(y.shape)


class BadSkip(Solver):
    name = "badskip"
    def skip_reason(self, spec, device):
        raise RuntimeError("boom in skip_reason")
    def predict(self, x, y):
        return np.zeros(y.shape)


class BadInfo(Solver):
    name = "badinfo"
    def predict(self, x, y):
        return np.zeros(y.shape)
    def info(self):
        return {"not json": {1, 2}}


class Strict(Solver):
    name = "strict"
    def __init__(self, a=1):
        if a < 0:
            raise RuntimeError("a must be >= 0")
        self.a = a
    def predict(self, x, y):
        return np.zeros(y.shape)
"""


@pytest.fixture
def suite(tmp_path):
    (tmp_path / "s.toml").write_text(SUITE)
    (tmp_path / "p.py").write_text(PLUGIN)
    return tmp_path


def _nmse(frame):
    return frame.sort_values(["cell_key", "k"]).set_index(["cell_key", "k"])["nmse"]


def test_serial_parallel_and_dask_give_identical_results(suite, monkeypatch):
    common = dict(suite=str(suite / "s.toml"), solvers="posterior_mean,ols,ridge,em,kong2020", seeds=2,
                  progress=False, report=False)
    serial = mrbench.run(out=suite / "serial", **common)
    parallel = mrbench.run(out=suite / "j2", jobs=2, **common)
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        monkeypatch.chdir(suite)  # the workers stay where they started: a relative --out is the client's
        dask = mrbench.run(out="dask", executor="dask", scheduler=client, **common)
    assert len(list((suite / "dask").glob("*.parquet"))) == 4 * 2 * 5
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


@pytest.mark.parametrize("jobs", [1, 2])
def test_solver_faults_outside_fit_and_predict_are_failed_cells(suite, jobs):
    frame = mrbench.run(suite=str(suite / "s.toml"), solvers="badskip,badinfo,ols", plugins=[suite / "p.py"],
                        where="m == 2", jobs=jobs, out=suite / "r", progress=False, report=False)
    cells = frame.drop_duplicates("cell_key").set_index("solver")
    assert cells.loc["badskip", "status"].eq("failed").all()
    assert cells.loc["badskip", "error"].str.contains("boom in skip_reason").all()  # the real error, not "died"
    assert cells.loc["badinfo", "status"].eq("failed").all() and cells.loc["ols", "status"].eq("ok").all()


@pytest.mark.parametrize("to", ["group", "parent"])
def test_ctrl_c_with_workers_stores_no_failures(suite, to):
    """Ctrl-C in a terminal reaches the whole process group; `kill -INT` the parent only. Either
    way the run stops at once, its workers die with it, and the cells in flight are not
    failures, only missing."""
    import os
    import signal
    import subprocess
    import sys
    import time

    mark, out = suite / "in_flight", suite / "r"
    # SIGINT as a terminal leaves it: a shell ignores it in its background jobs (pytest run with
    # `&`, say), and a process started with SIGINT ignored keeps ignoring it
    proc = subprocess.Popen([sys.executable, "-m", "mrbench.cli", "run", "--suite", str(suite / "s.toml"), "--plugin",
                             str(suite / "p.py"), "--solvers", "sleeper", "-j", "2", "--quiet", "--out", str(out)],
                            env={**os.environ, "MARK": str(mark)}, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not mark.exists():
        time.sleep(0.05)
    assert mark.exists(), "a cell should be in flight"
    workers = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert len(workers) == 2
    started = time.time()
    if to == "group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and time.time() - started < 10
    assert not list(out.glob("*.parquet"))
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_dask_task_that_breaks_fails_only_its_unwritten_cells(suite):
    import dataclasses
    from datetime import datetime, timezone

    from mrbench.runner import make_tasks, plan

    cells, _ = plan(str(suite / "s.toml"), "ols", where="m == 2")
    earlier, now = (datetime(2026, 1, d, tzinfo=timezone.utc) for d in (1, 2))
    tasks = make_tasks(cells, plugins=(), out=str(suite / "r"), device="cpu", context={"created_at": now})
    task = dataclasses.replace(tasks[0], cells=[c for t in tasks for c in t.cells])  # two cells
    dataclasses.replace(task, cells=task.cells[:1]).execute()  # one written by this run before the break
    dataclasses.replace(task, cells=task.cells[1:], context={"created_at": earlier}).execute()  # an old row
    statuses = task.fail_unwritten("the Dask task failed: KilledWorker")
    assert [s for _, s in statuses] == ["ok", "failed"]
    stored = pd.read_parquet(suite / "r").drop_duplicates("cell_key")
    assert stored.error.str.contains("KilledWorker").sum() == 1


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
    (dict(where="sigma"), "must be a condition"), (dict(where="k_max - 7"), "must be a condition"),
    (dict(solvers="em[n_init=abc]"), "n_init='abc': expected an integer"),
    (dict(solvers="em[n_init=0]"), "n_init=0: must be >= 1"), (dict(solvers="ridge[lam=-1]"), "lam > 0"),
    (dict(solvers="em[predictor='foo']"), "predictor='foo': must be one of posterior_mean, argmin"),
    (dict(solvers="transformer[preset='huge']"), "preset='huge': valid presets are paper, small, cpu, cpu-pairs, tiny, or LAYERSxHEADSxWIDTH"),
    (dict(solvers="transformer[cpu_budget='abc']"), "cpu_budget='abc': expected a number"),
    (dict(solvers="strict[a=-1]"), "solver 'strict': a must be >= 0"),
    (dict(executor="dask", scheduler="tcp://127.0.0.1:1", jobs=2), "-j sets local worker processes"),
])
def test_bad_run_options(suite, kwargs, match):
    import re

    with pytest.raises(UserError, match=re.escape(match)):
        mrbench.run(suite=str(suite / "s.toml"), out=suite / "r", progress=False, report=False,
                    plugins=[suite / "p.py"], **kwargs)
    assert not (suite / "r").exists()  # refused before anything ran


def test_a_number_is_one_parameter_value_however_written(suite):
    from mrbench.runner import plan

    spelled = [plan(str(suite / "s.toml"), text)[0] for text in ("ridge", "ridge[lam=1]", "ridge[lam=1.0]", "ridge,ridge[lam=1]")]
    assert len({tuple(c.key for c in cells) for cells in spelled}) == 1


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


def test_temporary_files_of_dead_writers_are_swept(suite):
    import os
    import subprocess
    import sys

    from mrbench.store import _HOST

    out = suite / "r"
    mrbench.run(suite=str(suite / "s.toml"), solvers="ols", where="m == 2", out=out, progress=False, report=False)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = dead.stdout.strip()
    left = {name: out / f".{'a' * 24}.parquet.{name}.tmp" for name in
            (f"{_HOST}.{pid}", f"{_HOST}.{os.getpid()}", f"otherhost.{pid}", f"{_HOST}.{'9' * 20}")}
    for path in [*left.values(), out / ".x.tmp"]:
        path.write_bytes(b"partial")
        os.utime(path, (1e9, 1e9))  # written long ago
    young = out / f".{'b' * 24}.parquet.{_HOST}.{pid}.tmp"  # a dead writer's, but written just now
    young.write_bytes(b"partial")
    mrbench.run(suite=str(suite / "s.toml"), solvers="ols", where="m == 2", out=out, progress=False, report=False)
    assert [p.exists() for p in left.values()] == [False, True, True, False]  # only dead local writers'
    assert young.exists() and (out / ".x.tmp").exists()


def test_a_numbered_gpu_with_local_workers_is_refused(suite, monkeypatch):
    import mrbench.runner

    monkeypatch.setattr(mrbench.runner, "resolve_device", lambda device: "cuda:1")  # as on a 2-GPU machine
    with pytest.raises(UserError, match="use --device cuda"):
        mrbench.run(suite=str(suite / "s.toml"), solvers="ols", jobs=2, out=suite / "r", progress=False, report=False)
