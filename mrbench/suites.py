"""Suite files (TOML): sections, grid expansion, the solvers each figure compares, claims.

A suite file has a `[suite]` table, optional `[defaults]`, and one `[sections.NAME]` table per
figure. In a section, plain keys fix a field, `grid = {field = [...]}` takes the Cartesian
product, and `zip = {a = [...], b = [...]}` varies coupled fields together.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from .claims import parse_claims
from .errors import UserError
from .families import make_spec, own_fields
from .registry import load_registry, parse_solver_arg
from .spec import ALIASES, Spec
from .where import evaluate


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
        claims = parse_claims(where, raw["claims"], sections, load_registry())
    return Suite(name=name, path=where, description=str(meta.get("description", "")), specs=specs, solvers=solvers,
                 sections=descriptions, section_solvers=section_solvers, save_predictions=predictions,
                 section_params=params, claims=claims)


def filter_specs(specs: list[Spec], where: str | None) -> list[Spec]:
    """Keep the specs matching a pandas-query expression over the spec fields."""
    if not where:
        return specs
    import pandas as pd  # here: loading a suite needs no pandas

    frame = pd.DataFrame([dict.fromkeys(own_fields()) | s.fields() for s in specs])
    keep = evaluate(where, frame)  # parsed and walked: user text never reaches eval
    return [s for s, k in zip(specs, keep) if k]
