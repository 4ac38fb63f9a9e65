"""Leaderboards as tables papers print (Markdown, CSV, LaTeX), and the comparison of two
results directories (as `asv compare` compares two commits)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from . import formatting as fmt
from .claims import spec_fields
from .errors import UserError
from .families import families
from .leaderboard import current, leaderboard, paired_difference
from .store import Store, load_results
from .where import evaluate as where_matches

FORMATS = ("text", "md", "csv", "latex")
COLUMNS = {"spec": "spec", "rank": "rank", "label": "solver", "nmse": "mean NMSE", "se": "SE", "excess": "excess",
           "ratio": "ratio", "fit_s": "fit s", "predict_s": "predict s", "seeds": "seeds"}


def select(results: pd.DataFrame, where: str | None = None, solvers: str | None = None) -> pd.DataFrame:
    """The rows of the specs matching `where` (as in `mrbench run --where`) and of the solver
    labels in the comma-separated `solvers` (a name selects all its variants: `transformer`
    also selects `transformer[preset=paper]`). The data families' Bayes references always
    stay: ratios and excesses are to them."""
    if where:
        results = results[where_matches(where, results, spec_fields(), "--where").to_numpy()]
    if solvers:
        wanted = [s.strip() for s in solvers.split(",") if s.strip()]
        known = sorted(set(results["label"]))
        unknown = [w for w in wanted if not any(lab == w or lab.startswith(w + "[") for lab in known)]
        if unknown:
            raise UserError(f"--solvers: {', '.join(unknown)} not in these results; they hold: {', '.join(known)}")
        keep = wanted + [f.oracle for f in families().values()]
        results = results[[lab in keep or any(lab.startswith(w + "[") for w in wanted) for lab in results["label"]]]
    return results


def board(root: str | Path, where: str | None = None, solvers: str | None = None) -> pd.DataFrame:
    """The leaderboard of a results directory (ranks paired over prompts), one row per spec and
    solver: spec, rank, resolved, label, nmse, se, excess, ratio, times and seeds."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such results directory")
    table = leaderboard(select(current(load_results(root)), where, solvers), Store(root))
    return table[[c for c in ("spec", "rank", "resolved", "label", "solver_group", "nmse", "se", "excess", "ratio",
                              "fit_s", "predict_s", "seeds") if c in table]]


def render(table: pd.DataFrame, form: str) -> str:
    """A leaderboard (board's frame) as text, Markdown, CSV or LaTeX (booktabs): numbers with
    the digits the console shows, a rank not resolved from some solver outside its group with '?'."""
    _check_format(form)
    if form == "csv":
        return _csv(table)
    shown = pd.DataFrame({
        "spec": table["spec"], "rank": [f"{r}{'' if ok else '?'}" for r, ok in zip(table["rank"], table["resolved"])],
        "solver": table["label"], "mean NMSE": table["nmse"].map(fmt.num), "SE": table["se"].map(lambda v: fmt.num(v, 2)),
        "excess": table["excess"].map(fmt.signed), "ratio": table["ratio"].map(fmt.num)})
    return _emit(shown, form, right=("mean NMSE", "SE", "excess", "ratio"), group="spec")


def claims_table(verdicts) -> pd.DataFrame:
    """The claims scorecard (claims.evaluate's verdicts) as a frame: one row per claim and
    model variant, with the measured value and interval as printed, the threshold and the quote."""
    return pd.DataFrame([{"claim": v.claim.name, "source": v.claim.source, "measured": v.measured(),
                          "holds if": v.claim.threshold(), "verdict": v.verdict,
                          "quote": fmt.math_text(v.claim.quote)} for v in verdicts],
                        columns=["claim", "source", "measured", "holds if", "verdict", "quote"])


def render_claims(verdicts, form: str) -> str:
    """The scorecard as text, Markdown, CSV or LaTeX; the quote is a column of the CSV only
    (the other formats are tables to read, where it would swamp the verdicts)."""
    _check_format(form)
    table = claims_table(verdicts)
    if form == "csv":
        return _csv(table)
    # LaTeX: the long columns wrap (booktabs p columns), so the table fits a page
    return _emit(table.drop(columns="quote"), form, align=r"lp{0.2\linewidth}p{0.4\linewidth}ll")


def _check_format(form: str) -> None:
    if form not in FORMATS:
        raise UserError(f"--format {form!r}: valid formats are {', '.join(FORMATS)}")


def _csv(table: pd.DataFrame) -> str:
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    return buf.getvalue()


def _emit(shown: pd.DataFrame, form: str, right=(), group: str | None = None, align: str | None = None) -> str:
    """Strings in columns as a text, Markdown or LaTeX table; `right`: the number columns;
    `group`: a column whose changes the LaTeX table separates with a rule; `align`: the LaTeX
    column spec (default: l, r for the `right` ones)."""
    if form == "text":
        return fmt.text_table({c: list(shown[c]) for c in shown}, right=right) + "\n"
    if form == "md":
        head = "| " + " | ".join(shown.columns) + " |\n|" + "|".join(
            "---:" if c in right else "---" for c in shown.columns) + "|\n"
        return head + "".join("| " + " | ".join(_md(v) for v in row) + " |\n" for row in shown.itertuples(index=False))
    align = align or "".join("r" if c in right else "l" for c in shown.columns)
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(_tex(c) for c in shown.columns) + r" \\",
             r"\midrule"]
    last = None
    for row in shown.itertuples(index=False):
        at = getattr(row, group) if group else None
        if group and last is not None and at != last:
            lines.append(r"\midrule")
        last = at
        lines.append(" & ".join(_tex(v) for v in row) + r" \\")
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"]) + "\n"


def _md(value) -> str:
    return str(value).replace("|", r"\|")


def _tex(value) -> str:
    out = str(value)
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                          ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
                          ("^", r"\textasciicircum{}"), ("—", "---")):
        out = out.replace(char, escaped) if char != "\\" else out.replace("\\", "\x00")
    return out.replace("\x00", r"\textbackslash{}")


def compare(a: str | Path, b: str | Path, where: str | None = None, solvers: str | None = None) -> pd.DataFrame:
    """Each (spec, seed, solver) present in both results directories: mean NMSE in A and in B,
    their ratio B / A, and whether they differ. Both hold the same test prompts when the spec
    and seed are the same (data are a function of the spec), so the difference is paired over
    prompts (paired_difference) where both stored per-prompt scores; `change` is '+' (B worse),
    '-' (B better) beyond 1.96 paired SE, else '' (or '?' without per-prompt scores)."""
    frames, stores = [], []
    for root in (a, b):
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"{root}: no such results directory")
        cells = select(current(load_results(root)), where, solvers).drop_duplicates("cell_key")
        frames.append(cells[cells["status"] == "ok"].set_index(["spec", "seed", "label"]))
        stores.append(Store(root))
    both = frames[0].index.intersection(frames[1].index)
    rows = []
    for place in both:
        x, y = frames[0].loc[place], frames[1].loc[place]
        pa, pb = stores[0].prompt_scores(x["cell_key"]), stores[1].prompt_scores(y["cell_key"])
        diff, se = float(y["nmse_avg"] - x["nmse_avg"]), float("nan")
        if pa is not None and pb is not None and len(pa) == len(pb):
            diff, se, _ = paired_difference({0: pb}, {0: pa})
        change = "?" if not np.isfinite(se) else "" if abs(diff) <= max(1.96 * se, 1e-12) else "+" if diff > 0 else "-"
        rows.append({"spec": place[0], "seed": place[1], "label": place[2], "nmse_a": float(x["nmse_avg"]),
                     "nmse_b": float(y["nmse_avg"]), "ratio": float(y["nmse_avg"]) / float(x["nmse_avg"])
                     if x["nmse_avg"] > 0 else float("nan"), "diff": diff, "se": se, "change": change,
                     "same_code": x["code_version"] == y["code_version"]})
    return pd.DataFrame(rows, columns=["spec", "seed", "label", "nmse_a", "nmse_b", "ratio", "diff", "se", "change",
                                       "same_code"])


def compare_text(table: pd.DataFrame, only_changed: bool = False) -> str:
    shown = table[table["change"].isin(["+", "-"])] if only_changed else table
    if shown.empty:
        return "no cell in common" if table.empty else "no significant change in the cells both directories hold"
    text = fmt.text_table({
        "": list(shown["change"]), "spec": list(shown["spec"]), "seed": list(shown["seed"].astype(str)),
        "solver": list(shown["label"]), "NMSE A": list(shown["nmse_a"].map(fmt.num)),
        "NMSE B": list(shown["nmse_b"].map(fmt.num)), "B / A": list(shown["ratio"].map(fmt.num)),
        "B - A": list(shown["diff"].map(fmt.signed)), "SE": list(shown["se"].map(lambda v: fmt.num(v, 2))),
        "code": ["same" if s else "changed" for s in shown["same_code"]]},
        right=("seed", "NMSE A", "NMSE B", "B / A", "B - A", "SE"))
    counts = table["change"].value_counts()
    return (text + f"\n{len(table)} cells in both: {counts.get('+', 0)} worse in B (+), {counts.get('-', 0)} better "
            f"(-), beyond 1.96 paired SE; {counts.get('?', 0)} without per-prompt scores (?)")
