"""Resource and I/O faults fail cleanly: a spec too big for memory and a grid too big to run
are refused up front, a directory that cannot be written is said in one line with nothing
left behind, and a timeout kills every process a solver started."""
import os
import shutil
import subprocess
import sys
import time

import pytest

import mrbench

SMALL = """
[suite]
name = "rf"
[defaults]
d = 4
k_max = 8
n_test = 64
n_train = 200
[sections.a]
grid = { m = [2, 3] }
"""


def _cli(tmp_path, *args, readonly_ok=False, timeout=300):
    """The CLI in a subprocess; as root, without the capability that ignores file permissions,
    so that a read-only directory is read-only."""
    cmd = [sys.executable, "-m", "mrbench.cli", *map(str, args)]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("root without setpriv: file permissions cannot be tested")
        cmd = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    return proc.returncode, proc.stdout, proc.stderr


def test_a_spec_too_big_for_memory_is_refused_naming_it(tmp_path):
    (tmp_path / "big.toml").write_text(SMALL.replace("n_test = 64", "n_test = 100000000"))
    started = time.monotonic()
    code, out, err = _cli(tmp_path, "run", "--suite", "big.toml", "--solvers", "ols", "--out", "r")
    assert code == 2 and "spec a/m=2" in err and "GiB" in err and "n_test=100000000" in err
    assert time.monotonic() - started < 60 and not (tmp_path / "r").exists()
    code, _, err = _cli(tmp_path, "run", "--suite", "quick", "--solvers", "ols", "--memory-limit", "100M",
                        "--dry-run")
    assert code == 2 and "more than the 0.1 GiB limit" in err


def test_a_huge_grid_asks_for_yes_and_answers_at_once(tmp_path):
    axes = ", ".join(f"{f} = {list(range(2, 12))}" for f in ("d", "m", "k_max", "pool_seed", "n_test", "seed"))
    (tmp_path / "huge.toml").write_text(f"[suite]\nname = 'huge'\n[sections.a]\ngrid = {{ {axes} }}\n")
    started = time.monotonic()
    code, _, err = _cli(tmp_path, "run", "--suite", "huge.toml", "--solvers", "ols", "--dry-run")
    assert code == 2 and "1,000,000 specs" in err and "--yes" in err
    assert time.monotonic() - started < 20


def _store(tmp_path):
    (tmp_path / "s.toml").write_text(SMALL)
    return tmp_path / "r"


def test_a_read_only_out_fails_in_one_line_and_leaves_nothing(tmp_path):
    out = _store(tmp_path)
    out.mkdir()
    out.chmod(0o555)
    code, _, err = _cli(tmp_path, "run", "--suite", "s.toml", "--solvers", "ols", "--out", out)
    assert code == 2 and f"--out {out}: cannot store results there" in err and "Traceback" not in err
    assert list(out.iterdir()) == []


def test_complete_results_in_a_read_only_directory_still_report(tmp_path):
    out = _store(tmp_path)
    mrbench.run(suite=str(tmp_path / "s.toml"), solvers="ols", out=out, progress=False)
    for d in (out, *[p for p in out.rglob("*") if p.is_dir()]):
        d.chmod(0o555)
    code, stdout, err = _cli(tmp_path, "run", "--suite", "s.toml", "--solvers", "ols", "--out", out)
    assert code == 0 and "2 of 2 planned cells stored" in stdout, err


def test_a_write_error_mid_run_is_one_line_and_cleans_its_temporary_file(tmp_path):
    out = _store(tmp_path)
    mrbench.run(suite=str(tmp_path / "s.toml"), solvers="ols", out=out, progress=False, report=False)
    (out / "_prompts").chmod(0o555)  # the cells' per-prompt scores can no longer be written
    code, _, err = _cli(tmp_path, "run", "--suite", "s.toml", "--solvers", "ols", "--out", out, "--force", "-j", "2")
    assert code == 2 and "cannot write" in err and "_prompts" in err and "Traceback" not in err
    assert not [p for p in out.rglob("*.tmp")]


PLUGIN = """
import os, subprocess, sys, time
import numpy as np
from mrbench import Solver

class Escaper(Solver):
    name = "escaper"
    def predict(self, x, y):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
        open(os.environ["PIDFILE"], "w").write(str(child.pid))
        time.sleep(600)
"""


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process trees are read from /proc")
def test_a_timeout_kills_what_the_solver_started_in_its_own_session(tmp_path, monkeypatch):
    (tmp_path / "p.py").write_text(PLUGIN)
    (tmp_path / "s.toml").write_text(SMALL.replace("[2, 3]", "[2]"))
    monkeypatch.setenv("PIDFILE", str(tmp_path / "pid"))
    rows = mrbench.run(suite=str(tmp_path / "s.toml"), solvers="escaper", out=tmp_path / "r", plugins=[tmp_path / "p.py"],
                       timeout="4s", progress=False, report=False)
    assert list(rows.status) == ["timeout"]
    pid = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)
