"""Solver registry: the `mrbench.solvers` entry-point group, the solvers data families bring
(their oracles), plus `--plugin FILE.py` files, which may also define data families.

A solver whose import fails is listed as unavailable with its error; the others still run.
"""
from __future__ import annotations

import ast
import importlib.util
import sys
import traceback
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .errors import UserError
from .solver import Solver

GROUP = "mrbench.solvers"


@dataclass
class Entry:
    name: str
    cls: type[Solver] | None
    source: str
    error: str = ""

    @property
    def available(self) -> bool:
        return self.cls is not None


def _short_error(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def load_plugin(path: str | Path) -> list[Entry]:
    """Import a user's file and register every Solver subclass with a `name` defined in it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--plugin {path}: no such file")
    mod_name = f"mrbench_plugin_{path.stem}"
    try:
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        return [Entry(name, None, str(path), _short_error(exc)) for name in _declared_names(path)] or [
            Entry(path.stem, None, str(path), _short_error(exc))]
    from . import families

    mine = [obj for obj in vars(module).values() if isinstance(obj, type) and obj.__module__ == mod_name]
    found = [c for c in mine if issubclass(c, Solver) and c is not Solver and c.name]
    kinds = [c for c in mine if issubclass(c, families.Family) and c.name]
    for cls in kinds:
        families.register(cls)
        found += [c for c in cls.solvers if c not in found]
    if not found and not kinds:
        raise UserError(f"--plugin {path}: defines no Solver subclass with a `name` (nor a data Family)")
    return [Entry(cls.name, cls, str(path)) for cls in found]


def _declared_names(path: Path) -> list[str]:
    """Best effort: the `name = "..."` of classes in a file that failed to import."""
    try:
        tree = ast.parse(path.read_text())
    except SyntaxError:
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if (isinstance(stmt, ast.Assign) and any(getattr(t, "id", "") == "name" for t in stmt.targets)
                        and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)):
                    names.append(stmt.value.value)
    return names


def load_registry(plugins: tuple[str, ...] | list[str] = ()) -> dict[str, Entry]:
    registry: dict[str, Entry] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            cls = ep.load()
            registry[ep.name] = Entry(ep.name, cls, ep.value)
        except Exception as exc:
            registry[ep.name] = Entry(ep.name, None, ep.value, _short_error(exc))
    from .families import families

    for family in families().values():
        for cls in family.solvers:
            registry.setdefault(cls.name, Entry(cls.name, cls, f"{cls.__module__}:{cls.__qualname__}"))
    for path in plugins:
        for entry in load_plugin(path):
            if entry.name in registry and registry[entry.name].source != entry.source:
                # one name, two solvers: their results would mix under one label in the store
                raise UserError(f"--plugin {path}: solver name '{entry.name}' is taken by "
                                f"{registry[entry.name].source}; give the class another `name`")
            registry[entry.name] = entry
    return registry


def parse_solver_arg(text: str) -> list[tuple[str, dict[str, Any]]]:
    """'all' | 'a,b' | 'em[n_init=5,tol=1e-4]' -> [(name, params)], commas inside [] kept."""
    items, depth, cur = [], 0, ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    out = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if "[" in item:
            if not item.endswith("]"):
                raise UserError(f"solver '{item}': expected NAME[param=value,...]")
            name, body = item[:-1].split("[", 1)
            params = {}
            for pair in filter(None, (p.strip() for p in body.split(","))):
                if "=" not in pair:
                    raise UserError(f"solver '{item}': parameter '{pair}' is not param=value")
                key, value = pair.split("=", 1)
                params[key.strip()] = _parse_value(value.strip())
            out.append((name.strip(), params))
        else:
            out.append((item, {}))
    return out


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered in ("none", "null"):
            return None
        return text


def instantiate(registry: dict[str, Entry], requests: list[tuple[str, dict[str, Any]]]) -> list[Solver]:
    """Build solver instances; 'all' expands to every registered solver (unavailable ones too,
    so they are reported); unknown names and parameters are user errors listing valid ones."""
    solvers: list[Solver] = []
    for name, params in requests:
        if name == "all":
            solvers.extend(_Unavailable(e) if not e.available else e.cls() for e in registry.values())
            continue
        if name not in registry:
            raise UserError(f"unknown solver '{name}'; valid solvers: {', '.join(sorted(registry))}")
        entry = registry[name]
        if not entry.available:
            solvers.append(_Unavailable(entry))
            continue
        valid = entry.cls.param_defaults()
        for key in params:
            if key not in valid:
                raise UserError(f"solver '{name}' has no parameter '{key}'; valid parameters: "
                                f"{', '.join(valid) or '(none)'}")
        # lam=1 is lam=1.0: one cell, one label, one key however the number is written
        params = {k: float(v) if type(valid[k]) is float and type(v) is int else v for k, v in params.items()}
        try:
            solver = entry.cls(**params)
            solver.check_params()
        except Exception as exc:  # a plugin's __init__ may raise anything
            raise UserError(f"solver '{name}': {exc}") from None
        solvers.append(solver)
    seen, unique = set(), []
    for s in solvers:
        if s.label() not in seen:
            seen.add(s.label())
            unique.append(s)
    return unique


class _Unavailable(Solver):
    """Stands in for a solver whose import failed, so the run reports it as skipped."""

    def __init__(self, entry: Entry | None = None):
        self.entry = entry

    def label(self) -> str:
        return self.entry.name

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.entry.name

    def get_params(self) -> dict[str, Any]:
        return {}

    def skip_reason(self, spec, device: str) -> str | None:
        return f"unavailable: {self.entry.error}"
