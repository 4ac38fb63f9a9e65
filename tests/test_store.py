"""The store verifies what it reads: a file counts as a stored cell only if it is that cell's
(schema, rows, key) and reads whole with its checksums; anything else is set aside and rerun."""
import random
import shutil
import warnings

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mrbench
from mrbench.cli import main
from mrbench.store import REJECTED, Store, load_results, schema, verified

SUITE = """
[suite]
name = "st"
[defaults]
d = 4
k_max = 8
n_test = 64
n_train = 200
[sections.a]
grid = { m = [2, 3] }
"""


@pytest.fixture
def stored(tmp_path):
    (tmp_path / "s.toml").write_text(SUITE)
    out = tmp_path / "r"
    first = mrbench.run(suite=str(tmp_path / "s.toml"), solvers="ols", out=out, progress=False, report=False)
    return tmp_path, out, first


def _rerun(tmp_path, out, **kw):
    return mrbench.run(suite=str(tmp_path / "s.toml"), solvers="ols", out=out, progress=False, report=False, **kw)


def _nmse(frame):
    return frame.sort_values(["cell_key", "k"]).set_index(["cell_key", "k"])["nmse"]


def test_another_cells_file_under_a_cells_name_is_set_aside_and_rerun(stored):
    tmp_path, out, first = stored
    a, b = sorted(out.glob("*.parquet"))
    shutil.copy(a, b)  # b's name, a's rows
    with pytest.warns(UserWarning, match=f"{b.name} does not count as stored: its rows are keyed {a.stem}"):
        plan = _rerun(tmp_path, out, dry_run=True)
    assert int((~plan.stored).sum()) == 1 and b.exists()  # a dry run moves nothing
    with pytest.warns(UserWarning, match="moved to"):
        again = _rerun(tmp_path, out)
    assert (out / REJECTED / b.name).exists()  # set aside, not deleted
    pd.testing.assert_series_equal(_nmse(first), _nmse(again))
    assert len(load_results(out)) == len(first)  # no duplicated rows, no missing cell


def test_a_file_with_only_a_status_column_is_not_a_stored_cell(stored, tmp_path):
    _, out, first = stored
    victim = sorted(out.glob("*.parquet"))[0]
    pq.write_table(pa.table({"status": ["ok"]}), victim)
    table, why = verified(victim)
    assert table is None and "not a cell file: no column" in why
    with pytest.warns(UserWarning, match="not a cell file"):
        assert main(["report", str(out), "-o", str(tmp_path / "x.html")]) == 0  # the report still builds
    with pytest.warns(UserWarning, match="not a cell file"):
        again = _rerun(tmp_path, out)
    pd.testing.assert_series_equal(_nmse(first), _nmse(again))


@pytest.mark.parametrize("damage", ["rows", "k", "status"])
def test_a_cell_file_must_hold_its_rows(stored, damage):
    _, out, _ = stored
    victim = sorted(out.glob("*.parquet"))[0]
    frame = pq.read_table(victim).to_pandas()
    if damage == "rows":
        frame = frame.iloc[:-2]
    elif damage == "k":
        frame["k"] = frame["k"][::-1].to_numpy()
    else:
        frame.loc[0, "status"] = "failed"
    pq.write_table(pa.Table.from_pandas(frame[schema().names], schema=schema(), preserve_index=False), victim)
    assert verified(victim)[0] is None


def test_no_single_bit_flip_changes_a_number_silently(stored, tmp_path):
    """The trial of the trust-boundaries issue: before page checksums, 17 of 400 flips changed
    a stored number with the file still read as valid."""
    _, out, _ = stored
    src = sorted(out.glob("*.parquet"))[0]
    original, data = pq.read_table(src).to_pandas(), src.read_bytes()
    rng, victim, silent = random.Random(1), tmp_path / src.name, 0
    warnings.simplefilter("ignore")
    for _ in range(300):
        flipped = bytearray(data)
        flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        victim.write_bytes(bytes(flipped))
        table, _ = verified(victim)
        silent += table is not None and not table.to_pandas()[original.columns].equals(original)
    assert silent == 0


def test_load_results_drops_and_names_a_file_keyed_elsewhere(stored):
    _, out, first = stored
    a, b = sorted(out.glob("*.parquet"))
    shutil.copy(a, out / ("0" * 24 + ".parquet"))
    with pytest.warns(UserWarning, match="left out result file .*000000000000000000000000.parquet: its rows are keyed"):
        loaded = load_results(out)
    assert len(loaded) == len(first)


def test_the_summary_counts_planned_cells_and_a_missing_one_fails_the_run(tmp_path, monkeypatch, capsys):
    (tmp_path / "s.toml").write_text(SUITE)
    real = Store.write
    dropped = []

    def lossy(self, key, rows, *a, **kw):  # the first cell's write is lost (as on a failing disk)
        if not dropped:
            dropped.append(key)
            return None
        return real(self, key, rows, *a, **kw)

    monkeypatch.setattr(Store, "write", lossy)
    code = main(["run", "--suite", str(tmp_path / "s.toml"), "--solvers", "ols", "--out", str(tmp_path / "r"),
                 "--no-report"])
    out = capsys.readouterr().out
    assert code == 1 and "1 of 2 planned cells stored" in out and "missing: a/m=" in out
