"""The papers' figures, drawn from the results store with matplotlib (Agg, no display)."""
from __future__ import annotations

import re
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

RC = {"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3, "figure.max_open_warning": 0}
STYLE = {  # told apart at a glance: oracles dashed, plug-ins solid, prompt-only dotted, trained thick
    "oracle": dict(linestyle="--", linewidth=1.6),
    "plug-in": dict(linestyle="-", linewidth=1.4),
    "prompt-only": dict(linestyle=":", linewidth=1.8),
    "trained": dict(linestyle="-", linewidth=2.6),
}
STYLE["data-driven"] = STYLE["prompt-only"]  # the name results of earlier versions carry


@dataclass
class Figure:
    id: str
    title: str
    caption: str
    fig: object


def _style(groups: pd.Series) -> dict:
    return STYLE.get(groups.iloc[0], STYLE["prompt-only"])


def t(text) -> str:
    """User text (solver labels, spec names) for matplotlib: '$' would start mathtext."""
    return str(text).replace("$", r"\$")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")[:120]


def _ok(results: pd.DataFrame) -> pd.DataFrame:
    return results[(results["status"] == "ok") & results["k"].notna()]


def _mean_curves(part: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of NMSE at each k, per solver label."""
    return part.groupby(["label", "k"], sort=True).agg(nmse=("nmse", "mean"), se=("nmse_se", "mean"),
                                                      group=("solver_group", "first")).reset_index()


def _log_axis(ax, curves: pd.DataFrame, floor_from: pd.Series | None = None):
    ax.set_yscale("log")
    values = (floor_from if floor_from is not None else curves["nmse"])
    values = values[values > 0]
    if len(values):
        ax.set_ylim(bottom=values.min() / 2)


def curve_figure(results: pd.DataFrame, spec: str) -> Figure:
    """NMSE against k on a log scale (the paper's Fig. 2)."""
    curves = _mean_curves(_ok(results[results["spec"] == spec]))
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for label, c in curves.groupby("label", sort=False):
            ax.plot(c["k"], c["nmse"], label=t(label), **_style(c["group"]))
        non_oracle = curves[curves["group"] != "oracle"]["nmse"]
        # At sigma = 0 the oracles sit ~30 decades below the rest (the paper omits them there).
        _log_axis(ax, curves, non_oracle if len(non_oracle) and curves["nmse"].min() < 1e-12 else None)
        ax.set(xlabel="k (pairs in the prompt)", ylabel="NMSE (MSE / d)", title=t(spec))
        ax.legend(fontsize=8, ncol=2)
        fig.tight_layout()
    return Figure(f"curve-{slug(spec)}", spec, "NMSE against the prompt length k, mean over seeds; "
                  "dashed: oracles, solid: plug-in, dotted: prompt-only, thick: trained in context.", fig)


def fixed_n_figures(results: pd.DataFrame) -> list[Figure]:
    """Per section varying n_train: one panel per n with each estimated pool's oracle prediction
    error as a reference line (the paper's Fig. 3)."""
    ok, out = _ok(results), []
    for (section, m, sigma), part in ok.groupby(["section", "m", "sigma"]):
        ns = sorted(part["n_train"].dropna().unique())
        if len(ns) < 2:
            continue
        with plt.rc_context(RC):
            fig, axes = plt.subplots(1, len(ns), figsize=(3.6 * len(ns), 3.8), sharey=True, squeeze=False)
            for ax, n in zip(axes[0], ns):
                sub = part[part["n_train"] == n]
                for label, c in _mean_curves(sub).groupby("label", sort=False):
                    line, = ax.plot(c["k"], c["nmse"], label=t(label), **_style(c["group"]))
                    ref = sub[sub["label"] == label]["pool_oracle_nmse"].dropna()
                    if len(ref):
                        ax.axhline(ref.mean(), color=line.get_color(), linewidth=0.9, alpha=0.7, linestyle="-.")
                ax.set_yscale("log")
                ax.set(title=f"n = {int(n)}", xlabel="k")
            axes[0][0].set_ylabel("NMSE")
            axes[0][-1].legend(fontsize=7)
            title = f"{section}: m = {m}, sigma = {sigma}"
            fig.suptitle(t(title))
            fig.tight_layout()
        out.append(Figure(f"fixed-n-{slug(title)}", title, "NMSE against k for each training-set size n; "
                          "dash-dot lines: the oracle prediction error of each estimated pool.", fig))
    return out


def probe_figures(probes: dict[str, tuple[str, pd.DataFrame]]) -> list[Figure]:
    """d_k^sq(reference, g) = E[(f(P) - g(P))^2] against k for every other solver g (Fig. 4)."""
    out = []
    for spec, (reference, table) in probes.items():
        with plt.rc_context(RC):
            fig, ax = plt.subplots(figsize=(7, 4.2))
            for label, c in table.groupby("label", sort=False):
                ax.plot(c["k"], c["dsq"], label=t(label), **_style(c["group"]))
            _log_axis(ax, table.rename(columns={"dsq": "nmse"}))
            ax.set(xlabel="k", ylabel=t(f"d_k^sq({reference}, g)"), title=t(spec))
            ax.legend(fontsize=8)
            fig.tight_layout()
        out.append(Figure(f"probe-{slug(spec)}", spec, f"Squared distance between the predictions of {reference} "
                          "and each other solver on the same prompts; lower is closer.", fig))
    return out


def shift_figures(results: pd.DataFrame) -> list[Figure]:
    """NMSE against k for each shift value (Figs. 5, 6, App. D), one panel per solver: trained
    solvers first, then oracles (the paper's panels), at most six."""
    ok, out = _ok(results), []
    shifted = ok[ok["shift_kind"] != "none"]
    for (section, kind, m), part in shifted.groupby(["section", "shift_kind", "m"]):
        group = part.drop_duplicates("label").set_index("label")["solver_group"]
        order = {"trained": 0, "oracle": 1}
        labels = sorted(group.index, key=lambda l: (order.get(group[l], 2), l))[:6]
        values = sorted(part["shift_value"].unique())
        colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(values)))
        with plt.rc_context(RC):
            fig, axes = plt.subplots(1, len(labels), figsize=(3.8 * len(labels), 3.8), squeeze=False)
            for ax, label in zip(axes[0], labels):
                for color, v in zip(colors, values):
                    c = _mean_curves(part[(part["label"] == label) & (part["shift_value"] == v)])
                    ax.plot(c["k"], c["nmse"], color=color, label=f"{v:g}")
                ax.set_yscale("log")
                ax.set(title=t(label), xlabel="k")
            axes[0][0].set_ylabel("NMSE")
            axes[0][-1].legend(title=kind, fontsize=7)
            title = f"{section}: {kind}, m = {m}"
            fig.suptitle(t(title))
            fig.tight_layout()
        out.append(Figure(f"shift-{slug(title)}", title, f"NMSE against k under the test-time shift {kind}; "
                          "one curve per shift value.", fig))
    return out


SAMPLE_AXES = (("k_max", "prompt length n"), ("n_train", "training prompts B"), ("d", "dimension d"),
               ("snr", "SNR ||beta|| / sigma"), ("m", "components K"))


def excess_figures(results: pd.DataFrame, families: list[str]) -> list[Figure]:
    """Families scored by excess MSE (the sample-level one): excess over the oracle at the last
    query (k = k_max) against the prompt length, training prompts, dimension, SNR or K,
    whichever a section varies."""
    ok, out = _ok(results), []
    ok = ok[ok["family"].isin(families) & (ok["k"] == ok["k_max"])]
    for section, part in ok.groupby("section"):
        for field, name in SAMPLE_AXES:
            if part[field].nunique() < 2:
                continue
            others = [c for c in ("symmetric", "pi") if c in part and part[c].nunique() > 1]
            with plt.rc_context(RC):
                fig, ax = plt.subplots(figsize=(7, 4.2))
                for keys, sub in part.groupby(["label", *others], sort=True):
                    keys = keys if isinstance(keys, tuple) else (keys,)
                    c = sub.groupby(field)["excess_mse"].mean()
                    c = c[c > 0]  # the oracle's own excess is exactly 0
                    if len(c):
                        label = keys[0] + "".join(f", {o}={v}" for o, v in zip(others, keys[1:]))
                        ax.plot(c.index, c.values, marker="o", label=t(label),
                                **_style(sub["solver_group"]))
                ax.set_xscale("log")
                ax.set_yscale("log")
                title = f"{section}: excess MSE against {name}"
                ax.set(xlabel=t(name), ylabel="excess MSE over the oracle (k = n)", title=t(title))
                ax.legend(fontsize=7)
                fig.tight_layout()
            out.append(Figure(f"sample-{slug(section)}-{field}", title, "Sample-level mixture: mean squared distance "
                              "to the oracle x^T sum_k pi_k beta_k at the last query, mean over seeds.", fig))
    return out
