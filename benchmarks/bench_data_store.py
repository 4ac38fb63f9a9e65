"""Data generation throughput and the results store's write and read throughput."""
import shutil
import tempfile
from pathlib import Path

from mrbench.cells import base_row, frame
from mrbench.data import make_dataset
from mrbench.families import make_spec
from mrbench.solvers.least_squares import OLS
from mrbench.store import Store, load_results


class Generate:
    params = ([2000, 20000], [20, 60])
    param_names = ["n", "k"]

    def time_test_set(self, n, k):
        make_dataset(make_spec(dict(d=20, m=20, k_max=k, n_test=n)))

    def time_train_set(self, n, k):
        make_dataset(make_spec(dict(d=20, m=20, k_max=k, n_test=2, n_train=n))).train.fixed()

    def peakmem_train_set(self, n, k):
        make_dataset(make_spec(dict(d=20, m=20, k_max=k, n_test=2, n_train=n))).train.fixed()


class StoreIO:
    """200 cells of 61 rows each: write them one file per cell, then read the directory back."""

    params = [200]
    param_names = ["cells"]

    def setup(self, cells):
        self.root = Path(tempfile.mkdtemp())
        spec = make_spec(dict(d=20, m=5, k_max=60, n_test=100, name="bench"))
        curve = {"k": list(range(61)), "nmse": [0.1] * 61, "nmse_se": [0.01] * 61}
        self.rows = [frame(base_row(f"{i:024x}", spec, OLS(), {"mrbench_version": "0", "git_commit": "x",
                                                              "device": "cpu", "created_at": None}), curve)
                     for i in range(cells)]
        self.read_root = Path(tempfile.mkdtemp())
        for i, rows in enumerate(self.rows):
            Store(self.read_root).write(f"{i:024x}", rows)

    def teardown(self, cells):
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.read_root, ignore_errors=True)

    def time_write(self, cells):
        store = Store(self.root)
        for i, rows in enumerate(self.rows):
            store.write(f"{i:024x}", rows)

    def time_read(self, cells):
        load_results(self.read_root)

    def time_statuses(self, cells):
        Store(self.read_root).statuses()
