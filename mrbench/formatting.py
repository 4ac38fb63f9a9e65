"""How numbers read in leaderboards, the same on the console and in the HTML report: three
significant digits, signed differences, times in ms, s or min, and a dash where a value is
undefined (a ratio to an oracle whose error is 0, a cell without a timing)."""
from __future__ import annotations

import math
import re

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
    if value < 120:
        return f"{value:.3g} s"
    return f"{value / 60:.3g} min" if value < 7200 else f"{value / 3600:.3g} h"


def megabytes(value) -> str:
    return DASH if _undefined(value) else f"{value:.0f}"


def text_table(columns: dict[str, list[str]], right: tuple[str, ...] = ()) -> str:
    """Plain-text columns two spaces apart, each header aligned as its values are: the
    `right` columns (numbers) to the right, the others to the left."""
    widths = {h: max([len(h), *map(len, v)]) for h, v in columns.items()}

    def line(cells):
        return "  ".join(c.rjust(widths[h]) if h in right else c.ljust(widths[h]) for h, c in zip(columns, cells)).rstrip()

    return "\n".join([line(columns), *map(line, zip(*columns.values()))])


_TEX = {r"\geq": "≥", r"\ge": "≥", r"\leq": "≤", r"\le": "≤", r"\neq": "≠", r"\approx": "≈", r"\in": "∈",
        r"\kappa": "κ", r"\sigma": "σ", r"\pi": "π", r"\varepsilon": "ε", r"\epsilon": "ε", r"\alpha": "α",
        r"\beta": "β", r"\lambda": "λ", r"\mu": "μ", r"\tau": "τ", r"\Sigma": "Σ", r"\infty": "∞",
        r"\cdot": "·", r"\times": "×", r"\sim": "~", r"\to": "→", r"\ldots": "…", r"\{": "{", r"\}": "}",
        r"\|": "‖", r"\,": " ", r"\;": " "}
_SUB = dict(zip("0123456789aeijklmnoprstux", "₀₁₂₃₄₅₆₇₈₉ₐₑᵢⱼₖₗₘₙₒₚᵣₛₜᵤₓ"))


def math_text(text: str) -> str:
    """The inline LaTeX of a quote ($...$) as plain Unicode for display ("$\\text{MSE}(f) \\geq
    \\text{MSE}(f_\\pi^*)$" reads "MSE(f) ≥ MSE(f_π*)"); the quote itself stays verbatim."""
    def one(m: re.Match) -> str:
        s = re.sub(r"\\(?:text|mathrm|mathbf|mathcal|mathbb|operatorname)\{([^{}]*)\}", r"\1", m.group(1))
        s = re.sub(r"\\(?:widehat|hat)\{([^{}]*)\}", "\\1\u0302", s)
        s = re.sub(r"\\sqrt\{([^{}]*)\}", r"√(\1)", s)
        s = re.sub(r"\^(?:\{\*\}|\*)", "*", s)
        s = re.sub(r"_(?:\{([0-9a-z])\}|([0-9a-z])(?![0-9a-z]))",
                   lambda g: _SUB.get(g.group(1) or g.group(2), "_" + (g.group(1) or g.group(2))), s)
        s = re.sub(r"(?<!\\)[{}]", "", s)  # grouping braces; escaped ones are literal
        for tex in sorted(_TEX, key=len, reverse=True):  # \geq before \ge; a macro ends at a non-letter
            s = re.sub(re.escape(tex) + (r"(?![A-Za-z])" if tex[-1].isalpha() else ""), _TEX[tex], s)
        return s
    return re.sub(r"\$([^$]+)\$", one, text)
