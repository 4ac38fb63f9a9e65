import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGIN = ROOT / "examples" / "online_lms.py"


def pytest_addoption(parser):
    parser.addoption("--plugin", action="append", default=[], help="also run the contract checks on solvers of this file")


@pytest.fixture
def cli(tmp_path):
    """Run the installed `mrbench` console script; returns (exit code, stdout, stderr)."""
    import subprocess

    def _run(*args, timeout=600):
        proc = subprocess.run([sys.executable, "-m", "mrbench.cli", *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return proc.returncode, proc.stdout, proc.stderr

    return _run
