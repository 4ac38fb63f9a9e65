"""How numbers read in leaderboards, the same on the console and in the HTML report: three
significant digits, signed differences, times in ms, s or min, and a dash where a value is
undefined (a ratio to an oracle whose error is 0, a cell without a timing)."""
from __future__ import annotations

import math

import numpy as np

DASH = "—"


def _undefined(value) -> bool:
    return (value is None or isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number))
            or not math.isfinite(value))


def num(value, digits: int = 3) -> str:
    return DASH if _undefined(value) else f"{value:.{digits}g}"


def signed(value, digits: int = 3) -> str:
    return DASH if _undefined(value) else f"{value:+.{digits}g}"


def duration(value) -> str:
    if _undefined(value):
        return DASH
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s" if value < 120 else f"{value / 60:.3g} min"


def megabytes(value) -> str:
    return DASH if _undefined(value) else f"{value:.0f}"


def text_table(columns: dict[str, list[str]], right: tuple[str, ...] = ()) -> str:
    """Plain-text columns two spaces apart, each header aligned as its values are: the
    `right` columns (numbers) to the right, the others to the left."""
    widths = {h: max([len(h), *map(len, v)]) for h, v in columns.items()}

    def line(cells):
        return "  ".join(c.rjust(widths[h]) if h in right else c.ljust(widths[h]) for h, c in zip(columns, cells)).rstrip()

    return "\n".join([line(columns), *map(line, zip(*columns.values()))])
