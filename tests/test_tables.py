"""Leaderboard exports (Markdown, CSV, LaTeX), filters, and the comparison of two results
directories, on real runs."""
import io
from pathlib import Path

import pandas as pd
import pytest

import mrbench
from mrbench.cli import main
from mrbench.errors import UserError
from mrbench.tables import render

SUBGROUPS = Path(__file__).resolve().parents[1] / "reports" / "subgroups" / "results"

SUITE = """
[suite]
name = "cmp"
[defaults]
d = 4
k_max = 8
n_test = 200
n_train = 200
sigma = 0.5
[sections.main]
grid = { m = [2, 3] }
"""

SHRUNK = """
import numpy as np
from mrbench import Solver

class Shrunk(Solver):
    name = "shrunk"
    group = "prompt-only"
    def predict(self, x, y):  # a constant guess: 0 in A, OFFSET in B
        return np.full(y.shape, OFFSET)
"""


def test_leaderboard_formats_and_filters(capsys):
    table = mrbench.leaderboards(SUBGROUPS, where="x_spread == 0.5", solvers="ols,em")
    assert set(table["label"]) == {"ols", "em", "subgroup_oracle"}  # the reference always stays
    assert set(table["spec"]) == {"spread/x_spread=0.5"}
    md = render(table, "md").splitlines()
    assert md[0].startswith("| spec | rank | solver") and len(md) == 2 + 3
    csv = pd.read_csv(io.StringIO(render(table, "csv")))
    assert list(csv["label"]) == list(table["label"]) and csv["ratio"].iloc[0] == 1.0
    tex = render(table, "latex")
    assert tex.startswith(r"\begin{tabular}") and r"subgroup\_oracle" in tex and tex.count(r"\\") == 4
    assert main(["leaderboard", str(SUBGROUPS), "--format", "md", "--solvers", "em"]) == 0
    assert "| em |" in capsys.readouterr().out
    with pytest.raises(UserError, match="nope not in these results; they hold: altmin"):
        mrbench.leaderboards(SUBGROUPS, solvers="nope")


def test_compare_finds_a_solver_made_worse(tmp_path, capsys):
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE)
    for name, offset in (("a", 0.0), ("b", 0.5)):
        plugin = tmp_path / name / "shrunk.py"
        plugin.parent.mkdir()
        plugin.write_text(SHRUNK.replace("OFFSET", str(offset)))
        mrbench.run(suite=str(suite), solvers="ols,shrunk", out=tmp_path / name / "res", plugins=[plugin],
                    progress=False, report=False)
    table = mrbench.compare(tmp_path / "a" / "res", tmp_path / "b" / "res")
    assert len(table) == 4  # two specs x (ols, shrunk)
    ols, shrunk = table[table["label"] == "ols"], table[table["label"] == "shrunk"]
    assert (ols["change"] == "").all() and (ols["diff"] == 0).all() and ols["same_code"].all()
    assert (shrunk["change"] == "+").all() and (shrunk["ratio"] > 1).all() and not shrunk["same_code"].any()
    # the known amount: predicting 0.5 instead of 0 adds (0.25 - 2 * 0.5 * E[y]) / d = 0.25 / 4 to the NMSE
    assert (abs(shrunk["diff"] - 0.0625) < 4 * shrunk["se"]).all() and (shrunk["se"] < 0.02).all()
    same = mrbench.compare(tmp_path / "a" / "res", tmp_path / "a" / "res")
    assert len(same) == 4 and (same["change"] == "").all() and (same["diff"] == 0).all()
    assert main(["compare", str(tmp_path / "a" / "res"), str(tmp_path / "a" / "res")]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a" / "res"), str(tmp_path / "b" / "res"), "--only-changed"]) == 1
    out = capsys.readouterr().out
    assert "shrunk" in out and "ols" not in out.split("\n\n")[0] and "2 worse in B (+)" in out


QUICK = Path(__file__).resolve().parents[1] / "reports" / "quick" / "results"


def test_report_writes_scorecard_and_leaderboards_as_tables(tmp_path, capsys):
    """`mrbench report --format` writes both tables beside the page; `mrbench.scorecard` is the
    same scorecard as a frame, one row per claim and model variant (not `mrbench.claims`: that
    name is the module of claims)."""
    card = mrbench.scorecard(QUICK)
    assert len(card) >= 5 and set(card["verdict"]) <= {"holds", "fails", "inconclusive", "not measured"}
    assert card["measured"].str.contains(r"\[", regex=True).any() and "$" not in "".join(card["quote"])
    assert main(["report", str(QUICK), "-o", str(tmp_path / "r.html"), "--format", "md"]) == 0
    md = (tmp_path / "_claims.md").read_text().splitlines()
    assert md[0] == "| claim | source | measured | holds if | verdict |" and len(md) == 2 + len(card)
    assert [line.split(" | ")[0][2:] for line in md[2:]] == list(card["claim"])
    assert (tmp_path / "_leaderboards.md").read_text().startswith("| spec | rank | solver")
    assert main(["report", str(QUICK), "-o", str(tmp_path / "r.html"), "--format", "csv"]) == 0
    assert list(pd.read_csv(tmp_path / "_claims.csv")["verdict"]) == list(card["verdict"])
    assert main(["report", str(QUICK), "-o", str(tmp_path / "r.html"), "--format", "latex",
                 "--where", "m == 5"]) == 0
    tex = (tmp_path / "_claims.tex").read_text()
    assert tex.startswith(r"\begin{tabular}{lp{") and r"\bottomrule" in tex
    assert "m=20" not in (tmp_path / "_leaderboards.tex").read_text()
