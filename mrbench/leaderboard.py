"""Leaderboards from the results store: per spec, solvers ranked against the oracle."""
from __future__ import annotations

import json

import pandas as pd

from .cells import FINAL, OK

REFERENCE = {"prompt": "posterior_mean", "sample": "sample_oracle"}  # Bayes-optimal per family


def current(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of the latest cell of each (suite, spec, solver label, seed). Older cells of the
    same place (another code version, a suite edited since) are superseded, not averaged in."""
    cells = results.drop_duplicates("cell_key").sort_values("created_at", na_position="first", kind="stable")
    latest = cells.drop_duplicates(["suite", "spec", "label", "seed"], keep="last")["cell_key"]
    return results[results["cell_key"].isin(set(latest))].reset_index(drop=True)


def leaderboard(results: pd.DataFrame) -> pd.DataFrame:
    """Per spec: solvers ranked by mean NMSE over k = 1..k_max (averaged over seeds), with the
    excess over and ratio to the family's Bayes-optimal oracle."""
    cells = results.drop_duplicates("cell_key")
    ok = cells[cells["status"] == OK]
    if ok.empty:
        return pd.DataFrame(columns=["spec", "label", "nmse", "se", "oracle", "rank"])
    table = (ok.groupby(["spec", "label"], sort=False)
             .agg(family=("family", "first"), nmse=("nmse_avg", "mean"), se=("nmse_avg_se", "mean"), oracle=("oracle", "first"),
                  solver_family=("solver_family", "first"), seeds=("seed", "nunique"),
                  fit_s=("fit_seconds", "mean"), predict_s=("predict_seconds", "mean"),
                  peak_rss_mb=("peak_rss_mb", "max"), detail=("info", _detail))
             .reset_index())
    ref = table[table["label"] == table["family"].map(REFERENCE)].set_index("spec")["nmse"]
    table["excess"] = table["nmse"] - table["spec"].map(ref)
    # a ratio to an oracle whose NMSE is 0 (sigma = 0) means nothing: left empty there
    table["ratio"] = table["nmse"] / table["spec"].map(ref.where(ref > 1e-12))
    table["rank"] = table.groupby("spec")["nmse"].rank(method="min").astype(int)
    return table.sort_values(["spec", "rank"]).reset_index(drop=True)


def _info(text) -> dict:
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _detail(infos: pd.Series) -> str:
    """What produced a row, when a solver says so in its info's `summary` (a trained model's
    checkpoint: "cpu preset · 3.1M prompts · CPU 70 min"); several seeds' summaries joined."""
    return " | ".join(dict.fromkeys(str(_info(v)["summary"]) for v in infos if "summary" in _info(v)))


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


def leaderboard_text(results: pd.DataFrame) -> str:
    table = leaderboard(results)
    cells = results.drop_duplicates("cell_key")
    lines = []
    cols = ["rank", "label", "nmse", "se", "ratio", "fit_s", "predict_s", "oracle"]
    for spec, part in (table.groupby("spec", sort=False) if not table.empty else []):
        lines.append(f"\n== {spec}")
        view = part[cols].copy()
        view["oracle"] = view["oracle"].map({True: "oracle", False: ""})
        view["label"] = [f"{lab} · {det}" if det else lab for lab, det in zip(part["label"], part["detail"])]
        lines.append(view.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for _, row in cells[~cells["status"].isin(FINAL)].iterrows():
        first = (row["error"] or "").splitlines()[0] if row["error"] else ""
        lines.append(f"[{row['status']}] {row['label']} on {row['spec']} (seed {row['seed']}): {first}")
    counts = cells["status"].value_counts().to_dict()
    lines.append("cells: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return "\n".join(lines)
