"""Every registered solver (and the example plugin, and any --plugin FILE) against the contract."""
import pytest
from conftest import EXAMPLE_PLUGIN

from mrbench import checks
from mrbench.errors import SkipSolver
from mrbench.registry import load_plugin, load_registry


def _entries(config_plugins=()):
    entries = list(load_registry().values()) + load_plugin(EXAMPLE_PLUGIN)
    for path in config_plugins:
        entries += load_plugin(path)
    return entries


def pytest_generate_tests(metafunc):
    if "entry" in metafunc.fixturenames:
        entries = _entries(metafunc.config.getoption("--plugin"))
        metafunc.parametrize("entry", entries, ids=[e.name for e in entries])
    if "check" in metafunc.fixturenames:
        metafunc.parametrize("check", checks.CHECKS, ids=[c.__name__ for c in checks.CHECKS])


def test_registered_solver_imports(entry):
    assert entry.available, f"{entry.name} failed to import: {entry.error}"


def test_contract(entry, check):
    if not entry.available:
        pytest.skip(f"unavailable: {entry.error}")
    params = dict(entry.cls.test_params)
    checks.check_params(entry.cls, params)
    try:
        for family in checks.declared_families(entry.cls):  # those it declares, else every one
            checks.run_check(check, entry.cls, params, family)
    except SkipSolver as exc:
        pytest.skip(str(exc))


def test_mrbench_check_reports_each_check_and_fails_a_bad_plugin(cli, tmp_path):
    code, out, err = cli("check", EXAMPLE_PLUGIN)
    assert code == 0, err
    assert "PASS check_subset_invariance [prompt]" in out and "PASS check_causal [sample]" in out
    bad = tmp_path / "peek.py"
    bad.write_text('''
import numpy as np
from mrbench import Solver

class Peek(Solver):
    name = "peek"
    families = ("prompt",)

    def predict(self, x, y):
        out = np.zeros(y.shape)
        out[:, :-1] = np.nan_to_num(y[:, 1:])  # reads the label it must predict next
        return out
''')
    code, out, _ = cli("check", bad)
    assert code == 1 and "FAIL check_causal [prompt]" in out and "[sample]" not in out
    (line,) = [line for line in out.splitlines() if "FAIL check_causal [prompt]" in line]
    assert "the solver reads labels it must not see" in line  # the check's own words, on its line
    code, _, err = cli("check", "nope")
    assert code == 2 and "unknown solver 'nope'; valid solvers:" in err
