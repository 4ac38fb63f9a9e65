"""reports/publish.py publishes only from a clean commit: the commit it records is the code that ran."""
import importlib.util
from pathlib import Path

import pytest


def load_publish():
    path = Path(__file__).resolve().parents[1] / "reports" / "publish.py"
    spec = importlib.util.spec_from_file_location("publish", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("commit", ["0123abc+dirty", "unknown"])
def test_publish_refuses_a_dirty_or_unknown_checkout(monkeypatch, capsys, commit):
    import mrbench.provenance

    publish = load_publish()
    monkeypatch.setattr(mrbench.provenance, "git_commit", lambda: commit)
    monkeypatch.setattr(publish, "publish", lambda suite: pytest.fail("published from a dirty tree"))
    assert publish.main(["--suites", "quick"]) == 2
    assert "commit first" in capsys.readouterr().err
