"""Dataset specs: validation, suite files (TOML) and grid expansion.

A suite file has a `[suite]` table, optional `[defaults]`, and one `[sections.NAME]` table per
figure. In a section, plain keys fix a field, `grid = {field = [...]}` takes the Cartesian
product, and `zip = {a = [...], b = [...]}` varies coupled fields together.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from .errors import UserError

SHIFT_KINDS = ("none", "covariate_scale", "weight_scale", "weight_shift")
# Names of the sample-level literature (Jin et al. 2024), accepted in suite files.
ALIASES = {"K": "m", "n": "k_max", "B": "n_train"}


@dataclass(frozen=True)
class Spec:
    """One data-generating setting. Its identity (all fields) keys the data and the results."""

    family: str = "prompt"
    d: int = 20
    m: int = 5
    sigma: float = 1.0
    k_max: int = 60
    n_train: int | None = None  # None: a stream of fresh prompts (see data.DEFAULT_N_TRAIN)
    n_test: int = 1000
    shift_kind: str = "none"
    shift_value: float = 0.0
    pool_seed: int = 0
    seed: int = 0
    pi: tuple[float, ...] | None = None  # component weights; None: uniform
    # The data family's own fields (mrbench.families), (name, value) sorted by name, all of them
    # with defaults filled in; read as attributes: spec.snr.
    extra: tuple[tuple[str, Any], ...] = ()
    # Where the spec comes from; part of the results, not of the data.
    suite: str = ""
    section: str = ""
    name: str = ""

    def __getattr__(self, name: str) -> Any:  # the family's own fields
        for key, value in self.__dict__.get("extra", ()):
            if key == name:
                return value
        raise AttributeError(f"spec of family {self.__dict__.get('family')!r} has no field {name!r}")

    def fields(self) -> dict[str, Any]:
        """Every field, the family's own ones in line with the common ones."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return out | dict(self.extra)

    def data_fields(self) -> dict[str, Any]:
        """The fields that determine the data (not the labels)."""
        return {k: v for k, v in self.fields().items() if k not in LABEL_FIELDS}

    def with_seed(self, seed: int) -> "Spec":
        return dataclasses.replace(self, seed=seed)

    def canonical(self) -> str:
        return json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))


LABEL_FIELDS = ("suite", "section", "name")
COMMON_FIELDS = tuple(f.name for f in dataclasses.fields(Spec) if f.name != "extra")
_NON_NEGATIVE_INTS = ("pool_seed", "seed")


def train_spec(spec: Spec) -> Spec:
    """The training distribution of a spec: test-time fields (shift, test size) and labels
    cleared. Specs with equal training specs share training data and fits."""
    return dataclasses.replace(spec, shift_kind="none", shift_value=0.0, n_test=2, suite="", section="", name="")


def _fail(where: str, key: str, value: Any, allowed: str) -> UserError:
    return UserError(f"{where}: field '{key}' = {value!r} is invalid: {allowed}")


def _as_int(where, key, value, lo, hi=None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, key, value, f"must be an integer >= {lo}" + (f" and <= {hi}" if hi else ""))
    if value < lo or (hi is not None and value > hi):
        raise _fail(where, key, value, f"must be an integer >= {lo}" + (f" and <= {hi}" if hi else ""))
    return value


def _as_float(where, key, value, allowed: str, ok=lambda v: True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(where, key, value, f"must be a number, {allowed}")
    value = float(value)
    if not math.isfinite(value) or not ok(value):
        raise _fail(where, key, value, allowed)
    return value


def make_spec(values: dict[str, Any], where: str = "spec") -> Spec:
    """Validate raw values (from TOML or Python) into a Spec; errors name `where` and the field.
    The family checks its own fields; another family's fields are an error unless at their default."""
    from . import families

    own = families.own_fields()
    known = set(COMMON_FIELDS) | set(own)
    v = {}
    for key, value in values.items():
        name = ALIASES.get(key, key)
        if name not in known:
            raise UserError(f"{where}: unknown field '{key}'; valid fields: {', '.join(sorted(known))} "
                            f"(aliases: {', '.join(f'{a} = {b}' for a, b in ALIASES.items())})")
        if name in v:
            raise UserError(f"{where}: field '{name}' is given twice (as '{key}' and under another name)")
        v[name] = value
    name = v.get("family", "prompt")
    if not isinstance(name, str) or name not in families.families():
        raise _fail(where, "family", name, f"must be one of {', '.join(families.families())}")
    family = families.get(name)
    out: dict[str, Any] = {"family": name}
    out["d"] = _as_int(where, "d", v.get("d", 20), 1, 4096)
    out["m"] = _as_int(where, "m", v.get("m", 5), 1, 100_000)
    out["sigma"] = _as_float(where, "sigma", v.get("sigma", 1.0), "must be finite and >= 0", lambda s: s >= 0)
    out["k_max"] = _as_int(where, "k_max", v.get("k_max", 60), 1, 100_000)
    n_train = v.get("n_train", None)
    if n_train in (None, "stream"):
        out["n_train"] = None
    else:
        out["n_train"] = _as_int(where, "n_train", n_train, 1, 100_000_000)
    out["n_test"] = _as_int(where, "n_test", v.get("n_test", 1000), 2, 100_000_000)
    kind = v.get("shift_kind", "none")
    if kind not in SHIFT_KINDS:
        raise _fail(where, "shift_kind", kind, f"must be one of {', '.join(SHIFT_KINDS)}")
    if kind != "none" and not family.shifts:
        with_shifts = [f.name for f in families.families().values() if f.shifts]
        raise _fail(where, "shift_kind", kind, f"test-time shifts apply to family {' or '.join(repr(n) for n in with_shifts)} only")
    out["shift_kind"] = kind
    default_value = {"none": 0.0, "covariate_scale": 1.0, "weight_scale": 1.0, "weight_shift": 0.0}[kind]
    if kind in ("covariate_scale", "weight_scale"):
        out["shift_value"] = _as_float(where, "shift_value", v.get("shift_value", default_value), "must be finite and > 0", lambda s: s > 0)
    elif kind == "weight_shift":
        out["shift_value"] = _as_float(where, "shift_value", v.get("shift_value", default_value), "must be finite")
    else:
        out["shift_value"] = _as_float(where, "shift_value", v.get("shift_value", 0.0), "must be 0 when shift_kind is 'none'", lambda s: s == 0)
    for key in _NON_NEGATIVE_INTS:
        out[key] = _as_int(where, key, v.get(key, 0), 0, 2**63 - 1)
    out["pi"] = _as_pi(where, v.get("pi", "uniform"), out["m"])
    for key in set(v) & set(own) - set(family.fields):
        if v[key] != own[key]:
            owners = [f.name for f in families.families().values() if key in f.fields]
            raise _fail(where, key, v[key], f"applies to family {' or '.join(repr(n) for n in owners)} only")
    out["extra"] = tuple(sorted(family.validate(where, v, out).items()))
    for key in LABEL_FIELDS:
        value = v.get(key, "")
        if not isinstance(value, str):
            raise _fail(where, key, value, "must be a string")
        out[key] = value
    return Spec(**out)


def _as_pi(where, value, m):
    if value in (None, "uniform"):
        return None
    if not isinstance(value, (list, tuple)) or len(value) != m:
        raise _fail(where, "pi", value, f"must be 'uniform' or a list of m = {m} weights")
    weights = tuple(_as_float(where, "pi", w, "weights must be finite and > 0", lambda x: x > 0) for w in value)
    if abs(sum(weights) - 1) > 1e-9:
        raise _fail(where, "pi", value, "weights must sum to 1")
    return weights


@dataclass
class Suite:
    name: str
    path: str
    description: str
    specs: list[Spec]
    solvers: list[str] = field(default_factory=list)
    sections: dict[str, str] = field(default_factory=dict)
    # per section: the solvers its figure compares, and whether it needs stored predictions
    section_solvers: dict[str, list[str]] = field(default_factory=dict)
    save_predictions: set[str] = field(default_factory=set)
    # per section and solver name: (the field it follows, {parameter: one value per field value})
    section_params: dict[str, dict[str, tuple[str, dict[str, dict]]]] = field(default_factory=dict)
    claims: list = field(default_factory=list)  # mrbench.claims.Claim: the papers' claims, checked by the report

    def solvers_for(self, spec: Spec) -> str:
        """The solver request a spec runs with when the command names none: the section's
        list (else the suite's), with the section's per-spec parameters filled in."""
        names = self.section_solvers.get(spec.section) or self.solvers
        per_spec = self.section_params.get(spec.section, {})
        return ",".join(_with_params(n, per_spec, spec) for n in names) or "all"


def builtin_suites() -> dict[str, Path]:
    root = resources.files("mrbench.datasets")
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".toml")}


SECTION_KEYS = ("grid", "zip", "description", "solvers", "save_predictions", "solver_params")  # not spec fields


def _with_params(request: str, per_spec: dict, spec: Spec) -> str:
    """'transformer[preset=\'paper\']' with the spec's own parameters added, e.g. dropout=0.1."""
    from .registry import parse_solver_arg  # here: the registry imports the solver contract

    ((name, params),) = parse_solver_arg(request)
    if name not in per_spec:
        return request
    by, values = per_spec[name]
    params = {**params, **{k: v[getattr(spec, by)] for k, v in values.items()}}
    return f"{name}[{','.join(f'{k}={v!r}' for k, v in params.items())}]"


def _section_params(where: str, table: dict, solvers: list[str], rows: list[dict]) -> dict:
    """[sections.NAME.solver_params.SOLVER]: `by` names a field the section varies, and each
    other key a parameter with one value per value of that field, in the section's order."""
    raw = table.get("solver_params", {})
    if not isinstance(raw, dict):
        raise UserError(f"{where}: solver_params must be a table of tables, one per solver")
    names = {n.split("[")[0].strip() for n in solvers}
    out = {}
    for solver, spec in raw.items():
        at = f"{where}.solver_params.{solver}"
        if solver not in names:
            raise UserError(f"{at}: '{solver}' is not in the section's solvers ({', '.join(sorted(names)) or 'none'})")
        if not isinstance(spec, dict) or "by" not in spec:
            raise UserError(f"{at}: needs 'by', the field the values follow, e.g. by = \"n_train\"")
        by = ALIASES.get(spec["by"], spec["by"])
        varied = [k for k in (rows[0]["_varying"] if rows else []) if ALIASES.get(k, k) == by]
        order = list(dict.fromkeys(row[varied[0]] for row in rows)) if varied else []
        if not order:
            raise UserError(f"{at}: by = {spec['by']!r} is not a field this section varies")
        values = {}
        for param, listed in spec.items():
            if param == "by":
                continue
            if not isinstance(listed, list) or len(listed) != len(order):
                raise UserError(f"{at}: {param} must list {len(order)} values, one per {by} in {order}")
            values[param] = dict(zip(order, listed))
        out[solver] = (by, values)
    return out


def _solver_list(where: str, value, empty_ok: bool = True) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value) or not (value or empty_ok):
        raise UserError(f"{where}: solvers must be a non-empty list of strings, e.g. solvers = [\"ols\", \"em[n_init=5]\"]")
    return value


def _expand_section(where: str, table: dict[str, Any]) -> list[dict[str, Any]]:
    fixed = {k: v for k, v in table.items() if k not in SECTION_KEYS}
    grid = table.get("grid", {})
    zipped = table.get("zip", {})
    for name, sub in (("grid", grid), ("zip", zipped)):
        if not isinstance(sub, dict):
            raise UserError(f"{where}: '{name}' must be a table of lists, e.g. {name} = {{ m = [5, 20] }}")
        for key, values in sub.items():
            if not isinstance(values, list) or not values:
                raise UserError(f"{where}: {name}.{key} must be a non-empty list, got {values!r}")
    lengths = {len(v) for v in zipped.values()}
    if len(lengths) > 1:
        raise UserError(f"{where}: the lists in 'zip' must have equal lengths, got {sorted(lengths)}")
    zip_rows = [dict(zip(zipped, row)) for row in zip(*zipped.values())] if zipped else [{}]
    grid_rows = [dict(zip(grid, row)) for row in itertools.product(*grid.values())]
    varying = list(grid) + list(zipped)
    rows = []
    for g in grid_rows:
        for z in zip_rows:
            row = {**fixed, **g, **z}
            row["_varying"] = varying
            rows.append(row)
    return rows


def _spec_name(section: str, row: dict[str, Any], varying: list[str]) -> str:
    parts = [f"{k}={row[k]}" for k in varying if k not in ("seed",)]
    return f"{section}/" + ",".join(parts) if parts else section


def load_suite(ref: str | Path, max_specs: int | None = None) -> Suite:
    """Load a suite by built-in name, NAME:SECTION, or path to a TOML file. With `max_specs`,
    a suite whose grids hold more specs is refused before they are expanded."""
    ref = str(ref)
    section_filter = None
    builtins = builtin_suites()
    path = Path(ref)
    if not path.suffix == ".toml" and ":" in ref:
        ref, section_filter = ref.split(":", 1)
        path = Path(ref)
    elif path.suffix == ".toml" and not path.exists() and ":" in ref:
        ref, section_filter = ref.rsplit(":", 1)
        path = Path(ref)
    if ref in builtins:
        path = builtins[ref]
    elif not path.exists():
        raise UserError(f"unknown suite '{ref}'; built-in suites: {', '.join(sorted(builtins))} (or pass a path to a .toml file)")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    return _parse_suite(raw, path, section_filter, max_specs)


def _grid_size(table: dict) -> int:
    """Specs a section expands to (its grid's product times its zip's length), counted without expanding."""
    grid, zipped = table.get("grid", {}), table.get("zip", {})
    size = math.prod(len(v) for v in grid.values() if isinstance(v, list)) if isinstance(grid, dict) else 1
    lengths = [len(v) for v in zipped.values() if isinstance(v, list)] if isinstance(zipped, dict) else []
    return size * (max(lengths) if lengths else 1)


def _parse_suite(raw: dict[str, Any], path: Path, section_filter: str | None, max_specs: int | None = None) -> Suite:
    where = str(path)
    unknown = set(raw) - {"suite", "defaults", "sections", "claims"}
    if unknown:
        raise UserError(f"{where}: unknown top-level table(s) {sorted(unknown)}; expected [suite], [defaults], "
                        f"[sections.NAME], [claims.NAME]")
    meta = raw.get("suite", {})
    defaults = raw.get("defaults", {})
    sections = raw.get("sections", {})
    if not isinstance(meta, dict) or not isinstance(defaults, dict) or not isinstance(sections, dict):
        raise UserError(f"{where}: [suite], [defaults] and [sections.NAME] must be tables")
    bad_meta = set(meta) - {"name", "description", "solvers"}
    if bad_meta:
        raise UserError(f"{where}: unknown field(s) in [suite]: {sorted(bad_meta)}; valid: name, description, solvers")
    name = meta.get("name", path.stem)
    if not isinstance(name, str):
        raise UserError(f"{where}: [suite] name must be a string")
    solvers = _solver_list(f"{where}: [suite]", meta.get("solvers", []))
    if not sections:
        raise UserError(f"{where}: no [sections.NAME] table; a suite needs at least one section")
    if section_filter is not None and section_filter not in sections:
        raise UserError(f"{where}: unknown section '{section_filter}'; sections: {', '.join(sections)}")
    if max_specs is not None:
        size = sum(_grid_size(t) for n, t in sections.items() if isinstance(t, dict) and section_filter in (None, n))
        if size > max_specs:
            raise UserError(f"{where}: its grids expand to {size:,} specs, over the limit of {max_specs:,}: "
                            f"pass --yes to expand and run them")
    specs, seen, descriptions, section_solvers, predictions, params = [], set(), {}, {}, set(), {}
    for sec_name, table in sections.items():
        if section_filter is not None and sec_name != section_filter:
            continue
        if not isinstance(table, dict):
            raise UserError(f"{where}: [sections.{sec_name}] must be a table")
        descriptions[sec_name] = str(table.get("description", ""))
        sec_where = f"{where}: [sections.{sec_name}]"
        if "solvers" in table:
            section_solvers[sec_name] = _solver_list(sec_where, table["solvers"], empty_ok=False)
        if not isinstance(table.get("save_predictions", False), bool):
            raise UserError(f"{sec_where}: save_predictions must be true or false")
        if table.get("save_predictions"):
            predictions.add(sec_name)
        rows = _expand_section(sec_where, table)
        if "solver_params" in table:
            params[sec_name] = _section_params(sec_where, table, section_solvers.get(sec_name, solvers), rows)
        for row in rows:
            varying = row.pop("_varying")
            values = {**defaults, **row, "suite": name, "section": sec_name}
            values["name"] = _spec_name(sec_name, values, varying)
            spec = make_spec(values, sec_where)
            if spec.name in seen:
                hint = " (replicates over seeds come from `--seeds N`, not from a grid)" if "seed" in varying else ""
                raise UserError(f"{sec_where}: two specs share the name '{spec.name}'{hint}")
            seen.add(spec.name)
            specs.append(spec)
    claims = []
    if raw.get("claims"):
        from .claims import parse_claims
        from .registry import load_registry

        claims = parse_claims(where, raw["claims"], sections, load_registry())
    return Suite(name=name, path=where, description=str(meta.get("description", "")), specs=specs, solvers=solvers,
                 sections=descriptions, section_solvers=section_solvers, save_predictions=predictions,
                 section_params=params, claims=claims)


def filter_specs(specs: list[Spec], where: str | None) -> list[Spec]:
    """Keep the specs matching a pandas-query expression over the spec fields."""
    if not where:
        return specs
    import pandas as pd

    from .families import own_fields

    from .where import evaluate

    frame = pd.DataFrame([dict.fromkeys(own_fields()) | s.fields() for s in specs])
    keep = evaluate(where, frame)  # parsed and walked: user text never reaches eval
    return [s for s, k in zip(specs, keep) if k]
