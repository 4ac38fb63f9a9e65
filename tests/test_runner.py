"""The runner, the store and the CLI end to end, on small suites."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from conftest import EXAMPLE_PLUGIN

import mrbench
from mrbench.store import schema

TINY = """
[suite]
name = "tiny"
[defaults]
d = 4
k_max = 8
n_test = 64
n_train = 200
[sections.main]
grid = { m = [2, 3], sigma = [0.0, 0.5] }
"""

PLUGINS = """
import time
import numpy as np
from mrbench import Solver

class Broken(Solver):
    name = "broken"
    def predict(self, x, y):
        raise RuntimeError("deliberate failure")

class Slow(Solver):
    name = "slow"
    def __init__(self, delay=0.25):
        self.delay = delay
    def predict(self, x, y):
        time.sleep(self.delay)
        return np.zeros(y.shape)
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture
def plugins(tmp_path):
    path = tmp_path / "plugins.py"
    path.write_text(PLUGINS)
    return path


def test_run_writes_long_table_and_rerun_adds_nothing(cli, tiny, tmp_path):
    out = tmp_path / "res"
    code, stdout, stderr = cli("run", "--suite", tiny, "--solvers", "all", "--out", out)
    assert code == 0, stderr
    frame = pd.read_parquet(out)
    assert set(schema().names) <= set(frame.columns)
    # the transformer has no checkpoint for this suite and would not train within its CPU budget
    skipped = frame[frame.solver == "transformer"]
    assert len(skipped) == 4 and (skipped.status == "skipped").all() and skipped.error.str.contains("mrbench train").all()
    ok = frame[frame.solver != "transformer"]
    assert len(ok) == 4 * ok["solver"].nunique() * 9  # specs × solvers × (k = 0..8)
    assert (ok["status"] == "ok").all()
    assert all(sorted(ks) == list(range(9)) for _, ks in ok.groupby("cell_key")["k"])
    # 'all' is every solver of this suite's data family
    assert {"posterior_mean", "em", "ols"} <= set(frame.solver) and "icl_em" not in set(frame.solver)
    assert frame.loc[frame.solver == "posterior_mean", "oracle"].all()
    assert json.loads(frame["solver_params"].iloc[0]) is not None
    assert "posterior_mean" in stdout and "cells:" in stdout  # the leaderboard
    files = sorted(os.listdir(out))
    code, stdout, _ = cli("run", "--suite", tiny, "--solvers", "all", "--out", out)
    assert code == 0 and sorted(os.listdir(out)) == files
    assert len(pd.read_parquet(out)) == len(frame)
    code, stdout, _ = cli("run", "--suite", tiny, "--solvers", "all", "--out", out, "--dry-run")
    assert code == 0 and "4 to run (4 of them skip here)" in stdout  # the skipped transformer cells are retried
    assert "transformer on 4 spec(s): no checkpoint" in stdout


def test_bad_input_exits_2_with_names(cli, tiny, tmp_path):
    code, _, err = cli("run", "--suite", tiny, "--solvers", "nope")
    assert code == 2 and "unknown solver 'nope'" in err and "posterior_mean" in err and "ols" in err
    code, _, err = cli("run", "--suite", tiny, "--solvers", "ridge[alpha=3]")
    assert code == 2 and "lam" in err
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace("d = 4", "d = 4\nm = -1").replace("grid = { m = [2, 3], sigma = [0.0, 0.5] }", ""))
    code, _, err = cli("run", "--suite", bad)
    assert code == 2 and "'m'" in err and str(bad) in err and ">= 1" in err
    code, _, err = cli("run", "--suite", "nosuch")
    assert code == 2 and "quick" in err and "pathak2023" in err
    assert "Traceback" not in err
    clash = tmp_path / "clash.py"
    clash.write_text("from mrbench import Solver\nclass Mine(Solver):\n    name = 'ols'\n")
    code, _, err = cli("run", "--suite", tiny, "--plugin", clash, "--solvers", "ols")
    assert code == 2 and "solver name 'ols' is taken" in err


def test_failing_solver_becomes_failure_row(cli, tiny, plugins, tmp_path):
    out = tmp_path / "res"
    code, _, err = cli("run", "--suite", tiny, "--plugin", plugins, "--solvers", "broken,ols", "--out", out)
    assert code == 1
    frame = pd.read_parquet(out)
    broken = frame[frame.solver == "broken"]
    assert len(broken) == 4 and (broken.status == "failed").all() and broken.k.isna().all()
    assert broken.error.str.contains("deliberate failure").all()
    assert (frame[frame.solver == "ols"].status == "ok").all()


def test_plugin_listed_runs_and_bad_plugin_unavailable(cli, tiny, tmp_path):
    code, out, _ = cli("list", "--plugin", EXAMPLE_PLUGIN)
    assert code == 0 and "online_lms" in out and "lr=0.02" in out
    bad = tmp_path / "bad_plugin.py"
    bad.write_text("import not_a_module_xyz\nfrom mrbench import Solver\nclass B(Solver):\n    name = 'bad'\n")
    code, out, _ = cli("list", "--plugin", bad)
    assert code == 0 and "bad" in out and "unavailable" in out and "not_a_module_xyz" in out
    res = tmp_path / "res"
    code, _, err = cli("run", "--suite", tiny, "--plugin", EXAMPLE_PLUGIN, "--plugin", bad,
                       "--solvers", "online_lms[lr=0.05],bad,posterior_mean", "--out", res)
    assert code == 0, err
    frame = pd.read_parquet(res)
    assert set(frame[frame.status == "ok"].label) == {"online_lms[lr=0.05]", "posterior_mean"}
    assert (frame[frame.solver == "bad"].status == "skipped").all()


def test_python_api_mirrors_cli(tiny, tmp_path):
    out = tmp_path / "res"
    frame = mrbench.run(suite=str(tiny), solvers="ols,argmin", out=out, where="m == 2 and sigma == 0.5", progress=False)
    assert set(frame.label) == {"ols", "argmin"} and set(frame.spec) == {"main/m=2,sigma=0.5"}
    loaded = mrbench.load_results(out)
    assert len(loaded) == len(frame) == 2 * 9
    again = mrbench.run(suite=str(tiny), solvers="ols,argmin", out=out, where="m == 2 and sigma == 0.5",
                        seeds=2, progress=False)
    assert set(again.seed) == {0, 1} and len(mrbench.load_results(out)) == 4 * 9


def test_sigkill_then_resume_equals_uninterrupted(tiny, plugins, tmp_path):
    args = ["--suite", tiny, "--plugin", plugins, "--solvers", "slow,argmin", "--seeds", "3", "--quiet"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "mrbench.cli", "run", *map(str, args), "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(killed.glob("*.parquet"))) < 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(list(killed.glob("*.parquet")))
    assert 5 <= partial < 24, "the kill should land half-way"
    pd.read_parquet(killed)  # readable throughout
    subprocess.run([sys.executable, "-m", "mrbench.cli", "run", *map(str, args), "--out", str(killed)], check=True,
                   capture_output=True)
    clean = tmp_path / "clean"
    subprocess.run([sys.executable, "-m", "mrbench.cli", "run", *map(str, args), "--out", str(clean)], check=True,
                   capture_output=True)
    a, b = (pd.read_parquet(p).sort_values(["cell_key", "k"]).reset_index(drop=True) for p in (killed, clean))
    assert len(a) == len(b) == 24 * 9 and not a.duplicated(["cell_key", "k"]).any()
    pd.testing.assert_frame_equal(a[["cell_key", "k", "nmse"]], b[["cell_key", "k", "nmse"]])


PLUG_INS = "em,em[init='spectral'],em[n_init=2,sigma='estimated',weights='estimated'],altmin[predictor='argmin'],kong2020"


def test_fig2_acceptance_on_quick_sigma1(tmp_path):
    """Oracle at sigma^2/d for k >= 20; nobody, plug-in estimators included, beats it by 3
    paired SEs; OLS spikes at k = d."""
    out = tmp_path / "res"
    frame = mrbench.run(suite="quick", solvers=f"posterior_mean,argmin,ridge,ols,{PLUG_INS}", where="sigma == 1",
                        out=out, save_predictions=True, progress=False)
    assert (frame.status == "ok").all() and frame.spec.nunique() == 2
    store = mrbench.store.Store(out)
    for spec in (s for s in mrbench.suites.load_suite("quick").specs if s.sigma == 1):
        part = frame[frame.spec == spec.name]
        pm = part[part.label == "posterior_mean"].set_index("k")
        late = pm.loc[20:, "nmse"]
        se = np.sqrt((pm.loc[20:, "nmse_se"] ** 2).sum()) / len(late)
        assert abs(late.mean() - 1.0 / 20) < 4 * se
        y = mrbench.data.make_dataset(spec).test.y
        ref = store.predictions(pm["cell_key"].iloc[0])
        for key, label in part.drop_duplicates("cell_key")[["cell_key", "label"]].values:
            diff = (((store.predictions(key) - y) ** 2 - (ref - y) ** 2)[:, 1:]).mean(axis=1) / 20
            assert diff.mean() >= -3 * diff.std(ddof=1) / np.sqrt(len(diff)), f"{label} beats the oracle on {spec.name}"
        ols = part[part.label == "ols"].set_index("k")["nmse"]
        assert ols.idxmax() in (19, 20, 21) and ols[20] > 10 * ols[10] and ols[20] > 10 * ols[40]


class _Reader(mrbench.Solver):
    """Only reads the shared training set: its fit is (almost) free."""

    name = "reader"

    def fit(self, train, truth=None):
        train.fixed()
        return self

    def predict(self, x, y):
        return np.zeros(y.shape)


def test_fit_time_excludes_drawing_the_shared_training_set():
    from mrbench.cells import run_cell
    from mrbench.data import make_dataset
    from mrbench.families import make_spec

    ds = make_dataset(make_spec(dict(d=20, m=5, sigma=1.0, k_max=60, n_train=20000, n_test=8)))
    rows, _, _ = run_cell("key", ds.spec, lambda: ds, _Reader(), "cpu", {}, {})
    assert rows.status.iloc[0] == "ok" and ds.train.generation_seconds > 0.05
    assert rows.fit_seconds.iloc[0] < ds.train.generation_seconds / 10


def test_report_shows_the_latest_cell_of_each_place_not_an_average(tiny, tmp_path):
    """Editing the suite (or a solver) and rerunning into the same directory supersedes the old
    cells: the report neither averages them in nor lists their plans as missing."""
    from mrbench.report import build

    out = tmp_path / "r"
    first = mrbench.run(suite=str(tiny), solvers="ols,posterior_mean", out=out, where="sigma == 0.5", progress=False,
                        report=False)
    tiny.write_text(tiny.read_text().replace("d = 4", "d = 6"))  # same spec names, other data
    second = mrbench.run(suite=str(tiny), solvers="ols,posterior_mean", out=out, where="sigma == 0.5",
                         progress=False, report=False)
    assert not set(first.cell_key) & set(second.cell_key)
    context, _ = build(out)
    assert context["superseded"] == first.cell_key.nunique() == 4 and not context["missing"]
    want = second.drop_duplicates("cell_key").set_index(["spec", "label"])["nmse_avg"]
    shown = {(b["spec"], r["label"]): r["nmse"] for b in context["leaderboards"] for r in b["rows"]}
    assert shown == pytest.approx(want.to_dict())


def test_code_version_covers_the_helpers_a_solver_imports():
    from mrbench.registry import load_registry
    from mrbench.solver import code_modules

    registry = load_registry()
    em = code_modules(registry["em"].cls)
    assert {"mrbench.solvers.em", "mrbench.solvers.plug_in", "mrbench.solvers.estimation", "mrbench.predictors"} <= set(em)
    assert "mrbench.predictors" in code_modules(registry["posterior_mean"].cls)
    assert code_modules(registry["ols"].cls) == ["mrbench.solvers.least_squares"]  # prefix_solutions lives there
    assert not {"mrbench.runner", "mrbench.report", "mrbench.solver"} & set(em)
    from mrbench.solver import _source

    assert "def train_model" in _source(registry["transformer"].cls.code_also[1])  # read, not imported
    assert _source("numpy._core._multiarray_umath") and _source("no.such.module") == "no.such.module"  # compiled, absent


def test_no_ratio_to_an_oracle_whose_error_is_zero(tiny, tmp_path):
    from mrbench.leaderboard import leaderboard

    frame = mrbench.run(suite=str(tiny), solvers="posterior_mean,ols", where="m == 2", out=tmp_path / "r",
                        progress=False, report=False)
    table = leaderboard(frame).set_index(["spec", "label"])["ratio"]
    assert table.loc["main/m=2,sigma=0.0"].isna().all()  # sigma = 0: the oracle's NMSE is ~0
    assert table.loc[("main/m=2,sigma=0.5", "posterior_mean")] == 1.0 and table.loc[("main/m=2,sigma=0.5", "ols")] > 1


def test_save_predictions_later_redoes_cells_stored_without_them(tiny, tmp_path):
    from mrbench.store import Store

    out, common = tmp_path / "r", dict(suite=str(tiny), solvers="ols", where="m == 2", progress=False, report=False)
    keys = set(mrbench.run(out=out, **common).cell_key)
    store = Store(out)
    assert not any(store.has_predictions(k) for k in keys)
    mrbench.run(out=out, save_predictions=True, **common)
    assert all(store.has_predictions(k) for k in keys)
    said = []
    mrbench.run(out=out, save_predictions=True, dry_run=True, echo=said.append, **common)
    assert f"{len(keys)} cells, 0 to run" in said[-1]


def test_sections_name_their_solvers_and_ask_for_predictions(tmp_path):
    from mrbench.errors import UserError
    from mrbench.runner import plan
    from mrbench.store import Store

    suite = tmp_path / "sec.toml"
    suite.write_text('[suite]\nname = "sec"\nsolvers = ["ridge"]\n[defaults]\nd = 4\nm = 2\nk_max = 6\nn_test = 20\n'
                     '[sections.a]\nsolvers = ["ols", "argmin"]\nsave_predictions = true\n[sections.b]\nsigma = 0.5\n')
    chosen = {(c.spec.section, c.solver.label()) for c in plan(str(suite))[0]}
    assert chosen == {("a", "ols"), ("a", "argmin"), ("b", "ridge")}
    assert {c.solver.label() for c in plan(str(suite), "posterior_mean")[0]} == {"posterior_mean"}  # --solvers wins
    frame = mrbench.run(suite=str(suite), out=tmp_path / "r", progress=False, report=False)
    store = Store(tmp_path / "r")
    kept = {(row.section, store.has_predictions(row.cell_key)) for row in frame.drop_duplicates("cell_key").itertuples()}
    assert kept == {("a", True), ("b", False)}  # per cell, although a and b could share a training set
    text = suite.read_text()
    for bad, match in (('solvers = "ols"', r"\[sections.a\]: solvers must be a non-empty list"),
                       ("solvers = []", "non-empty"), ('solvers = ["emm"]', r"\[sections.a\].*unknown solver 'emm'")):
        suite.write_text(text.replace('solvers = ["ols", "argmin"]', bad))
        with pytest.raises(UserError, match=match):
            plan(str(suite))


def test_report_keeps_suites_apart_when_they_share_names(tmp_path):
    from mrbench.report import build

    body = '[defaults]\nd = 4\nm = 2\nk_max = 6\nn_test = 30\nsigma = 0.5\n[sections.s]\nshift_kind = "weight_scale"\n' \
           'grid = { shift_value = [1.0, 2.0] }\n'
    for name in ("one", "two"):
        (tmp_path / f"{name}.toml").write_text(f'[suite]\nname = "{name}"\n' + body.replace("n_test = 30", f"n_test = {len(name) * 10}"))
        mrbench.run(suite=str(tmp_path / f"{name}.toml"), solvers="ols", out=tmp_path / "r", progress=False, report=False)
    context, _ = build(tmp_path / "r")
    assert context["superseded"] == 0 and len(context["shifts"]) == 2  # one panel per suite, not one mixed
    assert {b["spec"].split(":")[0] for b in context["leaderboards"]} == {"one", "two"}


def test_two_runs_into_one_directory_at_once_lose_and_duplicate_nothing(tiny, tmp_path):
    out = tmp_path / "r"
    args = [sys.executable, "-m", "mrbench.cli", "run", "--suite", str(tiny), "--solvers", "ols,ridge,argmin,em",
            "--seeds", "2", "--quiet", "--out", str(out)]
    runs = [subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    assert all(run.wait(timeout=300) == 0 for run in runs), [run.stderr.read() for run in runs]
    frame = pd.read_parquet(out)
    assert frame.cell_key.nunique() == 4 * 2 * 4 and not frame.duplicated(["cell_key", "k"]).any()
    assert len(frame) == 4 * 2 * 4 * 9 and (frame.status == "ok").all()
    assert not list(out.glob(".*.tmp")) and "</html>" in (out / "_report.html").read_text()


def test_version_and_every_train_option_has_help(capsys):
    from mrbench.cli import _parser, main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"mrbench {mrbench.__version__}"
    train = next(a for a in _parser()._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    assert all(action.help for action in train._actions), [a.dest for a in train._actions if not a.help]


def test_dry_run_estimates_the_time_from_stored_timings(tiny, tmp_path):
    from mrbench.formatting import duration

    out, common = tmp_path / "r", dict(suite=str(tiny), progress=False, report=False)
    said = []
    mrbench.run(out=out, solvers="ols", dry_run=True, echo=said.append, **common)
    assert said[-1] == f"no time estimate: {out.resolve()} holds no timings yet"
    stored = mrbench.run(out=out, solvers="ols,ridge", where="m == 2", **common).drop_duplicates("cell_key")
    seconds = stored["fit_seconds"] + stored["predict_seconds"]
    said.clear()
    mrbench.run(out=out, solvers="ols,ridge,em", force=True, dry_run=True, echo=said.append, **common)
    # m = 2: the same cells timed before (rerun by --force); m = 3: each solver's median; em: never run
    assert "12 cells, 12 to run (4 of them stored, rerun by --force)" in said[-2]
    assert "for 8 of the 12 cells that would run (4 timed here before, 4 at their solver's median here; " \
           "4 never timed here)" in said[-1]
    expected = 2 * seconds.sum()  # m = 3's two specs at the median of m = 2's two, per solver
    shown = said[-1].split("about ")[1].split(",")[0]
    assert duration(expected) == shown
