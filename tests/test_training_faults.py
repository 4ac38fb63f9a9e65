"""Training survives early kills: state at the first evaluation, on SIGTERM and at an
interval; --resume without a state, or with a damaged one, is a one-line error."""
import signal
import subprocess
import sys
import time

import pytest

from mrbench.transformer import checkpoints

SUITE = """
[suite]
name = "tf"
[defaults]
d = 4
k_max = 8
n_test = 64
[sections.a]
grid = { m = [2] }
"""
TINY = ["--preset", "tiny", "--batch-size", "16", "--eval-every", "5"]


@pytest.fixture
def suite(tmp_path):
    (tmp_path / "tf.toml").write_text(SUITE)
    return tmp_path / "tf.toml"


def _state(tmp_path, suite):
    from mrbench.suites import load_suite

    name = checkpoints.key(load_suite(suite).specs[0], "tiny", 0.0)
    return tmp_path / "ck" / f"{name}.state.safetensors", tmp_path / "ck" / f"{name}.state.json"


def _start(suite, tmp_path, *extra):
    return subprocess.Popen([sys.executable, "-m", "mrbench.cli", "train", "--suite", str(suite), *TINY,
                             "--steps", "10000000", "--out-dir", str(tmp_path / "ck"), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(paths, proc, seconds=120):
    deadline = time.monotonic() + seconds
    while not all(p.exists() for p in paths):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.2)


def test_state_is_saved_at_the_first_evaluation_and_a_kill_loses_nothing_before(suite, tmp_path, cli):
    paths = _state(tmp_path, suite)
    proc = _start(suite, tmp_path, "--state-every", "100000")  # the interval never comes
    started = time.monotonic()
    _wait_for(paths, proc)
    seen = time.monotonic() - started
    proc.kill()  # SIGKILL: nothing runs on the way out
    proc.wait()
    assert seen < 60  # imports and the first 5 steps, not the 120 s interval
    code, out, err = cli("train", "--suite", suite, *TINY, "--steps", "40", "--out-dir", tmp_path / "ck", "--resume")
    assert code == 0 and "resuming" in out, err


def test_sigterm_saves_the_state(suite, tmp_path):
    paths = _state(tmp_path, suite)
    proc = _start(suite, tmp_path)
    _wait_for(paths, proc)
    first = paths[1].stat().st_mtime_ns
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "training state is saved" in err
    assert paths[1].stat().st_mtime_ns > first  # saved again on the way out


def test_resume_without_a_state_exits_2_unless_resume_or_start(suite, tmp_path, cli):
    code, out, err = cli("train", "--suite", suite, *TINY, "--steps", "10", "--out-dir", tmp_path / "ck", "--resume")
    assert code == 2 and "--resume: no training state for tiny-" in err and "Traceback" not in err
    code, out, err = cli("train", "--suite", suite, *TINY, "--steps", "10", "--out-dir", tmp_path / "ck",
                         "--resume-or-start")
    assert code == 0 and "wrote" in out, err


@pytest.mark.parametrize("damage", ["truncated weights", "truncated json", "one file only"])
def test_a_damaged_state_is_one_clear_line(suite, tmp_path, cli, damage):
    code, _, err = cli("train", "--suite", suite, *TINY, "--steps", "10", "--out-dir", tmp_path / "ck")
    assert code == 0, err
    weights, doc = _state(tmp_path, suite)
    if damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:300])
    elif damage == "truncated json":
        doc.write_text(doc.read_text()[:200])
    else:
        doc.unlink()
    code, _, err = cli("train", "--suite", suite, *TINY, "--steps", "20", "--out-dir", tmp_path / "ck", "--resume")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert (weights.name in err or str(weights.with_name(doc.name).parent) in err) and "afresh" in err
