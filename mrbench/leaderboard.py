"""Leaderboards from the results store: per spec, solvers ranked against the oracle."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from . import formatting as fmt
from .families import families
from .statuses import FINAL, OK


def current(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of the latest cell of each (suite, spec, solver label, seed). Older cells of the
    same place (another code version, a suite edited since) are superseded, not averaged in."""
    cells = results.drop_duplicates("cell_key").sort_values("created_at", na_position="first", kind="stable")
    latest = cells.drop_duplicates(["suite", "spec", "label", "seed"], keep="last")["cell_key"]
    return results[results["cell_key"].isin(set(latest))].reset_index(drop=True)


def leaderboard(results: pd.DataFrame, store=None) -> pd.DataFrame:
    """Per spec: solvers ranked by mean NMSE over k = 1..k_max (averaged over seeds), with the
    excess over and ratio to the family's Bayes-optimal oracle. With the results' `store`,
    a rank counts only the solvers significantly better on the same prompts (paired), so
    solvers whose difference is within its uncertainty share a rank."""
    cells = results.drop_duplicates("cell_key")
    ok = cells[cells["status"] == OK]
    if ok.empty:
        return pd.DataFrame(columns=["spec", "label", "nmse", "se", "oracle", "rank"])
    table = (ok.groupby(["spec", "label"], sort=False)
             .agg(family=("family", "first"), nmse=("nmse_avg", "mean"), se=("nmse_avg_se", "mean"), oracle=("oracle", "first"),
                  solver_group=("solver_group", "first"), seeds=("seed", "nunique"),
                  fit_s=("fit_seconds", "mean"), predict_s=("predict_seconds", "mean"),
                  peak_rss_mb=("peak_rss_mb", "max"), detail=("info", _detail))
             .reset_index())
    oracles = {name: f.oracle for name, f in families().items()}  # Bayes-optimal per family
    ref = table[table["label"] == table["family"].map(oracles)].set_index("spec")["nmse"]
    table["excess"] = table["nmse"] - table["spec"].map(ref)
    # a ratio to an oracle whose NMSE is 0 (sigma = 0) means nothing: left empty there
    table["ratio"] = table["nmse"] / table["spec"].map(ref.where(ref > 1e-12))
    table["rank"] = table.groupby("spec")["nmse"].rank(method="min").astype(int)
    table["paired"], table["resolved"] = False, True
    if store is not None:
        for spec, idx in table.groupby("spec").groups.items():
            found = paired_ranks(ok[ok["spec"] == spec], store)
            if found:
                ranks, resolved = found
                table.loc[idx, "rank"] = table.loc[idx, "label"].map(ranks)
                table.loc[idx, "resolved"] = table.loc[idx, "label"].map(resolved)
                table.loc[idx, "paired"] = True
    return table.sort_values(["spec", "rank", "nmse"]).reset_index(drop=True)


Z = 1.96  # two-sided 95%


def t_quantile(dof: int) -> float:
    """Two-sided 95% quantile of Student's t (scipy imported only when seeds are several)."""
    from scipy.stats import t

    return float(t.ppf(0.975, dof))


def paired_difference(a: dict, b: dict) -> tuple[float, float, float]:
    """Mean, standard error and 95% quantile of a - b: `a` and `b` map a seed to its per-prompt
    mean NMSE (each seed draws its own test prompts, the same for every solver). With one seed
    the SE is over its prompts (normal quantile); with several, over the seeds' mean
    differences (t with seeds - 1 degrees of freedom), so that it covers what differs between
    seeds: the test prompts, and for a trained solver its training run."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) == 1:
        diff = a[seeds[0]] - b[seeds[0]]
        return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff))), Z
    per_seed = np.array([(a[s] - b[s]).mean() for s in seeds])
    return float(per_seed.mean()), float(per_seed.std(ddof=1) / np.sqrt(len(seeds))), t_quantile(len(seeds) - 1)


def paired_ratio(a: dict, b: dict) -> tuple[float, float, float]:
    """mean(a) / mean(b) over the same prompts, its SE and 95% quantile; `a`, `b` map a seed to
    its per-prompt scores, as in paired_difference. One seed: the delta method,
    var(a - R b) / (n mean(b)^2). Several: the mean of the seeds' ratios and its SE over seeds
    (t quantile), which covers the training runs of a trained solver. NaN where b's mean is 0."""
    seeds = sorted(set(a) & set(b))
    if any(b[s].mean() <= 1e-12 for s in seeds):
        return float("nan"), float("nan"), Z
    ratios = np.array([a[s].mean() / b[s].mean() for s in seeds])
    if len(seeds) == 1:
        x, y, r = a[seeds[0]], b[seeds[0]], ratios[0]
        return float(r), float((x - r * y).std(ddof=1) / (np.sqrt(len(x)) * y.mean())), Z
    return float(ratios.mean()), float(ratios.std(ddof=1) / np.sqrt(len(ratios))), t_quantile(len(ratios) - 1)


def paired_ranks(cells: pd.DataFrame, store) -> tuple[dict[str, int], dict[str, bool]] | None:
    """Ranks in the order of the mean score, and whether each is resolved; None where a cell has
    no stored per-prompt scores. A solver shares the rank of the leader of the group above it
    only when their paired difference is within its 95% interval (see paired_difference; and
    within 1e-12: oracles at sigma = 0 differ by rounding only), never through a chain of
    neighbours. Resolved: significantly different from every solver outside its own group, so
    that a solver whose interval spans the table is marked rather than placed."""
    scores: dict[str, dict] = {}
    for _, cell in cells.drop_duplicates("cell_key").iterrows():
        values = store.prompt_scores(cell["cell_key"])
        if values is None:
            return None
        scores.setdefault(cell["label"], {})[cell["seed"]] = values
    mean = {label: float(np.mean([v.mean() for v in seeds.values()])) for label, seeds in scores.items()}
    order = sorted(scores, key=lambda label: (mean[label], label))

    def differ(a: str, b: str) -> bool:
        if not set(scores[a]) & set(scores[b]):
            return False
        diff, se, q = paired_difference(scores[b], scores[a])
        return abs(diff) > max(q * se, 1e-12)

    ranks, leader = {}, None
    for i, label in enumerate(order):
        if leader is not None and not differ(leader, label):
            ranks[label] = ranks[leader]
        else:
            leader, ranks[label] = label, i + 1
    resolved = {a: all(differ(a, b) for b in order if ranks[b] != ranks[a]) for a in order}
    return ranks, resolved


def _of_the_training_law(part: pd.DataFrame):
    """The family of a spec's cells when its test prompts follow the training law (no shift, or
    a shift at its neutral value), else None: only there is the family's reference optimal."""
    family = families().get(part["family"].iloc[0])
    kind, value = part["shift_kind"].iloc[0], part["shift_value"].iloc[0]
    if family is None or (kind != "none" and value != family.shift_kinds.get(kind, (None,))[0]):
        return None
    return family


def _prompt_scores(part: pd.DataFrame, store) -> dict[str, dict]:
    """label -> seed -> per-prompt mean NMSE, for the cells that have them."""
    scores: dict[str, dict] = {}
    for _, cell in part.drop_duplicates("cell_key").iterrows():
        values = store.prompt_scores(cell["cell_key"])
        if values is not None:
            scores.setdefault(cell["label"], {})[cell["seed"]] = values
    return scores


def below_reference(results: pd.DataFrame, store, z: float = 3.0) -> list[dict]:
    """Solvers that beat their family's Bayes reference by more than `z` paired standard errors
    (per-prompt mean NMSE, seeds pooled as in the ranks) on a spec of the training law. The
    reference is optimal there, so each is a bug (in the solver, the reference or the data),
    never a finding. Bounds (they know what no learner can) are left out, and so are cells
    without per-prompt scores."""
    cells = results.drop_duplicates("cell_key")
    ok = cells[(cells["status"] == OK) & (cells["solver_group"] != "bound")]
    found = []
    for spec, part in ok.groupby("spec", sort=False):
        family = _of_the_training_law(part)
        scores = _prompt_scores(part, store) if family else {}
        ref = scores.pop(family.oracle, {}) if family else {}
        for label, seeds in scores.items():
            if set(seeds) & set(ref):
                diff, se, _ = paired_difference(seeds, ref)
                if diff < -max(z * se, 1e-12):
                    found.append({"spec": spec, "label": label, "reference": family.oracle, "diff": diff, "se": se})
    return found


def reference_ratios(results: pd.DataFrame, store, group: str = "in-context") -> list[dict]:
    """Per spec of the training law, each solver of `group` (default: trained in context) as a
    ratio of mean NMSE to its family's Bayes reference, paired over prompts (paired_ratio), with
    its 95% interval; the question the papers ask, one line per spec."""
    cells = results.drop_duplicates("cell_key")
    ok = cells[cells["status"] == OK]
    rows = []
    for spec, part in ok.groupby("spec", sort=False):
        family = _of_the_training_law(part)
        if family is None or group not in set(part["solver_group"]):
            continue
        scores = _prompt_scores(part, store)
        ref = scores.get(family.oracle)
        for label in dict.fromkeys(part[part["solver_group"] == group]["label"]):
            if ref and label in scores and set(scores[label]) & set(ref):
                r, se, q = paired_ratio(scores[label], ref)
                if np.isfinite(r):
                    rows.append({"spec": spec, "label": label, "reference": family.oracle, "ratio": r,
                                 "lo": r - q * se, "hi": r + q * se})
    return rows


def _info(text) -> dict:
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _detail(infos: pd.Series) -> str:
    """What produced a row, when a solver says so in its info's `summary` (a trained model's
    checkpoint: "cpu preset · 3.1M prompts · CPU 70 min"); several seeds' summaries joined."""
    summaries = (_info(v).get("summary") for v in infos)  # each info parsed once
    return " | ".join(dict.fromkeys(str(s) for s in summaries if s is not None))


def models(results: pd.DataFrame) -> list[dict]:
    """The trained models behind the results (checkpoints, or trained in the run): one entry
    per distinct checkpoint with the specs it served and its provenance."""
    out: dict[str, dict] = {}
    for _, row in results.drop_duplicates("cell_key").iterrows():
        info = _info(row.get("info"))
        if "checkpoint" in info and "summary" in info:
            entry = out.setdefault(f"{row['label']} {info['checkpoint']}", {"label": row["label"], **info, "specs": []})
            entry["specs"].append(row["spec"])
    return [e | {"specs": ", ".join(dict.fromkeys(e["specs"]))} for e in out.values()]


def leaderboard_text(results: pd.DataFrame, store=None) -> str:
    table = leaderboard(results, store)
    cells = results.drop_duplicates("cell_key")
    lines = []
    for spec, part in (table.groupby("spec", sort=False) if not table.empty else []):
        tie = (" (shared rank: within 1.96 paired SE of the group's leader; ? = not resolved from some "
               "solver outside its group)") if part["paired"].all() else ""
        lines.append(f"\n== {spec}{tie}")
        lines.append(fmt.text_table({
            "rank": [f"{r}{'' if ok else '?'}" for r, ok in zip(part["rank"], part["resolved"])],
            "solver": [f"{lab} · {det}" if det else lab for lab, det in zip(part["label"], part["detail"])],
            "mean NMSE": [*part["nmse"].map(fmt.num)], "SE": [*part["se"].map(lambda v: fmt.num(v, 2))],
            "excess": [*part["excess"].map(fmt.signed)], "ratio": [*part["ratio"].map(fmt.num)],
            "fit": [*part["fit_s"].map(fmt.duration)], "predict": [*part["predict_s"].map(fmt.duration)],
            "": [*part["oracle"].map({True: "oracle", False: ""})]},
            right=("mean NMSE", "SE", "excess", "ratio", "fit", "predict")))
    for b in below_reference(results, store) if store is not None else ():
        lines.append(f"[bug] {b['label']} beats the Bayes reference {b['reference']} on {b['spec']} by "
                     f"{fmt.signed(b['diff'])} mean NMSE (SE {fmt.num(b['se'], 2)}): the reference is optimal there")
    for _, row in cells[~cells["status"].isin(FINAL)].iterrows():
        first = (row["error"] or "").splitlines()[0] if row["error"] else ""
        lines.append(f"[{row['status']}] {row['label']} on {row['spec']} (seed {row['seed']}): {first}")
    counts = cells["status"].value_counts().to_dict()
    lines.append("cells: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return "\n".join(lines)
