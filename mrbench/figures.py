"""The papers' figures, drawn from the results store with matplotlib (Agg, no display)."""
from __future__ import annotations

import re
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .families import families  # noqa: E402

RC = {"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3, "figure.max_open_warning": 0}
STYLE = {  # told apart at a glance: oracles dashed, plug-ins solid, prompt-only dotted, in-context thick
    "oracle": dict(linestyle="--", linewidth=1.6),
    "plug-in": dict(linestyle="-", linewidth=1.4),
    "prompt-only": dict(linestyle=":", linewidth=1.8),
    "in-context": dict(linestyle="-", linewidth=2.6),
}


@dataclass
class Figure:
    id: str
    title: str
    caption: str
    fig: object


def _style(groups: pd.Series) -> dict:
    return STYLE.get(groups.iloc[0], STYLE["prompt-only"])


MARKERS = "osD^v<>ph*XP"


class Palette:
    """One colour and marker per solver label for the whole report (the same solver looks the
    same in every figure), in the order of the labels given; markers at staggered positions, so
    that exactly overlapping curves both stay visible."""

    def __init__(self, labels=()):
        colors = plt.get_cmap("tab10").colors + plt.get_cmap("Dark2").colors + plt.get_cmap("Set1").colors
        self.index = {label: i for i, label in enumerate(dict.fromkeys(labels))}
        self.colors = colors

    def color(self, label: str):
        return self.colors[self.index.setdefault(label, len(self.index)) % len(self.colors)]

    def __call__(self, label: str, groups: pd.Series, n_points: int = 0) -> dict:
        i = self.index.setdefault(label, len(self.index))
        style = dict(_style(groups), color=self.colors[i % len(self.colors)], marker=MARKERS[i % len(MARKERS)],
                     markersize=4)
        if n_points:  # about 8 markers a curve, shifted per solver
            step = max(1, n_points // 8)
            style["markevery"] = (i % step, step)
        return style


def _band(ax, c: pd.DataFrame, color):
    """The 95% band of a mean curve (1.96 standard errors over prompts)."""
    if "se" in c and c["se"].notna().any():
        lo = (c["nmse"] - 1.96 * c["se"]).clip(lower=c["nmse"] * 1e-3)  # a log axis takes no value <= 0
        ax.fill_between(c["k"], lo, c["nmse"] + 1.96 * c["se"], color=color, alpha=0.15, linewidth=0)


def _same_as(curves: pd.DataFrame) -> dict[str, str]:
    """label -> the first other label whose curve is the same to 1e-9 (they would hide each other)."""
    by_label = {label: c["nmse"].to_numpy() for label, c in curves.groupby("label", sort=False)}
    same, labels = {}, list(by_label)
    for i, a in enumerate(labels):
        for b in labels[:i]:
            x, y = by_label[a], by_label[b]
            if len(x) == len(y) and np.allclose(x, y, rtol=1e-9, atol=1e-300):
                same[a] = b
                break
    return same


EXACT = 1e-12  # an NMSE below this is exact up to rounding (sigma = 0 fits reach 1e-30)


def _clip_axis(ax, curves: pd.DataFrame, d: int, noiseless: bool, color_of=lambda label: "0.35"):
    """A log axis scaled to the learners' curves: not to oracles ~30 decades below at sigma = 0,
    nor to OLS's spike at k = d (infinite expectation there). Points outside are drawn at the
    edge as triangles, not left to set the axis."""
    ax.set_yscale("log")
    learners = curves[~curves["group"].isin(("oracle", "bound"))] if noiseless else curves
    inside = learners[(learners["k"] < d - 1) | (learners["k"] > d + 1)]["nmse"]
    inside = inside[inside > (EXACT if noiseless else 0)]  # at sigma = 0, exact fits are rounding noise
    if not len(inside):
        return
    bottom, top = inside.min() / 2, inside.max() * 2
    ax.set_ylim(bottom, top)
    for edge, out, marker in ((top, curves["nmse"] > top, "^"), (bottom, (curves["nmse"] < bottom), "v")):
        for label, c in curves[out].groupby("label", sort=False):
            ax.plot(c["k"], np.full(len(c), edge), linestyle="none", marker=marker, color=color_of(label),
                    markersize=5, clip_on=False, zorder=5)


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


def curve_figure(results: pd.DataFrame, spec: str, palette: Palette | None = None) -> Figure:
    """NMSE against k on a log scale (the paper's Fig. 2) with 95% bands, and beside it each
    solver's ratio to the family's reference at every k, the quantity the claims are about."""
    palette = palette or Palette()
    part = _ok(results[results["spec"] == spec])
    curves = _mean_curves(part)
    d, sigma = int(part["d"].iloc[0]), float(part["sigma"].iloc[0])
    family = families().get(part["family"].iloc[0])
    reference = family.oracle if family is not None and family.oracle in set(curves["label"]) else None
    ref = curves[curves["label"] == reference].set_index("k")["nmse"] if reference else None
    with_ratio = ref is not None and bool((ref[ref.index > 0] > EXACT).all()) and curves["label"].nunique() > 1
    same = _same_as(curves)
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, 2 if with_ratio else 1, figsize=(12 if with_ratio else 7, 4.2), squeeze=False)
        ax = axes[0][0]
        for label, c in curves.groupby("label", sort=False):
            style = palette(label, c["group"], len(c))
            name = t(label) + (f" (= {t(same[label])})" if label in same else "")
            line, = ax.plot(c["k"], c["nmse"], label=name, **style)
            _band(ax, c, line.get_color())
        _clip_axis(ax, curves, d, noiseless=sigma == 0, color_of=palette.color)
        ax.set(xlabel="k (pairs in the prompt)", ylabel="NMSE (MSE / d)", title=t(spec))
        ax.legend(fontsize=8, ncol=2)
        if with_ratio:
            rx = axes[0][1]
            ratios = curves[curves["label"] != reference].assign(
                nmse=lambda f: f["nmse"].to_numpy() / ref.reindex(f["k"]).to_numpy())
            for label, c in ratios.groupby("label", sort=False):
                rx.plot(c["k"], c["nmse"], label=t(label), **palette(label, c["group"], len(c)))
            rx.axhline(1.0, color="0.3", linewidth=1)
            _clip_axis(rx, ratios, d, noiseless=False, color_of=palette.color)
            rx.set(xlabel="k (pairs in the prompt)", ylabel=t(f"NMSE / NMSE of {reference}"),
                   title=t(f"ratio to {reference}"))
        fig.tight_layout()
    caption = ("NMSE against the prompt length k, mean over seeds, with 95% bands; dashed: oracles, solid: "
               "plug-in, dotted: prompt-only, thick: trained in context; one colour and marker per solver in "
               "every figure; triangles at an edge: values outside the axis, which is scaled to the learners' "
               f"curves away from k = d = {d}" + (f", and at sigma = 0 to values above {EXACT:g} (exact up to "
                                                  "rounding below)" if sigma == 0 else ""))
    caption += (f". Right: each solver's NMSE over {reference}'s at every k (1 is optimal)." if with_ratio else ".")
    if same:
        caption += " (= X): the curve is exactly X's."
    return Figure(f"curve-{slug(spec)}", spec, caption, fig)


def fixed_n_figures(results: pd.DataFrame, palette: Palette | None = None) -> list[Figure]:
    """Per section varying n_train: one panel per n, with 95% bands and, where a solver
    estimates a pool, that pool's oracle prediction error as a reference line (the paper's Fig. 3)."""
    palette = palette or Palette()
    ok, out = _ok(results), []
    for (section, m, sigma), part in ok.groupby(["section", "m", "sigma"]):
        ns = sorted(part["n_train"].dropna().unique())
        if len(ns) < 2:
            continue
        refs = False
        with plt.rc_context(RC):
            fig, axes = plt.subplots(1, len(ns), figsize=(3.6 * len(ns), 3.8), sharey=True, squeeze=False)
            for ax, n in zip(axes[0], ns):
                sub = part[part["n_train"] == n]
                for label, c in _mean_curves(sub).groupby("label", sort=False):
                    line, = ax.plot(c["k"], c["nmse"], label=t(label), **palette(label, c["group"], len(c)))
                    _band(ax, c, line.get_color())
                    ref = sub[sub["label"] == label]["pool_oracle_nmse"].dropna()
                    if len(ref):
                        refs = True
                        ax.axhline(ref.mean(), color=line.get_color(), linewidth=0.9, alpha=0.7, linestyle="-.")
                ax.set_yscale("log")
                ax.set(title=f"n = {int(n)}", xlabel="k")
            axes[0][0].set_ylabel("NMSE")
            axes[0][-1].legend(fontsize=7)
            components = "K" if (part["family"] == "sample").all() else "m"  # the sample-level paper's letter
            title = f"{section}: {components} = {m}, sigma = {sigma}"
            fig.suptitle(t(title))
            fig.tight_layout()
        caption = "NMSE against k for each training-set size n, with 95% bands"
        caption += ("; dash-dot lines: the oracle prediction error of each estimated pool." if refs else ".")
        out.append(Figure(f"fixed-n-{slug(title)}", title, caption, fig))
    return out


def probe_figures(probes: dict[str, tuple[str, pd.DataFrame]], palette: Palette | None = None) -> list[Figure]:
    """d_k^sq(reference, g) = E[(f(P) - g(P))^2] against k for every other solver g (Fig. 4)."""
    palette, out = palette or Palette(), []
    for spec, (reference, table) in probes.items():
        with plt.rc_context(RC):
            fig, ax = plt.subplots(figsize=(7, 4.2))
            for label, c in table.groupby("label", sort=False):
                ax.plot(c["k"], c["dsq"], label=t(label), **palette(label, c["group"], len(c)))
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
        order = {"in-context": 0, "oracle": 1}
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


def excess_figures(results: pd.DataFrame, families: list[str], palette: Palette | None = None) -> list[Figure]:
    """Families scored by excess MSE (the sample-level one): excess over the oracle at the last
    query (k = k_max) against the prompt length, training prompts, dimension, SNR or K,
    whichever a section varies."""
    palette, ok, out = palette or Palette(), _ok(results), []
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
                        ax.plot(c.index, c.values, label=t(label), **palette(keys[0], sub["solver_group"]))
                ax.set_xscale("log")
                ax.set_yscale("log")
                title = f"{section}: excess MSE against {name}"
                ax.set(xlabel=t(name), ylabel="excess MSE over the oracle (k = n)", title=t(title))
                ax.legend(fontsize=7)
                fig.tight_layout()
            out.append(Figure(f"sample-{slug(section)}-{field}", title, "Sample-level mixture: mean squared distance "
                              "to the oracle x^T sum_k pi_k beta_k at the last query, mean over seeds.", fig))
    return out
