"""Results store: one Parquet file per finished cell, written atomically.

`DIR/<cell key>.parquet` holds the cell's rows (one per prefix length k, or a single row with
k null for a failed or skipped cell). Files are written to a dot-prefixed temporary name and
renamed into place, so a reader (or `pandas.read_parquet(DIR)`) never sees a partial file:
readers ignore names that start with '.' or '_'. Raw predictions live in `DIR/_predictions/`,
each cell's per-prompt mean NMSE (for paired comparisons) in `DIR/_prompts/`.
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .atomic import _HOST, WriteError, atomic_write
from .errors import UserError
from .families import families, own_fields
from .statuses import OK

_SPEC = [
    ("suite", pa.string()), ("section", pa.string()), ("spec", pa.string()), ("family", pa.string()),
    ("d", pa.int64()), ("m", pa.int64()), ("sigma", pa.float64()), ("k_max", pa.int64()),
    ("n_train", pa.int64()), ("n_test", pa.int64()), ("shift_kind", pa.string()),
    ("shift_value", pa.float64()), ("pool_seed", pa.int64()), ("seed", pa.int64()),
    ("pi", pa.string()),
]  # then each data family's own fields (snr, components, ...), then:
_RESULT = [
    ("solver", pa.string()), ("solver_params", pa.string()), ("label", pa.string()),
    ("solver_group", pa.string()), ("oracle", pa.bool_()), ("trained", pa.bool_()),
    ("k", pa.int64()), ("nmse", pa.float64()), ("nmse_se", pa.float64()),
    ("nmse_avg", pa.float64()), ("nmse_avg_se", pa.float64()),
]  # then each data family's own scores (excess_mse, ...), then:
_RESULT_TAIL = [
    ("recovery_error", pa.float64()), ("recovery_error_se", pa.float64()),
    ("status", pa.string()), ("error", pa.string()),
    ("fit_seconds", pa.float64()), ("predict_seconds", pa.float64()),
    ("peak_rss_mb", pa.float64()), ("peak_gpu_mb", pa.float64()),
    ("pool_mse", pa.float64()), ("pool_oracle_nmse", pa.float64()), ("pi_error", pa.float64()),
    ("iterations", pa.int64()), ("converged", pa.bool_()), ("info", pa.string()),
    ("cell_key", pa.string()), ("code_version", pa.string()), ("mrbench_version", pa.string()),
    ("git_commit", pa.string()), ("device", pa.string()), ("created_at", pa.timestamp("us", tz="UTC")),
]
_TYPES = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}
RENAMED = {"solver_family": "solver_group"}  # columns of results written by older versions
GROUPS_RENAMED = {"data-driven": "prompt-only", "trained": "in-context"}  # their solver groups


def schema() -> pa.Schema:
    """The columns of a cell's rows: the registered data families' fields among the spec's,
    and their declared scores among the results. Built once per set of registered families
    (a plugin file can register one late)."""
    key = tuple((name, type(f), tuple(f.fields.items()), tuple(f.scores.items())) for name, f in families().items())
    if key not in _SCHEMAS:
        _SCHEMAS[key] = pa.schema(_SPEC + _family_columns() + _RESULT + _score_columns() + _RESULT_TAIL)
    return _SCHEMAS[key]


_SCHEMAS: dict[tuple, pa.Schema] = {}


def _family_columns() -> list[tuple[str, pa.DataType]]:
    return [(k, _TYPES[type(v)]) for k, v in own_fields().items()]


def _score_columns() -> list[tuple[str, pa.DataType]]:
    columns = {}
    for family in families().values():
        for name, kind in family.scores.items():
            if kind not in _TYPES:
                raise UserError(f"data family '{family.name}': score column '{name}' has type {kind.__name__}; "
                                f"valid types: {', '.join(t.__name__ for t in _TYPES)}")
            if columns.setdefault(name, _TYPES[kind]) != _TYPES[kind]:
                raise UserError(f"data family '{family.name}': score column '{name}' is declared with another type "
                                "by another family")
    return list(columns.items())


REJECTED = "_rejected"  # where cell files that fail verification are set aside (never deleted)


def verified(path: Path, s: pa.Schema | None = None) -> tuple[pa.Table | None, str | None]:
    """A cell file's table in today's columns, or None and why it does not count as stored.

    It counts only if it reads whole with its page checksums verified, has the cell schema's
    columns and types (a data family's columns may postdate it), and holds its rows: one per k
    = 0..k_max for a finished curve, else one row; every row keyed by the file's name."""
    s = s or schema()
    try:
        table = pq.ParquetFile(path, page_checksum_verification=True).read()
    except Exception as exc:  # damaged: the reader names the first thing it could not read
        return None, f"unreadable ({exc.__class__.__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
    have = dict(zip([RENAMED.get(c, c) for c in table.column_names], table.schema.types))
    optional = {name for name, _ in _family_columns() + _score_columns()}
    missing = [f.name for f in s if f.name not in have and f.name not in optional]
    if missing:
        return None, f"not a cell file: no column {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
    wrong = [f"{f.name} ({have[f.name]}, not {f.type})" for f in s
             if f.name in have and have[f.name] != f.type and have[f.name] != pa.null()]
    if wrong:
        return None, f"not a cell file: column {', '.join(wrong[:3])}"
    if len(table) == 0:
        return None, "no rows"
    keys = pc.unique(table["cell_key"]).to_pylist()
    if keys != [path.stem]:
        return None, f"its rows are keyed {', '.join(map(str, keys[:3]))}, not {path.stem} (a copy of another cell?)"
    statuses = pc.unique(table["status"]).to_pylist()
    if len(statuses) != 1 or statuses[0] is None:
        return None, f"its rows disagree on the status ({statuses})"
    k = table["k"].to_pylist()
    curve = k != [None]
    if statuses[0] == OK and not curve:
        return None, "a finished cell without its curve"
    if curve and (k != list(range(len(table))) or pc.unique(table["k_max"]).to_pylist() != [len(table) - 1]):
        return None, f"its {len(table)} rows are not one per k = 0..k_max"
    return _conformed(table, s), None


REPORT_NAME = "_report.html"  # '_' keeps it out of pandas.read_parquet(DIR)


def _conformed(table: pa.Table, s: pa.Schema) -> pa.Table:
    """A stored table in today's columns: renamed ones under their new names, columns it
    predates (a data family added since) null."""
    # the pandas metadata is not needed (no index is stored) and is not covered by the checksums
    table = table.rename_columns([RENAMED.get(c, c) for c in table.column_names]).replace_schema_metadata(None)
    table = _renamed_groups(table)
    if table.schema.equals(s):
        return table
    columns = dict(zip(table.column_names, table.columns))
    return pa.table({f.name: columns[f.name].cast(f.type) if f.name in columns
                     else pa.nulls(len(table), f.type) for f in s}, schema=s)


def _renamed_groups(table: pa.Table) -> pa.Table:
    if "solver_group" not in table.column_names:
        return table
    at = table.column_names.index("solver_group")
    group = table["solver_group"]
    for old, new in GROUPS_RENAMED.items():
        group = pc.if_else(pc.equal(group, old), new, group)
    return table.set_column(at, table.schema.field(at), group)


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.parquet"

    def write(self, key: str, rows: pd.DataFrame, predictions: np.ndarray | None = None,
              prompt_scores: np.ndarray | None = None) -> Path:
        """The cell's rows, and optionally its raw predictions (float32) and its per-prompt
        mean NMSE (float64, for paired comparisons); the rows last, since they mark the cell done."""
        self.root.mkdir(parents=True, exist_ok=True)
        for path, array in ((self._predictions_path(key), None if predictions is None else predictions.astype(np.float32)),
                            (self._prompts_path(key), prompt_scores)):
            if array is not None:
                path.parent.mkdir(exist_ok=True)
                atomic_write(path, lambda f, a=array: np.save(f, a))
        s = schema()
        table = pa.Table.from_pandas(rows[s.names], schema=s, preserve_index=False)
        # page checksums: a flipped bit in the data is an unreadable file, never a changed number
        return atomic_write(self.path(key), lambda f: pq.write_table(table, f, write_page_checksum=True))

    def statuses(self, set_aside: bool = True) -> dict[str, str]:
        """Cell key -> status of every cell file that passes `verified`. Any other file is
        reported by name and, with `set_aside`, moved into DIR/_rejected/, so its cell runs
        again and nothing is deleted."""
        out, s = {}, schema()
        if not self.root.is_dir():
            return out
        for f in sorted(self.root.glob("*.parquet")):
            table, why = verified(f, s)
            if table is not None:
                out[f.stem] = table["status"][0].as_py()
                continue
            moved = self._set_aside(f) if set_aside else None
            where = f"; moved to {moved}" if moved else ""
            warnings.warn(f"result file {f.name} does not count as stored: {why}{where}; its cell will run again",
                          stacklevel=2)
        return out

    def _set_aside(self, f: Path) -> Path | None:
        target = self.root / REJECTED / f.name
        n = 1
        while target.exists():
            target, n = self.root / REJECTED / f"{f.stem}.{n}{f.suffix}", n + 1
        try:
            target.parent.mkdir(exist_ok=True)
            os.replace(f, target)
        except OSError:  # a read-only directory: the file stays, and its cell still reruns
            return None
        return target

    def sweep(self, min_age: float = 600.0) -> int:
        """Remove temporary files left by writers of this host that died mid-write (killed by
        SIGTERM or SIGKILL): named by this host, their process gone, and older than `min_age`
        seconds (a write takes far less; the age also guards containers that share a host name
        but not process ids). Another host's, or a live writer's, stay. Returns how many."""
        removed, now = 0, time.time()
        for tmp in [*self.root.glob(".*.tmp"), *self.root.glob("_predictions/.*.tmp"), *self.root.glob("_prompts/.*.tmp")]:
            parts = tmp.name.rsplit(".", 3)  # [".KEY.parquet", host, pid, "tmp"]
            if (len(parts) == 4 and parts[1] == _HOST and parts[2].isdecimal() and not _alive(int(parts[2]))
                    and now - tmp.stat().st_mtime > min_age):
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed

    def created_at(self, key: str):
        """When the stored cell's run started (None if absent or unreadable)."""
        try:
            return pq.read_table(self.path(key), columns=["created_at"]).column(0)[0].as_py()
        except Exception:
            return None

    def _predictions_path(self, key: str) -> Path:
        return self.root / "_predictions" / f"{key}.npy"

    def has_predictions(self, key: str) -> bool:
        return self._predictions_path(key).exists()

    def predictions(self, key: str) -> np.ndarray | None:
        f = self._predictions_path(key)
        return np.load(f) if f.exists() else None

    def _prompts_path(self, key: str) -> Path:
        return self.root / "_prompts" / f"{key}.npy"

    def prompt_scores(self, key: str) -> np.ndarray | None:
        """The cell's per-prompt mean NMSE over k = 1..k_max (None for cells stored without)."""
        f = self._prompts_path(key)
        return np.load(f) if f.exists() else None


def check_writable(root: Path) -> None:
    """Fail now, in one line, if cells cannot be stored under `root` (rather than after the first one ran)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test.{_HOST}.{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise WriteError(f"--out {root}: cannot store results there: {exc.strerror or exc}") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):  # gone, or no such pid at all
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def load_results(root: str | Path) -> pd.DataFrame:
    """All cells of a results directory as one long table (k as a nullable integer)."""
    root = Path(root)
    files = sorted(root.glob("*.parquet")) if root.is_dir() else []
    tables, s = [], schema()
    for f in files:
        table, why = verified(f, s)
        if table is None:  # its rows (keyed elsewhere, damaged, ...) are dropped, and said so
            warnings.warn(f"left out result file {f}: {why}", stacklevel=2)
        else:
            tables.append(table)
    if not tables:
        return pd.DataFrame({c: pd.Series(dtype=t.to_pandas_dtype()) for c, t in zip(s.names, s.types)})
    frame = pa.concat_tables(tables).to_pandas()
    frame["k"] = frame["k"].astype("Int64")
    return frame
