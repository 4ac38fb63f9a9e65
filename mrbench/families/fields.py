"""Raw values (from TOML or Python) into a Spec: the common fields checked here, each
family's own fields and shift kinds by the family."""
from __future__ import annotations

import math
from typing import Any

from ..errors import UserError
from ..spec import ALIASES, COMMON_FIELDS, LABEL_FIELDS, Spec
from .base import _invalid
from .registry import families, get, own_fields

_NON_NEGATIVE_INTS = ("pool_seed", "seed")


def _as_int(where, key, value, lo, hi=None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(where, key, value, f"must be an integer >= {lo}" + (f" and <= {hi}" if hi else ""))
    if value < lo or (hi is not None and value > hi):
        raise _invalid(where, key, value, f"must be an integer >= {lo}" + (f" and <= {hi}" if hi else ""))
    return value


def _as_float(where, key, value, allowed: str, ok=lambda v: True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(where, key, value, f"must be a number, {allowed}")
    value = float(value)
    if not math.isfinite(value) or not ok(value):
        raise _invalid(where, key, value, allowed)
    return value


def make_spec(values: dict[str, Any], where: str = "spec") -> Spec:
    """Validate raw values (from TOML or Python) into a Spec; errors name `where` and the field.
    The family checks its own fields; another family's fields are an error unless at their default."""
    own = own_fields()
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
    if not isinstance(name, str) or name not in families():
        raise _invalid(where, "family", name, f"must be one of {', '.join(families())}")
    family = get(name)
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
    out["shift_kind"], out["shift_value"] = _shift(where, v, family)
    for key in _NON_NEGATIVE_INTS:
        out[key] = _as_int(where, key, v.get(key, 0), 0, 2**63 - 1)
    out["pi"] = _as_pi(where, v.get("pi", "uniform"), out["m"])
    for key in set(v) & set(own) - set(family.fields):
        if v[key] != own[key]:
            owners = [f.name for f in families().values() if key in f.fields]
            raise _invalid(where, key, v[key], f"applies to family {' or '.join(repr(n) for n in owners)} only")
    out["extra"] = tuple(sorted(family.validate(where, v, out).items()))
    for key in LABEL_FIELDS:
        value = v.get(key, "")
        if not isinstance(value, str):
            raise _invalid(where, key, value, "must be a string")
        out[key] = value
    return Spec(**out)


def _shift(where: str, v: dict[str, Any], family) -> tuple[str, float]:
    """shift_kind and shift_value, checked against the kinds the family declares."""
    kinds = {k: rule for f in families().values() for k, rule in f.shift_kinds.items()}
    kind = v.get("shift_kind", "none")
    if not isinstance(kind, str) or kind != "none" and kind not in kinds:
        raise _invalid(where, "shift_kind", kind, f"must be one of {', '.join(('none', *kinds))}")
    if kind != "none" and kind not in family.shift_kinds:
        with_shifts = [f.name for f in families().values() if kind in f.shift_kinds]
        raise _invalid(where, "shift_kind", kind, f"test-time shifts apply to family {' or '.join(repr(n) for n in with_shifts)} only")
    if kind == "none":
        return kind, _as_float(where, "shift_value", v.get("shift_value", 0.0), "must be 0 when shift_kind is 'none'",
                               lambda s: s == 0)
    default, positive = family.shift_kinds[kind]
    return kind, _as_float(where, "shift_value", v.get("shift_value", default),
                           "must be finite and > 0" if positive else "must be finite", lambda s: s > 0 or not positive)


def _as_pi(where, value, m):
    if value in (None, "uniform"):
        return None
    if not isinstance(value, (list, tuple)) or len(value) != m:
        raise _invalid(where, "pi", value, f"must be 'uniform' or a list of m = {m} weights")
    weights = tuple(_as_float(where, "pi", w, "weights must be finite and > 0", lambda x: x > 0) for w in value)
    if abs(sum(weights) - 1) > 1e-9:
        raise _invalid(where, "pi", value, "weights must sum to 1")
    return weights
