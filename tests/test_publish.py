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
    monkeypatch.setattr(publish, "publish", lambda *a: pytest.fail("published from a dirty tree"))
    assert publish.main(["--suites", "quick"]) == 2
    assert "commit first" in capsys.readouterr().err


def test_every_suite_records_the_commit_taken_before_the_first_one_ran(monkeypatch, tmp_path):
    """The first suite's new results make the checkout dirty; the later suites still ran the
    same clean commit and record it (earlier published rows said '+dirty' for that reason)."""
    import mrbench.provenance

    publish = load_publish()
    monkeypatch.setenv("MRBENCH_GIT_COMMIT", "")  # publish sets it: undone after the test
    real = mrbench.provenance.git_commit
    commits = iter(["abc123", "abc123+dirty", "abc123+dirty"])
    monkeypatch.setattr(mrbench.provenance, "git_commit", lambda: next(commits))
    seen = []
    monkeypatch.setattr(publish, "publish", lambda suite, commit, reuse: seen.append(commit) or {
        "suite": suite, "report": "r", "claims": "c", "wall_seconds": 1.0, "cells": {}, "git_commit": commit,
        "date": "d", "machine": "m"})
    monkeypatch.setattr(publish, "INDEX", tmp_path / "index.json")
    monkeypatch.setattr(publish, "write_index", lambda entries: None)
    assert publish.main(["--suites", "a,b,c"]) == 0
    assert seen == ["abc123"] * 3
    assert real() == "abc123"  # and so do the rows each suite's run writes
