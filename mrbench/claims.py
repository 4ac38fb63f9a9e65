"""Claims: a paper's sentence, declared as data in a suite file and checked against the store.

    [claims.fig2_near_bayes]
    quote = "..."                       # the paper's words
    source = "Pathak et al. 2023, Sec. 3.1, Fig. 2"
    sections = ["fig2"]                 # where it is measured (every section when omitted)
    where = "sigma > 0"                 # optional: a condition on the spec fields
    metric = "ratio"                    # one of METRICS
    solver = "transformer"              # a solver label, as in the results
    reference = "posterior_mean"        # ratio, worst_ratio
    holds_if = "<= 1.05"                # "<= X", ">= X" or "in [A, B]"

Metrics (each value carries a 95% interval; over every spec the claim covers, the one
furthest from holding counts):
- ratio: mean NMSE over k = k_from..k_to of `solver` over `reference`'s. Paired over the
  same prompts (and seeds) when the per-prompt scores are stored and the range is 1..k_max
  (delta method); otherwise from the per-k standard errors, unpaired and assuming the errors
  at different k fully correlated (a wider interval).
- worst_ratio: the largest per-k ratio over k = k_from..k_to; per-k delta-method intervals.
- degradation: the mean NMSE of `solver` at each shifted spec over its NMSE at the spec of
  the same section with shift_value = `baseline` (the other fields equal), divided by the
  same quotient of `reference` when one is named; delta-method interval from the stored
  standard errors, unpaired.
- probe_closest: which of `candidates` is closest to `solver` in d_k^sq (mean over k, stored
  predictions); holds when it is `expected`; inconclusive unless it is also closer than the
  runner-up on significantly more than half of the prompts (a sign test: d^2 has heavy tails,
  OLS's spike at k = d above all, which a t interval on the mean would let decide).
- slope: least-squares slope of log(error) against log(`field`) over the specs, where the
  error is the mean excess MSE at the last query for the sample-level family, else the mean
  NMSE excess over `reference`; t interval.
`unmeasurable = "reason"` lists a claim the suites cannot measure (a baseline not shipped).
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import UserError
from .families import families, own_fields
from .leaderboard import _detail, paired_ratio
from .registry import instantiate, parse_solver_arg
from .spec import COMMON_FIELDS
from .where import evaluate as where_matches
from .where import parse as where_parse

METRICS = ("ratio", "worst_ratio", "degradation", "probe_closest", "slope")
SLOPE_FIELDS = ("k_max", "n_train", "d", "m", "sigma")  # and each family's own slope_fields
_KEYS = {"quote", "source", "sections", "where", "metric", "solver", "reference", "holds_if", "k_from", "k_to",
         "candidates", "expected", "field", "baseline", "unmeasurable", "exclude_k", "note"}
# Solvers whose claims are evaluated for every variant the results hold (the paper preset, the
# CPU presets, per-spec dropout): a claim on a trained model is a claim on each model trained.
VARIANT_SOLVERS = ("transformer",)
Z = 1.96
HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED = "holds", "fails", "inconclusive", "not measured"


@dataclass(frozen=True)
class Claim:
    name: str
    quote: str
    source: str
    metric: str
    solver: str = ""
    sections: tuple[str, ...] = ()
    where: str | None = None
    reference: str | None = None
    holds_if: tuple = ()  # ("<=", x), (">=", x) or ("in", a, b)
    k_from: int = 1
    k_to: int | None = None
    candidates: tuple[str, ...] = ()
    expected: str | None = None
    field: str | None = None
    baseline: float | None = None
    unmeasurable: str | None = None
    exclude_k: tuple[int, int] | None = None  # ratio metrics: positions [a, b] left out (OLS's spike at k = d)
    note: str | None = None  # shown with the verdict: what a reference is here (e.g. a comparator)

    def threshold(self) -> str:
        if self.metric == "probe_closest":
            return f"closest is {self.expected}"
        op = self.holds_if
        return f"in [{op[1]:g}, {op[2]:g}]" if op and op[0] == "in" else (f"{op[0]} {op[1]:g}" if op else "")


@dataclass
class Verdict:
    claim: Claim
    verdict: str
    value: float | str | None = None
    low: float | None = None
    high: float | None = None
    detail: str = ""
    specs: list[str] = field(default_factory=list)

    def measured(self) -> str:
        if self.value is None:
            return self.detail
        if isinstance(self.value, str):
            return f"{self.value} ({self.detail})" if self.detail else self.value
        return self.interval() + (f" ({self.detail})" if self.detail else "")

    def interval(self) -> str:
        """The value and its interval with the digits that decide the verdict: enough decimals
        to tell each end from the nearest threshold (ratio - 1 = +0.0003 [-0.0002, +0.0008])."""
        bounds = [b for b in self.claim.holds_if[1:] if isinstance(b, (int, float))]
        gap = min((abs(e - b) for e in (self.low, self.high) for b in bounds), default=1.0)
        gap = min(gap, abs(self.high - self.low) or 1.0)
        decimals = int(min(6, max(2, -math.floor(math.log10(gap))))) if gap > 0 else 6
        if len(bounds) == 1 and bounds[0] != 0 and self.claim.metric != "slope":
            b = bounds[0]
            return (f"{self.value:.{decimals}f} ({'ratio' if b == 1 else 'value'} - {b:g} = {self.value - b:+.{decimals}f} "
                    f"[{self.low - b:+.{decimals}f}, {self.high - b:+.{decimals}f}])")
        return f"{self.value:.{decimals}f} [{self.low:.{decimals}f}, {self.high:.{decimals}f}]"


# ---------------------------------------------------------------------------------- parsing
def parse_claims(where: str, raw: dict, sections: dict, registry: dict) -> list[Claim]:
    """Claims of a suite file, validated: an unknown metric, solver, section or field is a
    UserError naming it and the valid choices (when the suite is loaded, not after a run)."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: [claims.NAME] must be tables")
    out = []
    for name, table in raw.items():
        at = f"{where}: [claims.{name}]"
        if not isinstance(table, dict):
            raise UserError(f"{at} must be a table")
        unknown = set(table) - _KEYS
        if unknown:
            raise UserError(f"{at}: unknown field(s) {sorted(unknown)}; valid: {', '.join(sorted(_KEYS))}")
        metric = table.get("metric")
        if metric not in METRICS:
            raise UserError(f"{at}: metric {metric!r} is unknown; valid metrics: {', '.join(METRICS)}")
        secs = table.get("sections", list(sections))
        if not isinstance(secs, list) or not secs:
            raise UserError(f"{at}: sections must be a non-empty list of section names")
        for sec in secs:
            if sec not in sections:
                raise UserError(f"{at}: section {sec!r} is unknown; sections: {', '.join(sections)}")
        for key in ("quote", "source"):
            if not isinstance(table.get(key), str) or not table[key]:
                raise UserError(f"{at}: '{key}' (a non-empty string) is required")
        label = _labeler(at, registry)
        candidates = tuple(label(c) for c in table.get("candidates", ()))
        claim = Claim(name=name, quote=table["quote"], source=table["source"], metric=metric,
                      solver=label(table.get("solver")), sections=tuple(secs), where=table.get("where"),
                      reference=label(table["reference"]) if "reference" in table else None,
                      holds_if=_holds_if(at, table.get("holds_if"), metric), k_from=table.get("k_from", 1),
                      k_to=table.get("k_to"), candidates=candidates,
                      expected=label(table["expected"]) if "expected" in table else None, field=table.get("field"),
                      baseline=table.get("baseline"), unmeasurable=table.get("unmeasurable"),
                      exclude_k=_exclude(at, table.get("exclude_k")), note=table.get("note"))
        _check_metric_fields(at, claim)
        if claim.where is not None:  # checked when the suite loads: a bad one never waits for a report

            where_parse(claim.where, spec_fields(), f"{at} where")
        out.append(claim)
    return out


def spec_fields() -> list[str]:
    """The names a claim's `where` may use: the common spec fields and every family's own."""
    return [*COMMON_FIELDS, *own_fields()]


def _labeler(at: str, registry: dict):
    """A solver request as written in a suite ("em[init='spectral']") -> its results label."""

    def label(text) -> str:
        if not isinstance(text, str):
            raise UserError(f"{at}: solver {text!r} must be a string such as \"em[init='spectral']\"")
        try:
            (solver,) = instantiate(registry, parse_solver_arg(text))
        except (UserError, ValueError) as exc:
            raise UserError(f"{at}: {exc}") from None
        return solver.label()

    return label


def _exclude(at: str, value) -> tuple[int, int] | None:
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value) and value[0] <= value[1]):
        raise UserError(f"{at}: exclude_k must be two integers [a, b] with a <= b (positions left out)")
    return (value[0], value[1])


def _holds_if(at: str, text, metric: str) -> tuple:
    if metric == "probe_closest":
        return ()
    m = re.fullmatch(r"\s*(<=|>=)\s*(\S+)\s*", str(text)) or re.fullmatch(r"\s*in\s*\[\s*(\S+)\s*,\s*(\S+)\s*\]\s*", str(text))
    try:
        if m and m.re.pattern.startswith(r"\s*(<="):
            return (m.group(1), float(m.group(2)))
        if m:
            return ("in", float(m.group(1)), float(m.group(2)))
    except ValueError:
        pass
    raise UserError(f"{at}: holds_if {text!r} must read '<= X', '>= X' or 'in [A, B]'")


def _check_metric_fields(at: str, c: Claim) -> None:
    if c.metric in ("ratio", "worst_ratio") and not c.reference:
        raise UserError(f"{at}: metric {c.metric} needs a 'reference' solver")
    if c.metric == "probe_closest" and (not c.candidates or c.expected not in c.candidates):
        raise UserError(f"{at}: probe_closest needs 'candidates' (solver labels) and 'expected', one of them")
    if c.metric == "degradation" and not isinstance(c.baseline, (int, float)):
        raise UserError(f"{at}: degradation needs 'baseline', the unshifted shift_value (1.0 for scales, 0.0 for a shift)")
    slope_fields = [*SLOPE_FIELDS, *(f for family in families().values() for f in family.slope_fields)]
    if c.metric == "slope" and c.field not in slope_fields:
        raise UserError(f"{at}: field {c.field!r} is unknown for a slope; valid fields: {', '.join(slope_fields)}")
    if not (isinstance(c.k_from, int) and c.k_from >= 1) or not (c.k_to is None or isinstance(c.k_to, int) and c.k_to >= c.k_from):
        raise UserError(f"{at}: k_from must be an integer >= 1 and k_to (optional) >= k_from")


# ------------------------------------------------------------------------------- evaluation
def evaluate(claims: list[Claim], results: pd.DataFrame, store, suite: str | None = None,
             per_spec: dict | None = None) -> list[Verdict]:
    """The verdict of every claim on the current cells of `results` (a report's view).
    `per_spec` (a suite's section_params) names parameters a section sets per spec: a claim
    on `transformer[preset=paper]` covers its dropout=0.1 cells there too."""
    part = results if suite is None else results[results["suite"] == suite]
    if per_spec:
        part = part.assign(label=[_without(label, per_spec.get(section, {}))
                                  for label, section in zip(part["label"], part["section"])])
    out = []
    for claim in (v for c in claims for v in variants(c, part)):
        try:
            verdict = _evaluate(claim, part, store)
        except Exception as exc:  # one claim's fault must not take the report down: shown, not hidden
            verdict = Verdict(claim, NOT_MEASURED, detail=f"error while measuring: {type(exc).__name__}: {exc}")
        model = _model_summary(part, claim)
        notes = [n for n in (model, claim.note) if n]
        if notes:
            verdict.detail = "; ".join(notes + ([verdict.detail] if verdict.detail else []))
        out.append(verdict)
    return out


def variants(claim: Claim, results: pd.DataFrame) -> list[Claim]:
    """The claim itself, and for a VARIANT_SOLVERS solver one copy per other label of that
    solver in the results the claim covers (named CLAIM[label]), so that every model trained
    is scored, and none that never ran on the claim's specs is listed."""
    base = claim.solver.partition("[")[0]
    if base not in VARIANT_SOLVERS or results.empty:
        return [claim]
    covered = _covered(claim, results)["label"]
    labels = sorted(set(covered[covered.str.partition("[")[0] == base]) - {claim.solver})
    return [claim] + [dataclasses.replace(claim, name=f"{claim.name}[{label}]", solver=label) for label in labels]


def _model_summary(results: pd.DataFrame, claim: Claim) -> str:
    """The checkpoints behind a trained solver's cells that the claim covers ("cpu-pairs preset ·
    1.3M prompts · CPU 100 min"), as its results' info says."""
    if results.empty or "info" not in results:
        return ""

    part = _covered(claim, results)
    rows = part[(part["label"] == claim.solver) & (part["status"] == "ok")].drop_duplicates("cell_key")
    rows = rows.sort_values(["spec", "seed"])  # in spec order: not the store's, which follows the keys
    return _detail(rows["info"]) if not rows.empty else ""


def _covered(c: Claim, results: pd.DataFrame) -> pd.DataFrame:
    """The results a claim covers: its sections, and its `where`."""
    part = results[results["section"].isin(c.sections)]
    if c.where and not part.empty:

        part = part[where_matches(c.where, part, spec_fields(), f"[claims.{c.name}] where").to_numpy()]
    return part


def _without(label: str, params: dict) -> str:
    """A results label with the per-spec parameters of its solver left out."""
    name, _, body = label.partition("[")
    if name not in params or not body:
        return label
    drop = set(params[name][1])
    kept = [item for item in body.rstrip("]").split(",") if item.split("=", 1)[0] not in drop]
    return f"{name}[{','.join(kept)}]" if kept else name


def _evaluate(c: Claim, results: pd.DataFrame, store) -> Verdict:
    if c.unmeasurable:
        return Verdict(c, NOT_MEASURED, detail=c.unmeasurable)
    part = _covered(c, results)
    ok = part[part["status"] == "ok"]
    needed = [c.solver] + ([c.reference] if c.reference else []) + list(c.candidates)
    for label in needed:
        if ok[ok["label"] == label].empty:
            why = part[part["label"] == label].drop_duplicates("cell_key")
            reason = (f"{label}: {why['status'].iloc[0]}: {str(why['error'].iloc[0]).splitlines()[0]}" if not why.empty
                      else f"{label} was not run on {', '.join(c.sections)}")
            return Verdict(c, NOT_MEASURED, detail=reason)
    if c.metric == "degradation":  # the baselines lie outside a `where` that selects shifted specs
        base = results[results["section"].isin(c.sections) & (results["status"] == "ok")]
        verdict = _degradation(c, ok, base[np.isclose(base["shift_value"], c.baseline)])
    else:
        verdict = {"ratio": _ratio, "worst_ratio": _worst_ratio, "probe_closest": _probe,
                   "slope": _slope}[c.metric](c, ok, store)
    return _partial(verdict, part, ok)


def _partial(verdict: Verdict, part: pd.DataFrame, ok: pd.DataFrame) -> Verdict:
    """A verdict reached on part of the specs the claim covers says so: on how many, and why
    the solver has no result on the others (skipped here, failed)."""
    c = verdict.claim
    planned = part[part["label"] == c.solver].drop_duplicates("spec")
    absent = planned[~planned["spec"].isin(set(ok[ok["label"] == c.solver]["spec"]))]
    if absent.empty or verdict.verdict == NOT_MEASURED:
        return verdict
    first = absent.iloc[0]
    why = f"{first['status']}: {str(first['error']).splitlines()[0].split(': ')[0]}"
    note = (f"on {len(planned) - len(absent)} of the {len(planned)} specs it covers; {c.solver} has no result on "
            f"{len(absent)} ({first['spec']}{' ...' if len(absent) > 1 else ''}: {why})")
    return dataclasses.replace(verdict, detail=f"{verdict.detail}; {note}" if verdict.detail else note)


def _judge(c: Claim, low: float, high: float, fail_low: float | None = None, fail_high: float | None = None) -> str:
    """holds when the 95% interval [low, high] is inside the threshold; fails only when the
    multiplicity-adjusted interval [fail_low, fail_high] (default: the same) is outside it."""
    op = c.holds_if
    fl = low if fail_low is None else fail_low
    fh = high if fail_high is None else fail_high
    if op[0] == "<=":
        return HOLDS if high <= op[1] else FAILS if fl > op[1] else INCONCLUSIVE
    if op[0] == ">=":
        return HOLDS if low >= op[1] else FAILS if fh < op[1] else INCONCLUSIVE
    return HOLDS if op[1] <= low and high <= op[2] else FAILS if fh < op[1] or fl > op[2] else INCONCLUSIVE


@dataclass
class Measure:
    """One spec's measurement: the value shown with its 95% interval, and the points (value,
    SE, 95% quantile) it decides on: one for a mean, one per k for a worst case."""

    spec: str
    value: float
    low: float
    high: float
    detail: str
    points: list[tuple[float, float, float]]


def _holm_quantile(q: float, tests: int) -> float:
    """The quantile that replaces a 95% one when `tests` comparisons could each declare a
    failure: Holm's first step (Bonferroni), the one that decides whether any fails."""
    from scipy.stats import norm

    return q * norm.ppf(1 - 0.025 / max(tests, 1)) / Z


def _worst(c: Claim, measured: list[Measure]) -> Verdict:
    """Of per-spec measurements, the one furthest from holding. "holds" needs every spec
    (every point) inside at 95%; "fails" needs a point outside after Holm's correction over all
    the points the claim tests (specs x positions), so that chance alone fails no claim."""
    tests = sum(len(m.points) for m in measured)
    order = {FAILS: 0, INCONCLUSIVE: 1, HOLDS: 2}
    sign = -1 if c.holds_if[0] == "<=" else 1

    def judge(m: Measure) -> str:
        holds = all(_judge(c, v - q * se, v + q * se) == HOLDS for v, se, q in m.points)
        if holds:
            return HOLDS
        failing = any(_judge(c, v - q * se, v + q * se, v - _holm_quantile(q, tests) * se,
                             v + _holm_quantile(q, tests) * se) == FAILS for v, se, q in m.points)
        return FAILS if failing else INCONCLUSIVE

    worst = min(measured, key=lambda m: (order[judge(m)], sign * m.value))
    detail = worst.detail + (f"; fails judged with Holm's correction over {tests} comparisons" if tests > 1 else "")
    return Verdict(c, judge(worst), worst.value, worst.low, worst.high, f"{worst.spec}; {detail}",
                   [m.spec for m in measured])


def _curve(cells: pd.DataFrame, label: str) -> pd.DataFrame:
    """Mean NMSE and SE per k of one label (over seeds: mean, SE combined)."""
    rows = cells[cells["label"] == label].assign(var=lambda f: f["nmse_se"] ** 2)
    g = rows.groupby("k")
    return pd.DataFrame({"nmse": g["nmse"].mean(), "se": np.sqrt(g["var"].sum()) / g["seed"].nunique()})


def _k_range(c: Claim, k_max: int) -> list[int]:
    ks = range(c.k_from, (c.k_to or k_max) + 1)
    return [k for k in ks if c.exclude_k is None or not c.exclude_k[0] <= k <= c.exclude_k[1]]


def _both(ok: pd.DataFrame, *labels):
    """Per spec, its cells where every label has a result."""
    for spec, cells in ok.groupby("spec", sort=False):
        if all((cells["label"] == label).any() for label in labels):
            yield spec, cells


def _ratio(c: Claim, ok: pd.DataFrame, store) -> Verdict:
    measured = []
    for spec, cells in _both(ok, c.solver, c.reference):
        k_max = int(cells["k_max"].iloc[0])
        whole = (c.k_from, c.k_to or k_max) == (1, k_max) and c.exclude_k is None
        paired = _paired_ratio(cells, c, store) if whole else None
        q = Z
        if paired is not None:
            value, se, q = paired
            seeds = cells["seed"].nunique()
            detail = "paired over prompts" if seeds == 1 else f"over {seeds} seeds"
        else:
            ks = list(_k_range(c, k_max))
            a, b = _curve(cells, c.solver).loc[ks], _curve(cells, c.reference).loc[ks]
            A, B = a["nmse"].mean(), b["nmse"].mean()
            value = A / B
            se = value * math.hypot(a["se"].mean() / A, b["se"].mean() / B)
            detail = "per-k SEs, unpaired" + (f", k in [{c.exclude_k[0]}, {c.exclude_k[1]}] left out"
                                               if c.exclude_k else "")
        if not math.isfinite(value):
            continue
        measured.append(Measure(spec, value, value - q * se, value + q * se, detail, [(value, se, q)]))
    if not measured:
        return Verdict(c, NOT_MEASURED, detail="no spec with both results and a reference NMSE above 0")
    return _worst(c, measured)


def _paired_ratio(cells: pd.DataFrame, c: Claim, store) -> tuple[float, float, float] | None:
    """The solver's paired ratio to the reference over the seeds both ran (leaderboard.paired_ratio);
    None where a cell has no per-prompt scores."""
    scores = {lab: {} for lab in (c.solver, c.reference)}
    for _, cell in cells.drop_duplicates("cell_key").iterrows():
        if cell["label"] in scores:
            scores[cell["label"]][cell["seed"]] = store.prompt_scores(cell["cell_key"])
    a, b = scores[c.solver], scores[c.reference]
    seeds = set(a) & set(b)
    if not seeds or any(a[s] is None or b[s] is None for s in seeds):
        return None
    return paired_ratio(a, b)


def _worst_ratio(c: Claim, ok: pd.DataFrame, store) -> Verdict:
    measured = []
    for spec, cells in _both(ok, c.solver, c.reference):
        ks = list(_k_range(c, int(cells["k_max"].iloc[0])))
        a, b = _curve(cells, c.solver).loc[ks], _curve(cells, c.reference).loc[ks]
        r = a["nmse"] / b["nmse"]
        se = r * np.hypot(a["se"] / a["nmse"], b["se"] / b["nmse"])
        if not np.isfinite(r).all():
            continue
        k = int(r.idxmax())
        within = [kk for kk in ks if (r.loc[kk:] + Z * se.loc[kk:] <= c.holds_if[-1]).all()] if c.holds_if[0] == "<=" else []
        detail = f"at k = {k}" + (f"; within from k = {within[0]} on" if within else "")
        # every k is a point: holds if all are inside, fails if one is outside after Holm
        points = [(float(r.loc[kk]), float(se.loc[kk]), Z) for kk in ks]
        measured.append(Measure(spec, float(r.max()), float(r.max() - Z * se.loc[k]), float(r.max() + Z * se.loc[k]),
                                detail, points))
    if not measured:
        return Verdict(c, NOT_MEASURED, detail="no spec with both results and a reference NMSE above 0")
    return _worst(c, measured)


def _degradation(c: Claim, ok: pd.DataFrame, baselines: pd.DataFrame) -> Verdict:
    cells = ok.drop_duplicates("cell_key")
    base = baselines.drop_duplicates("cell_key")
    def ident(row) -> tuple:  # the spec's fields other than the shift (as text: None and NaN alike)
        return tuple(str(row[f]) for f in ("section", "m", "sigma", "d", "k_max", "n_train", "pi", "seed"))

    measured = []
    for spec, part in cells[~np.isclose(cells["shift_value"], c.baseline)].groupby("spec", sort=False):
        first = part.iloc[0]
        same = base[[ident(row) == ident(first) for _, row in base.iterrows()]]
        value, rel2 = 1.0, 0.0
        for label, power in ((c.solver, 1), (c.reference, -1)):
            if label is None:
                continue
            shifted, unshifted = part[part["label"] == label], same[same["label"] == label]
            if shifted.empty or unshifted.empty:
                return Verdict(c, NOT_MEASURED, detail=f"{spec}: no {label} result at shift_value {c.baseline:g}")
            a, sa = shifted["nmse_avg"].mean(), shifted["nmse_avg_se"].mean()
            b, sb = unshifted["nmse_avg"].mean(), unshifted["nmse_avg_se"].mean()
            value *= (a / b) ** power
            rel2 += (sa / a) ** 2 + (sb / b) ** 2
        se = value * math.sqrt(rel2)
        measured.append(Measure(spec, value, value - Z * se, value + Z * se, f"shift_value {first['shift_value']:g}",
                                [(value, se, Z)]))
    if not measured:
        return Verdict(c, NOT_MEASURED, detail="no shifted spec in the claim's sections")
    return _worst(c, measured)


def _probe(c: Claim, ok: pd.DataFrame, store) -> Verdict:
    """The closest candidate per spec; the claim holds where `expected` is closest in every spec."""
    worst: Verdict | None = None
    specs = []
    for spec, cells in _both(ok, c.solver, *c.candidates):
        seed = cells["seed"].min()
        part = cells[cells["seed"] == seed].drop_duplicates("cell_key").set_index("label")
        f = store.predictions(part.loc[c.solver, "cell_key"])
        if f is None:
            return Verdict(c, NOT_MEASURED, detail=f"{spec}: predictions of {c.solver} not stored (--save-predictions)")
        dist = {}
        for cand in c.candidates:
            g = store.predictions(part.loc[cand, "cell_key"])
            if g is None:
                return Verdict(c, NOT_MEASURED, detail=f"{spec}: predictions of {cand} not stored (--save-predictions)")
            dist[cand] = ((f.astype(np.float64) - g)[:, 1:] ** 2).mean(axis=1)  # per prompt, mean over k
        ranked = sorted(dist, key=lambda k: dist[k].mean())
        best, second = ranked[0], ranked[1] if len(ranked) > 1 else None
        closer = None if second is None else float((dist[best] < dist[second]).mean())
        sure = closer is None or closer > 0.5 + Z * 0.5 / math.sqrt(len(dist[best]))
        verdict = (HOLDS if best == c.expected else FAILS) if sure else INCONCLUSIVE
        detail = f"{spec}: d² {dist[best].mean():.3g}" + (
            f", next {second} {dist[second].mean():.3g}, closer on {closer:.0%} of prompts" if second else "")
        specs.append(spec)
        if worst is None or [FAILS, INCONCLUSIVE, HOLDS].index(verdict) < [FAILS, INCONCLUSIVE, HOLDS].index(worst.verdict):
            worst = Verdict(c, verdict, best, detail=detail)
    if worst is None:
        return Verdict(c, NOT_MEASURED, detail="no spec where the solver and every candidate have results")
    worst.specs = specs
    return worst


def _paired_excess(mine: pd.DataFrame, ref: pd.DataFrame, store) -> tuple[float, float]:
    """Mean NMSE of one solver's cells over another's on the same specs: paired over prompts
    (and averaged over seeds) where per-prompt scores are stored, else from the two SEs."""
    diffs = []
    for seed in sorted(set(mine["seed"]) & set(ref["seed"])):
        a = store.prompt_scores(mine[mine["seed"] == seed]["cell_key"].iloc[0]) if store is not None else None
        b = store.prompt_scores(ref[ref["seed"] == seed]["cell_key"].iloc[0]) if store is not None else None
        if a is None or b is None or len(a) != len(b):
            diffs = None
            break
        diffs.append(a - b)
    if diffs:
        means = np.array([d.mean() for d in diffs])
        var = np.array([d.var(ddof=1) / len(d) for d in diffs])
        return float(means.mean()), float(math.sqrt(var.sum()) / len(means))
    err = mine["nmse_avg"].mean() - ref["nmse_avg"].mean()
    return err, math.hypot(math.sqrt((mine["nmse_avg_se"] ** 2).sum()) / len(mine),
                           math.sqrt((ref["nmse_avg_se"] ** 2).sum()) / len(ref))


SLOPE_POINTS = 5  # a slope on fewer grid points says little, whatever its interval


def _slope(c: Claim, ok: pd.DataFrame, store) -> Verdict:
    """Weighted least squares of log(error) on log(field): each point weighted by its own
    variance (delta method: SE(log e) = SE(e) / e, SEs over seeds combined), the slope's SE
    from the weights, inflated by the lack of fit when the points scatter more than their SEs
    say (then a t quantile on n - 2 degrees of freedom)."""
    xs, ys, ss = [], [], []
    for spec, cells in ok.groupby("spec", sort=False):
        rows = cells[cells["label"] == c.solver]
        if rows.empty:
            continue
        score = families()[rows["family"].iloc[0]].slope_score
        if c.reference is not None:  # a named reference first: the excess over it (Theorem 4.1's best of a class)
            ref = cells[cells["label"] == c.reference].drop_duplicates("cell_key")
            mine = rows.drop_duplicates("cell_key")
            if ref.empty:
                continue
            err, se = _paired_excess(mine, ref, store)
        elif score and rows[score].notna().any():
            last = rows[rows["k"] == rows["k"].max()]
            err = last[score].mean()
            se = math.sqrt((last[f"{score}_se"] ** 2).sum()) / len(last)
        else:
            return Verdict(c, NOT_MEASURED, detail="no excess MSE stored here: name a reference to take the excess over")
        x = rows[c.field].iloc[0]
        if err > 0 and x is not None and x > 0 and se > 0:
            xs.append(math.log(float(x)))
            ys.append(math.log(float(err)))
            ss.append(se / err)
    if len(xs) < SLOPE_POINTS:
        return Verdict(c, NOT_MEASURED, detail=f"{len(xs)} specs with a positive error; a slope needs {SLOPE_POINTS}")
    X, y, w = np.column_stack([np.ones(len(xs)), xs]), np.array(ys), 1 / np.array(ss) ** 2
    cov = np.linalg.inv(X.T @ (w[:, None] * X))
    coef = cov @ X.T @ (w * y)
    chi2 = float(w @ (y - X @ coef) ** 2) / (len(xs) - 2)
    from scipy.stats import t

    q = Z if chi2 <= 1 else t.ppf(0.975, len(xs) - 2)
    half = q * math.sqrt(cov[1, 1] * max(chi2, 1.0))
    slope = float(coef[1])
    return Verdict(c, _judge(c, slope - half, slope + half), slope, slope - half, slope + half,
                   f"{len(xs)} specs, log error against log {c.field}, weighted by each point's SE "
                   f"(lack of fit chi2/dof = {chi2:.2f})")


# ------------------------------------------------------------------------------- rendering
def scorecard_text(verdicts: list[Verdict]) -> str:
    lines = ["claim | source | measured [95% interval] | holds if | verdict"]
    for v in verdicts:
        lines.append(f"{v.claim.name} | {v.claim.source} | {v.measured()} | {v.claim.threshold()} | {v.verdict}")
        lines.append(f"    \"{v.claim.quote}\"")
    return "\n".join(lines)
