"""The package reads bottom-up (pyproject's [tool.importlinter] contracts): no module imports
a layer above its own, no two modules import each other through any chain, and importing
mrbench loads only the contract and what it stands on."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which("lint-imports")


def _lint(package_parent: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([LINT, "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=package_parent,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """The package copied aside, so that an import can be added to it."""
    parent = tmp_path_factory.mktemp("pkg")
    shutil.copytree(ROOT / "mrbench", parent / "mrbench", ignore=shutil.ignore_patterns("*.safetensors", "__pycache__"))
    return parent


def test_the_contracts_hold(copy):
    done = _lint(copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


@pytest.mark.parametrize("module,line,broken", [
    ("data.py", "from . import runner  # noqa", "mrbench.data is not allowed to import mrbench.runner"),
    ("families/prompt.py", "from . import sample  # noqa", "mrbench.families.prompt is not allowed to import mrbench.families.sample"),
])
def test_an_added_upward_import_breaks_them(copy, module, line, broken):
    path = copy / "mrbench" / module
    before = path.read_text()
    try:
        path.write_text(before + f"\n{line}\n")
        done = _lint(copy)
    finally:
        path.write_text(before)
    assert done.returncode == 1 and broken in done.stdout, done.stdout


def test_no_import_cycle():
    graph = grimp.build_graph("mrbench")
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert len(graph.modules) > 40 and cycles == []


def test_importing_mrbench_loads_only_what_the_contract_needs():
    code = "import sys, mrbench; print(' '.join(sorted(m for m in sys.modules if m.startswith(('mrbench', 'pandas', 'torch')))))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert loaded == {"mrbench", "mrbench.errors", "mrbench.provenance", "mrbench.solver", "mrbench.spec",
                      "mrbench.prompts", "mrbench.families", "mrbench.families.base", "mrbench.families.fields",
                      "mrbench.families.registry"}
