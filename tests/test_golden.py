"""Golden: the cells of the published quick run are planned again and, run again, keep their
numbers: bit for bit where the computation is elementwise (posterior_mean, ridge), to 1e-12
relative where it goes through LAPACK/BLAS reductions whose order depends on the thread count
and the machine (ols, argmin, em: about 1e-15 measured). Cells are matched by place (spec,
solver label, seed, k), not by key: a key hashes the source of the code a cell depends on, so
it changes, by design, whenever that source is edited. The transformer's numbers are checked
by the shipped-checkpoint tests."""
from pathlib import Path

import numpy as np
import pandas as pd

import mrbench
from mrbench.runner import plan
from mrbench.store import load_results

PUBLISHED = Path(__file__).resolve().parents[1] / "reports" / "quick" / "results"
EXACT, CLOSE = ("ridge", "posterior_mean"), ("ols", "argmin", "em")


def test_published_quick_cells_are_planned_again():
    cells, _ = plan("quick")
    published = load_results(PUBLISHED).drop_duplicates("cell_key")
    assert len(published) == 32
    assert {(c.spec.name, c.solver.label(), c.spec.seed) for c in cells} == set(zip(published.spec, published.label,
                                                                                    published.seed))


def test_published_quick_cells_keep_their_numbers(tmp_path):
    again = mrbench.run(suite="quick", solvers=",".join(EXACT + CLOSE), out=tmp_path / "r", progress=False,
                        report=False)
    published = load_results(PUBLISHED)
    place, cols = ["spec", "label", "seed", "k"], ["nmse", "nmse_se", "nmse_avg"]
    for names, exact in ((EXACT, True), (CLOSE, False)):
        mine = again[again.solver.isin(names)]
        a = mine[place + cols].sort_values(place).reset_index(drop=True)
        b = published[published.solver.isin(names)][place + cols].sort_values(place).reset_index(drop=True)
        assert len(a) == len(names) * 4 * 61
        pd.testing.assert_frame_equal(a, b, check_exact=exact, rtol=1e-12, atol=0)
        if exact:
            assert np.array_equal(a.nmse.to_numpy(), b.nmse.to_numpy())
