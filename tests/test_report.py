"""The HTML report: content, escaping, partial runs, and a real headless Chromium."""
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import mrbench
from mrbench.report import write_report

SUITE = """
[suite]
name = "rep"
[defaults]
d = 4
k_max = 8
n_test = 64
n_train = 300
sigma = 0.5
[sections.main]
grid = { m = [2, 3] }
[sections.shift]
m = 2
shift_kind = "covariate_scale"
grid = { shift_value = [0.5, 2.0] }
[sections.fixed]
m = 2
grid = { n_train = [200, 400] }
[claims.argmin_close]
quote = "the argmin is <i>close</i> to the posterior mean"
source = "a test"
sections = ["main"]
metric = "ratio"
solver = "argmin"
reference = "posterior_mean"
holds_if = "<= 10"
[claims.em_close]
quote = "EM is close to the posterior mean"
source = "a test"
sections = ["fixed"]
metric = "worst_ratio"
solver = "em"
reference = "posterior_mean"
holds_if = "<= 0.2"
"""

EVIL = """
import numpy as np
from mrbench import Solver

class Evil(Solver):
    name = "<script>alert(1)</script>"
    def __init__(self, note="x"):
        self.note = note
    def predict(self, x, y):
        return np.zeros(y.shape)

class Broken(Solver):
    name = "broken"
    def predict(self, x, y):
        raise RuntimeError("deliberate <b>failure</b>")
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    (root / "s.toml").write_text(SUITE)
    (root / "evil.py").write_text(EVIL)
    out = root / "res"
    mrbench.run(suite=str(root / "s.toml"), out=out, plugins=[root / "evil.py"], save_predictions=True,
                solvers="posterior_mean,argmin,ols,em,broken,<script>alert(1)</script>[note='<img src=x onerror=alert(2)>']",
                progress=False, report=False)
    return out


def test_report_content_escaping_and_figures(results, tmp_path):
    path = write_report(results, tmp_path / "r.html", figures_dir=tmp_path / "figs", reference="ols")
    html = path.read_text()
    # one script, the table sort written in the template; user text escaped
    assert html.lower().count("<script") == 1
    assert "mrbench report: rep · " in html  # the title names the suite and the date
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "onerror=alert(2)&gt;" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "nothing may load from the network"
    for section in ("avg-ranks", "Leaderboards", "Fixed training-set size", "Distance probe", "Distribution shifts",
                    "deliberate &lt;b&gt;failure&lt;/b&gt;", "Provenance", "ORACLE"):
        assert section in html, section
    pngs = sorted(p.stem for p in (tmp_path / "figs").glob("*.png"))
    assert pngs == sorted(p.stem for p in (tmp_path / "figs").glob("*.svg")) and len(pngs) >= 8
    assert any(p.startswith("fixed-n-") for p in pngs) and any(p.startswith("shift-") for p in pngs)
    assert any(p.startswith("probe-") for p in pngs)


def test_partial_run_still_renders_and_lists_missing(results, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(results, partial)
    victims = sorted(partial.glob("*.parquet"))[:3]
    for f in victims:
        f.unlink()
    html = write_report(partial).read_text()
    assert "3 planned cell(s) have no result" in html


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def test_report_in_headless_chromium(results, tmp_path):
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no Chromium on this machine (Debian package 'chromium'; .ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    path = write_report(results, tmp_path / "report.html", reference="ols", suites=[results.parent / "s.toml"])
    errors, dialogs = [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        boards = page.eval_on_selector_all("table.leaderboard", "ts => ts.map(t => t.rows.length - 1)")
        verdicts = page.eval_on_selector_all("#scorecard tr", "rs => rs.slice(1).map(r => r.cells[4].innerText)")
        text = page.inner_text("body")
        # a click on "mean NMSE" sorts the first leaderboard by it, a second click reverses it
        page.click("table.leaderboard >> nth=0 >> th:has-text('mean NMSE')")
        up = page.eval_on_selector("table.leaderboard", "t => Array.from(t.tBodies[0].rows).map(r => r.cells[2].dataset.v)")
        page.click("table.leaderboard >> nth=0 >> th:has-text('mean NMSE')")
        down = page.eval_on_selector("table.leaderboard", "t => Array.from(t.tBodies[0].rows).map(r => r.cells[2].dataset.v)")
        toc = page.eval_on_selector_all("#toc a", "as => as.map(a => a.textContent)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert errors == [] and dialogs == []
    assert widths and all(w > 0 for w in widths), widths
    n_solvers = 6  # posterior_mean, argmin, ols, em, broken (failed), the escaped one
    assert boards and all(n == n_solvers for n in boards), boards
    assert "<script>alert(1)</script>" in text  # shown as text
    assert verdicts == ["holds", "fails"] and "the argmin is <i>close</i> to the posterior mean" in text
    assert (tmp_path / "report.png").stat().st_size > 10_000
    known = [float(v) for v in up if v not in ("", "None", "nan")]
    assert len(known) == 5 and known == sorted(known) and up[len(known):] == [""]  # the failed row (no value) last
    assert [float(v) for v in down if v not in ("", "None", "nan")] == known[::-1]
    assert toc[:3] == ["The papers' claims", "Average ranks", "Leaderboards"] and toc[3:6] == ["main", "shift", "fixed"]


def test_paired_ranks_share_a_rank_within_the_uncertainty():
    import pandas as pd

    from mrbench.leaderboard import paired_ranks

    rng = np.random.default_rng(0)
    base = rng.exponential(1.0, size=(2, 500))  # two seeds of 500 prompts
    scores = {"a": base, "b": base + rng.normal(0, 1e-3, size=base.shape),  # same up to noise
              "c": base + 0.05 + rng.normal(0, 1e-3, size=base.shape), "d": base * (1 + 1e-14)}  # c clearly worse

    class Store:
        def prompt_scores(self, key):
            label, seed = key.split("/")
            return scores[label][int(seed)]

    cells = pd.DataFrame([{"cell_key": f"{lab}/{s}", "label": lab, "seed": s} for lab in scores for s in (0, 1)])
    ranks, resolved = paired_ranks(cells, Store())
    assert ranks == {"a": 1, "b": 1, "c": 4, "d": 1} and all(resolved.values())
    assert paired_ranks(cells, type("Empty", (), {"prompt_scores": lambda self, key: None})()) is None
    # a solver far worse on average but with an interval spanning the table: ranked by its
    # mean, last, and marked unresolved; it never shares the first rank through a neighbour
    scores["e"] = base + np.array([[-0.5], [1.0]])  # two training runs far apart: a mean of +0.25, unresolved
    cells = pd.DataFrame([{"cell_key": f"{lab}/{s}", "label": lab, "seed": s} for lab in scores for s in (0, 1)])
    ranks, resolved = paired_ranks(cells, Store())
    assert ranks["a"] == 1 and ranks["e"] == ranks["c"] == 4 and not resolved["e"] and resolved["c"]


def test_leaderboard_reads_three_digits_dashes_and_units():
    from mrbench import formatting as fmt

    assert fmt.num(0.0711234) == "0.0711" and fmt.num(float("nan")) == "—" and fmt.num(None) == "—"
    assert fmt.signed(-1.58e-7) == "-1.58e-07" and fmt.signed(0.0149) == "+0.0149"
    assert fmt.duration(0.0123) == "12.3 ms" and fmt.duration(1.234) == "1.23 s" and fmt.duration(300) == "5 min"
    assert fmt.duration(float("nan")) == "—" and fmt.megabytes(766.4) == "766"


def test_console_leaderboard_headers_line_up_with_their_columns():
    from mrbench.leaderboard import current, leaderboard_text
    from mrbench.store import Store, load_results

    root = Path(__file__).resolve().parents[1] / "reports" / "quick" / "results"
    text = leaderboard_text(current(load_results(root)), Store(root))
    block = text.split("\n== ")[1].splitlines()[1:]  # the first spec's header and rows
    header, rows = block[0], [r for r in block[1:] if r and not r.startswith("cells:")]
    assert len(rows) == 8
    for name in ("mean NMSE", "SE", "ratio", "predict"):  # numbers: right-aligned under their header
        end = header.index(name) + len(name)
        assert all(r[end - 1] != " " and (len(r) == end or r[end] == " ") for r in rows), name
    start = header.index("solver")  # text: left-aligned
    assert all(r[start - 1] == " " and r[start] != " " for r in rows)


def test_figures_keep_colours_scale_to_learners_and_show_overlaps():
    """On the published quick run: one colour per solver in every figure; at sigma = 0 the axis
    is not set by exact fits (1e-30), which are marked at its edge; a curve exactly equal to
    another says so in the legend; the ratio panel appears only where the reference's NMSE is
    not 0."""
    from mrbench.figures import EXACT, Palette, curve_figure
    from mrbench.leaderboard import current
    from mrbench.store import load_results

    results = current(load_results(Path(__file__).resolve().parents[1] / "reports" / "quick" / "results"))
    palette = Palette(sorted(set(results["label"])))
    noisy, exact = (curve_figure(results, f"fig2/m=20,sigma={s}", palette) for s in ("1.0", "0.0"))

    def colours(figure):
        return {line.get_label(): line.get_color() for line in figure.fig.axes[0].get_lines()
                if not line.get_label().startswith("_")}
    a, b = colours(noisy), colours(exact)
    shared = {k.split(" (=")[0] for k in a} & {k.split(" (=")[0] for k in b}
    assert len(shared) >= 6
    assert all(a[k] == b[k] for k in a if k in b)
    assert len(noisy.fig.axes) == 2 and len(exact.fig.axes) == 1  # no ratio to an oracle whose NMSE is 0
    assert exact.fig.axes[0].get_ylim()[0] >= EXACT / 2
    assert "posterior_mean (= argmin)" in b  # the same curve at sigma = 0
    assert any(line.get_marker() == "v" and line.get_linestyle() == "None" for line in exact.fig.axes[0].get_lines())
