"""One self-contained HTML report from a results directory (it reads only the store).

Figures are embedded as base64 PNG; no script, font or style is fetched; the page opens from
file:// and reads without JavaScript. Jinja2 autoescapes every value.
"""
from __future__ import annotations

import base64
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from . import formatting as fmt
from .atomic import WriteError, atomic_write
from .families import families
from .figures import (
    Palette,
    curve_figure,
    excess_figures,
    fixed_n_figures,
    probe_figures,
    shift_figures,
)
from .leaderboard import below_reference, current, leaderboard, models, reference_ratios
from .provenance import __version__
from .statuses import FINAL, OK
from .store import REPORT_NAME, Store, load_results
from .tables import select


def _png(fig) -> str:
    buf = io.BytesIO()
    # 80 dpi and an 8-bit palette where it suffices: the published reports stay in git history
    fig.savefig(buf, format="png", dpi=80, pil_kwargs={"optimize": True})
    return base64.b64encode(buf.getvalue()).decode()


def load_runs(root: Path) -> list[dict]:
    runs = []
    for f in sorted((root / "_runs").glob("*.json")):
        try:
            runs.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    return runs


def probes(results: pd.DataFrame, store: Store, reference: str | None = None) -> dict[str, tuple[str, pd.DataFrame]]:
    """d_k^sq between a reference solver and every other one, from stored predictions, per spec
    and seed: title -> (reference, table). The references are `reference`, or by default every
    trained solver with stored predictions (each transformer label gets its own panels)."""
    out = {}
    cells = results[results["status"] == OK].drop_duplicates("cell_key")
    for (spec, seed), part in cells.groupby(["spec", "seed"]):
        refs = part[part["label"] == reference] if reference else part[part["solver_group"] == "in-context"]
        for _, ref in refs.iterrows():
            f = store.predictions(ref["cell_key"])
            if f is None:
                continue
            rows = []
            for _, row in part[part["label"] != ref["label"]].iterrows():
                g = store.predictions(row["cell_key"])
                if g is not None and g.shape == f.shape:
                    dsq = ((f.astype(np.float64) - g) ** 2).mean(axis=0)
                    rows += [{"label": row["label"], "group": row["solver_group"], "k": k, "dsq": v}
                             for k, v in enumerate(dsq) if k >= 1]
            if rows:
                out[f"{ref['label']} · {spec} (seed {seed})"] = (ref["label"], pd.DataFrame(rows))
    return out


def scorecard(results: pd.DataFrame, store: Store, suites=()) -> list:
    """The verdict of every claim of the suites in the results, from the suite files the user
    names (`suites`: `mrbench report --suite FILE`, or the suite `mrbench run` just ran), else
    the built-in suite of that name. A path that a results directory names (its run records'
    suite_path) is never loaded: the directory may come from someone else."""
    from .claims import evaluate
    from .errors import UserError
    from .suites import builtin_suites, load_suite

    given = {}
    for ref in suites:
        loaded = load_suite(ref)  # the user's own file: a bad one is their error to see
        given[loaded.name] = loaded
    verdicts = []
    for suite in dict.fromkeys(results["suite"].dropna()):
        if suite in given:
            loaded = given[suite]
            verdicts += evaluate(loaded.claims, results, store, suite, loaded.section_params)
            continue
        if suite not in builtin_suites():  # a name only: never a path the results spell
            continue
        try:
            loaded = load_suite(suite)
        except UserError:
            continue
        if loaded.name == suite:
            verdicts += evaluate(loaded.claims, results, store, suite, loaded.section_params)
    return verdicts


def verdicts(root: str | Path, suites=(), where: str | None = None, solvers: str | None = None) -> list:
    """The scorecard of a results directory: `where` and `solvers` as in `mrbench report`."""
    root = Path(root)
    return scorecard(current(select(load_results(root), where, solvers)), Store(root), suites)


def _in_plan_order(specs, runs: list[dict], prefixed: bool) -> list[str]:
    """Specs in the order the runs planned them (a suite's sections, each in grid order), then
    any the run records do not name, as stored. `prefixed`: spec names carry their suite."""
    planned = [f"{r.get('suite')}:{c['spec']}" if prefixed else c["spec"] for r in runs for c in r.get("cells", [])]
    place = {spec: i for i, spec in enumerate(dict.fromkeys(planned))}
    return sorted(dict.fromkeys(specs), key=lambda spec: place.get(spec, len(place)))


def _sections(cells: pd.DataFrame, order: list[str]) -> list[dict]:
    """The table of contents: each section with its specs, in plan order, and anchors for both."""
    section_of = dict(zip(cells["spec"], cells["section"]))
    sections: dict[str, list] = {}
    for i, spec in enumerate(order):
        sections.setdefault(section_of[spec], []).append({"spec": spec, "anchor": f"spec-{i}"})
    return [{"section": name, "anchor": f"section-{i}", "specs": specs} for i, (name, specs) in enumerate(sections.items())]


def _leaderboards(results: pd.DataFrame, store: Store, order: list[str]) -> list[dict]:
    table = leaderboard(results, store)
    cells = results.drop_duplicates("cell_key")
    boards = []
    for spec in order:
        rows = table[table["spec"] == spec].to_dict("records")
        bad = cells[(cells["spec"] == spec) & (cells["status"] != OK)]
        for _, b in bad.drop_duplicates("label").iterrows():
            if b["label"] not in {r["label"] for r in rows}:
                rows.append({"label": b["label"], "status": b["status"], "oracle": b["oracle"], "rank": None,
                             "seeds": None})
        boards.append({"spec": spec, "rows": rows})
    return boards


def _avg_ranks(results: pd.DataFrame, store: Store) -> dict:
    """Mean rank over the specs that every listed solver ran: those of the solvers run most
    widely; a solver that missed some of them is named, not averaged over fewer specs."""
    table = leaderboard(results, store)
    if table.empty:
        return {"rows": [], "specs": 0, "left_out": []}
    specs_of = table.groupby("label")["spec"].agg(set)
    widest = max(len(v) for v in specs_of)
    common = set.intersection(*(v for v in specs_of if len(v) == widest))
    listed = [label for label, v in specs_of.items() if common <= v]
    part = table[table["spec"].isin(common) & table["label"].isin(listed)]
    ranks = part.groupby("label").agg(mean_rank=("rank", "mean"), specs=("spec", "nunique"), oracle=("oracle", "first"),
                                      solver_group=("solver_group", "first")).reset_index()
    left_out = [f"{label} ({len(v)} of {len(common | v)} specs)" for label, v in specs_of.items() if label not in listed]
    return {"rows": ranks.sort_values(["mean_rank", "label"]).to_dict("records"), "specs": len(common),
            "left_out": left_out}


def build(root: str | Path, reference: str | None = None, suites=(), where: str | None = None,
          solvers: str | None = None) -> tuple[dict, list]:
    """Everything the template shows, and the figures; `where` and `solvers` keep part of the
    results (tables.select), as in `mrbench report --where ... --solvers ...`."""
    root = Path(root)
    stored = select(load_results(root), where, solvers)
    results = stored_current = current(stored)
    runs = load_runs(root)
    cells = results.drop_duplicates("cell_key")
    stored_keys = set(stored["cell_key"])
    superseded = len(stored_keys) - len(cells)
    planned = {c["key"]: {**c, "suite": r.get("suite")} for r in runs for c in r.get("cells", [])}
    have = set(zip(cells["suite"], cells["spec"], cells["seed"], cells["label"]))  # newer cells stand in for old plans
    missing = [c for k, c in planned.items()
               if k not in stored_keys and (c["suite"], c["spec"], c["seed"], c["label"]) not in have]
    if cells["suite"].nunique() > 1:  # suites can share spec and section names (quick and pathak2023 do)
        results = results.assign(spec=results["suite"] + ":" + results["spec"],
                                 section=results["suite"] + ":" + results["section"])
        cells = results.drop_duplicates("cell_key")
        missing = [{**c, "spec": f"{c['suite']}:{c['spec']}"} for c in missing]
    order = _in_plan_order(cells["spec"], runs, prefixed=cells["suite"].nunique() > 1)
    group_of, rank = dict(zip(cells["label"], cells["solver_group"])), {"oracle": 0, "bound": 1, "in-context": 2}
    palette = Palette(sorted(group_of, key=lambda label: (rank.get(group_of[label], 3), label)))
    figures = [curve_figure(results, s, palette) for s in order if s in set(cells[cells["status"] == OK]["spec"])]
    fixed_n = fixed_n_figures(results, palette)
    panels = {name: f.panels for name, f in families().items()}
    shifts = shift_figures(_of_families(results, panels, "shifts"))
    sample = excess_figures(results, [name for name, p in panels.items() if "excess" in p], palette)
    store = Store(root)
    probe = probe_figures(probes(_of_families(results, panels, "probe"), store, reference), palette)
    problems = cells[~cells["status"].isin(FINAL)][["spec", "seed", "label", "status", "error"]].to_dict("records")
    verdicts = scorecard(stored_current, store, suites)
    suite_names = ", ".join(dict.fromkeys(cells["suite"].dropna().astype(str))) or root.name
    newest = pd.to_datetime(cells["created_at"], utc=True, errors="coerce").max()
    context = {
        "title": f"mrbench report: {suite_names}" + (f" · {newest:%Y-%m-%d}" if pd.notna(newest) else ""),
        "headline": sorted(reference_ratios(results, store), key=lambda r: order.index(r["spec"])), "toc": _sections(cells, order),
        "verdict_counts": {v: sum(x.verdict == v for x in verdicts) for v in ("holds", "fails", "inconclusive", "not measured")},
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": __version__, "n_cells": len(cells), "counts": cells["status"].value_counts().to_dict(),
        "below_reference": below_reference(results, store),
        "leaderboards": _leaderboards(results, store, order), "avg_ranks": _avg_ranks(results, store),
        "curves": figures, "fixed_n": fixed_n, "probe": probe, "probe_reference": reference or "a trained model", "shifts": shifts,
        "sample": sample,
        "oracles": "; ".join(f"{f.oracle} for the {name} family" for name, f in families().items()),
        "problems": problems, "missing": missing, "superseded": superseded, "runs": runs,
        "models": models(results), "scorecard": verdicts,
    }
    return context, figures + fixed_n + probe + shifts + sample


def _of_families(results: pd.DataFrame, panels: dict, panel: str) -> pd.DataFrame:
    """The results of the data families a report panel applies to."""
    return results[results["family"].isin([name for name, p in panels.items() if panel in p])]


def after_run(results: pd.DataFrame, echo=print) -> Path | None:
    """The report of a run's directory (runner.run's `results`), rewritten when something new
    ran or none exists; the suite the run loaded (the user's own choice) scores its claims."""
    out = Path(results.attrs["out"])
    existing = out / REPORT_NAME
    if results.attrs.get("news") or not existing.exists():  # else nothing new to show
        own = [results.attrs["suite_path"]] if results.attrs.get("suite_path") else []
        try:
            existing = write_report(out, suites=own)
        except WriteError as exc:  # the results stand; only the page is missing
            echo(f"report not written: {exc}")
            return None
    echo(f"report: {existing}")
    return existing


def write_report(root: str | Path, output: str | Path | None = None, figures_dir: str | Path | None = None,
                 reference: str | None = None, suites=(), where: str | None = None, solvers: str | None = None) -> Path:
    context, figures = build(root, reference, suites, where, solvers)
    return write_html(context, figures, report_path(root, output), figures_dir)


def report_path(root: str | Path, output: str | Path | None = None) -> Path:
    return Path(output) if output else Path(root) / REPORT_NAME


def write_html(context: dict, figures: list, path: Path, figures_dir: str | Path | None = None) -> Path:
    """The report of `build`'s context and figures as one self-contained HTML file at `path`."""
    for f in figures:
        f.png = _png(f.fig)
        if figures_dir is not None:
            d = Path(figures_dir)
            d.mkdir(parents=True, exist_ok=True)
            f.fig.savefig(d / f"{f.id}.png")
            f.fig.savefig(d / f"{f.id}.svg")
    import matplotlib.pyplot as plt

    for f in figures:
        plt.close(f.fig)
    env = Environment(loader=PackageLoader("mrbench", "templates"), autoescape=select_autoescape(default=True))
    env.filters.update(num=fmt.num, signed=fmt.signed, duration=fmt.duration, megabytes=fmt.megabytes, math=fmt.math_text)
    html = env.get_template("report.html.j2").render(**context)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda f: f.write(html.encode("utf-8")))  # two runs finishing together: one report
