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
        if check is checks.check_shapes_and_finite:
            for sigma in (1.0, 0.0):
                check(entry.cls, params, sigma)
        else:
            check(entry.cls, params)
    except SkipSolver as exc:
        pytest.skip(str(exc))
