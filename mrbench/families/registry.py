"""The family registry: the `mrbench.families` entry-point group, plus Family subclasses
defined in `--plugin FILE.py` files."""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from ..errors import UserError
from .base import Family

GROUP = "mrbench.families"
_families: dict[str, Family] = {}


def families() -> dict[str, Family]:
    """Every registered family by name (entry points loaded on first use)."""
    if not _families:
        for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
            register(ep.load())
    return _families


def register(cls: type[Family]) -> None:
    """Add a family (a plugin file's Family subclass); a name taken by another class is an error."""
    if not cls.name:
        raise UserError(f"data family {cls.__qualname__} needs a `name`")
    have = _families.get(cls.name)
    if have is not None and type(have) is not cls and type(have).__qualname__ != cls.__qualname__:
        raise UserError(f"data family name '{cls.name}' is taken by {type(have).__module__}."
                        f"{type(have).__qualname__}; give the class another `name`")
    _families[cls.name] = cls()


def get(name: str) -> Family:
    known = families()
    if name not in known:
        raise UserError(f"unknown data family '{name}'; valid families: {', '.join(sorted(known))}")
    return known[name]


def family_of(spec) -> Family:
    return get(spec.family)


def own_fields() -> dict[str, Any]:
    """The fields of every registered family, with their defaults (columns of the results)."""
    return {k: v for f in families().values() for k, v in f.fields.items()}

