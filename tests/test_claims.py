"""Claims declared in suite files: parsing and its errors, each metric on results with a known
answer (a claim that holds, one that fails, one that is inconclusive, one not measured), the
console scorecard."""
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mrbench
from mrbench import claims
from mrbench.errors import UserError
from mrbench.store import Store
from mrbench.suites import load_suite

SUITE = """
[suite]
name = "claimed"
[defaults]
d = 4
m = 3
k_max = 8
n_test = 400
sigma = 0.5
[sections.main]
solvers = ["posterior_mean", "argmin", "ols", "transformer[preset='tiny']"]
save_predictions = true
grid = { m = [2, 3] }
[claims.argmin_near]
quote = "argmin is nearly as good as the posterior mean"
source = "a test"
metric = "ratio"
solver = "argmin"
reference = "posterior_mean"
holds_if = "<= 1.0001"
[claims.same]
quote = "the posterior mean matches itself"
source = "a test"
metric = "ratio"
solver = "posterior_mean"
reference = "posterior_mean"
holds_if = "in [0.99, 1.01]"
[claims.ols_late]
quote = "OLS is within 10x of the oracle from k = 6 on"
source = "a test"
metric = "worst_ratio"
solver = "ols"
reference = "posterior_mean"
k_from = 6
holds_if = "<= 10"
[claims.probe]
quote = "the posterior mean computes something closest to the argmin"
source = "a test"
metric = "probe_closest"
solver = "posterior_mean"
candidates = ["argmin", "ols"]
expected = "argmin"
[claims.trained]
quote = "the transformer is Bayes-optimal"
source = "a test"
metric = "ratio"
solver = "transformer[preset='tiny']"
reference = "posterior_mean"
holds_if = "<= 1.05"
[claims.sa]
quote = "SA is good"
source = "a test"
metric = "ratio"
solver = "ols"
reference = "posterior_mean"
holds_if = "<= 1.05"
unmeasurable = "the subspace algorithm is not shipped"
"""


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    root = tmp_path_factory.mktemp("claims")
    path = root / "claimed.toml"
    path.write_text(SUITE)
    import os

    os.environ["MRBENCH_CACHE"] = str(root / "cache")  # no checkpoint: the transformer is skipped
    try:
        results = mrbench.run(suite=path, out=root / "r", progress=False, report=False, device="cpu")
    finally:
        del os.environ["MRBENCH_CACHE"]
    suite = load_suite(path)
    from mrbench.leaderboard import current

    return suite, current(results), Store(root / "r"), root


def _verdicts(measured):
    suite, results, store, _ = measured
    return {v.claim.name: v for v in claims.evaluate(suite.claims, results, store)}


def test_each_metric_reaches_its_known_verdict(measured):
    v = _verdicts(measured)
    assert v["argmin_near"].verdict == "fails" and v["argmin_near"].value > 1.0001  # argmin is clearly worse
    assert "paired over prompts" in v["argmin_near"].detail
    assert v["same"].verdict == "holds" and v["same"].value == pytest.approx(1.0)
    assert v["ols_late"].verdict == "holds" and "at k = 6" in v["ols_late"].detail  # OLS is worst at k = 6 of 6..8
    assert v["probe"].verdict == "holds" and v["probe"].value == "argmin"
    assert v["trained"].verdict == "not measured" and "skipped" in v["trained"].detail
    assert v["sa"].verdict == "not measured" and "not shipped" in v["sa"].detail


def test_a_threshold_inside_the_interval_is_inconclusive(measured):
    suite, results, store, _ = measured
    claim = next(c for c in suite.claims if c.name == "argmin_near")
    value = claims.evaluate([claim], results, store)[0]
    at_value = dataclasses.replace(claim, holds_if=("<=", value.value))
    assert claims.evaluate([at_value], results, store)[0].verdict == "inconclusive"
    beyond = dataclasses.replace(claim, holds_if=("<=", value.high * 1.01))
    assert claims.evaluate([beyond], results, store)[0].verdict == "holds"


def test_the_ratio_interval_is_the_paired_delta_method(measured):
    suite, results, store, _ = measured
    claim = next(c for c in suite.claims if c.name == "argmin_near")
    v = claims.evaluate([claim], results, store)[0]
    spec = v.detail.split(";")[0]
    cells = results[(results["spec"] == spec)].drop_duplicates("cell_key").set_index("label")
    a, b = store.prompt_scores(cells.loc["argmin", "cell_key"]), store.prompt_scores(cells.loc["posterior_mean", "cell_key"])
    rng = np.random.default_rng(0)  # an independent check: a bootstrap over prompts
    boot = [a[i].mean() / b[i].mean() for i in rng.integers(0, len(a), size=(2000, len(a)))]
    assert v.value == pytest.approx(a.mean() / b.mean())
    assert v.high - v.low == pytest.approx(np.percentile(boot, 97.5) - np.percentile(boot, 2.5), rel=0.15)


def slope_rows(ns, errs, ses):
    return pd.DataFrame([{"spec": f"s{n}", "family": "sample", "label": "x", "k": 5, "k_max": n, "excess_mse": e, "excess_mse_se": se,
                          "seed": 0, "status": "ok", "section": "s", "cell_key": f"c{n}"}
                         for n, e, se in zip(ns, errs, ses)])


def test_slope_recovers_a_known_exponent_weighted_by_each_points_error():
    ns = np.array([10, 20, 40, 80, 160])
    claim = claims.Claim(name="rate", quote="q", source="s", metric="slope", solver="x", sections=("s",),
                         field="k_max", holds_if=("in", -0.55, -0.45))
    exact = 3.0 * ns ** -0.5
    v = claims.evaluate([claim], slope_rows(ns, exact, 0.01 * exact), store=None)[0]
    assert v.value == pytest.approx(-0.5) and v.verdict == "holds"
    assert claims.evaluate([dataclasses.replace(claim, holds_if=("<=", -1.0))], slope_rows(ns, exact, 0.01 * exact),
                           None)[0].verdict == "fails"
    # one point far off but with a huge SE barely moves the fit; an independent WLS agrees
    errs, ses = exact.copy(), 0.02 * exact
    errs[0], ses[0] = exact[0] * 3, exact[0] * 5
    v = claims.evaluate([claim], slope_rows(ns, errs, ses), store=None)[0]
    rel = ses / errs
    A = np.column_stack([np.ones(5), np.log(ns)]) / rel[:, None]
    assert v.value == pytest.approx(np.linalg.lstsq(A, np.log(errs) / rel, rcond=None)[0][1])
    assert abs(v.value + 0.5) < 0.05
    # fewer than five grid points: not measured, however tight
    four = claims.evaluate([claim], slope_rows(ns[:4], exact[:4], 0.01 * exact[:4]), store=None)[0]
    assert four.verdict == "not measured" and "needs 5" in four.detail


def test_fails_over_many_positions_is_corrected_for_multiplicity():
    """60 positions, each 2.2 SE above the threshold by chance at one k: pointwise that 'fails';
    with Holm's correction over the 60 comparisons it is inconclusive. A real excess fails."""
    ks = np.arange(1, 61)
    rows = []
    for label, nmse in (("a", np.ones(60)), ("b", np.ones(60))):
        rows += [{"spec": "s", "label": label, "k": k, "k_max": 60, "nmse": v, "nmse_se": 0.0, "seed": 0,
                  "status": "ok", "section": "s", "cell_key": label} for k, v in zip(ks, nmse)]
    frame = pd.DataFrame(rows)
    frame.loc[(frame.label == "a") & (frame.k == 30), "nmse"] = 1.0 + 2.2 * 0.01
    frame.loc[frame.label == "a", "nmse_se"] = 0.01
    claim = claims.Claim(name="w", quote="q", source="s", metric="worst_ratio", solver="a", reference="b",
                         sections=("s",), holds_if=("<=", 1.0))
    v = claims.evaluate([claim], frame, store=None)[0]
    assert v.verdict == "inconclusive" and "Holm" in v.detail
    frame.loc[(frame.label == "a") & (frame.k == 30), "nmse"] = 1.0 + 5 * 0.01
    assert claims.evaluate([claim], frame, store=None)[0].verdict == "fails"


def test_verdict_values_carry_the_digits_that_decide_them():
    claim = claims.Claim(name="r", quote="q", source="s", metric="ratio", solver="a", reference="b", sections=("s",),
                         holds_if=(">=", 1.0))
    text = claims.Verdict(claim, "inconclusive", 1.0003, 0.9998, 1.0008).measured()
    assert "ratio - 1 = +0.0003 [-0.0002, +0.0008]" in text


@pytest.mark.parametrize("edit, message", [
    (('metric = "ratio"', 'metric = "ratioo"'), "metric 'ratioo' is unknown; valid metrics: ratio, worst_ratio"),
    (('solver = "argmin"', 'solver = "argminn"'), "unknown solver 'argminn'; valid solvers: altmin, argmin"),
    (('holds_if = "<= 1.0001"', 'holds_if = "<= 1.0001"\nsections = ["fig9"]'), "section 'fig9' is unknown; sections: main"),
    (('holds_if = "<= 1.0001"', 'holds_if = "<= 1.0001"\nkind = 3'), "unknown field(s) ['kind']; valid:"),
    (('holds_if = "<= 1.0001"', 'holds_if = "below 1"'), "holds_if 'below 1' must read"),
])
def test_a_bad_claim_is_an_error_when_the_suite_loads(tmp_path, cli, edit, message):
    path = tmp_path / "bad.toml"
    path.write_text(SUITE.replace(*edit, 1))
    with pytest.raises(UserError, match=None) as err:
        load_suite(path)
    assert message in str(err.value) and "[claims.argmin_near]" in str(err.value)
    code, _, stderr = cli("run", "--suite", path, "--dry-run")
    assert code == 2 and message in stderr


def test_report_prints_the_scorecard(measured, cli):
    _, _, _, root = measured
    # the run record names the suite file, but a results directory may come from someone else:
    # its paths are never loaded, only a suite the user passes (or a built-in one, by name)
    code, out, err = cli("report", root / "r", "--claims")
    assert code == 0 and "no claims" in out, err
    code, out, err = cli("report", root / "r", "--claims", "--suite", root / "claimed.toml")
    assert code == 0, err
    assert "argmin_near | a test |" in out and "| fails" in out and "| not measured" in out
    assert '"the transformer is Bayes-optimal"' in out
    html = (root / "r" / "_report.html").read_text()
    assert 'id="scorecard"' in html and "the subspace algorithm is not shipped" in html


def test_degradation_under_a_shift_against_the_unshifted_spec(tmp_path):
    path = tmp_path / "shifted.toml"
    path.write_text("""
[suite]
name = "shifted"
[defaults]
d = 4
m = 3
k_max = 8
n_test = 400
sigma = 0.5
[sections.scale]
solvers = ["posterior_mean", "ols"]
shift_kind = "covariate_scale"
grid = { shift_value = [1.0, 3.0] }
[claims.degrades]
quote = "the posterior mean's error grows with the covariate scale"
source = "a test"
metric = "degradation"
solver = "posterior_mean"
baseline = 1.0
holds_if = ">= 1.1"
[claims.against]
quote = "ols degrades less than the posterior mean"
source = "a test"
metric = "degradation"
solver = "ols"
reference = "posterior_mean"
baseline = 1.0
holds_if = "<= 1"
""")
    results = mrbench.run(suite=path, out=tmp_path / "r", progress=False, report=False)
    v = {x.claim.name: x for x in claims.evaluate(load_suite(path).claims, results, Store(tmp_path / "r"))}
    cells = results.drop_duplicates("cell_key").set_index(["label", "shift_value"])["nmse_avg"]
    pm = cells[("posterior_mean", 3.0)] / cells[("posterior_mean", 1.0)]
    assert v["degrades"].value == pytest.approx(pm) and v["degrades"].verdict == "holds"  # about 1.9
    assert v["against"].value == pytest.approx(cells[("ols", 3.0)] / cells[("ols", 1.0)] / pm)


@pytest.mark.parametrize("suite", ["pathak2023", "jin2024"])
def test_builtin_claims_quote_the_papers_verbatim(suite):
    """Each quote is in the text its source names: Pathak et al.'s full text, or the summary of
    Jin et al. (the only text of that paper among our sources), and never in the summary's own
    speculation (its "Design tradeoffs", "Failure signatures" and "Open Questions")."""
    from pathlib import Path

    papers = Path(__file__).resolve().parents[2] / "shared" / "papers"
    if not papers.is_dir():
        pytest.skip("the papers (../shared/papers) are not beside this checkout")
    pathak = (papers / "002_2d2afc6587e1b9f9.txt").read_text()
    summary = (papers / "000_c699a568ffb651ec.txt").read_text()
    speculation = [summary[summary.index(a):summary.index(b)] for a, b in (
        ("- Design tradeoffs:", "- First 3 experiments:"), ("## Open Questions", "## Limitations"))]
    assert all(len(part) > 500 for part in speculation)
    loaded = load_suite(suite).claims
    assert len(loaded) >= 5
    for claim in loaded:
        if "Jin et al." in claim.source:
            assert "summary of Jin et al." in claim.source, claim.name  # a summary is named as one
            assert claim.quote in summary, claim.name
            assert not any(claim.quote in part for part in speculation), claim.name
        else:
            assert claim.source.startswith("Pathak et al. 2023") and claim.quote in pathak, claim.name


def test_with_several_seeds_the_ratio_interval_is_over_seeds():
    from scipy.stats import t

    rng = np.random.default_rng(1)
    scores = {}
    for seed, gain in enumerate((1.10, 1.20, 1.15)):  # three training runs of different quality
        b = rng.exponential(1.0, 300)
        scores[("ref", seed)], scores[("x", seed)] = b, b * gain

    class Store:
        def prompt_scores(self, key):
            return scores[key]

    cells = pd.DataFrame([{"cell_key": (lab, s), "label": lab, "seed": s} for lab in ("x", "ref") for s in range(3)])
    claim = claims.Claim(name="c", quote="q", source="s", metric="ratio", solver="x", reference="ref")
    value, se, q = claims._paired_ratio(cells, claim, Store())
    assert value == pytest.approx(1.15) and se == pytest.approx(np.std([1.1, 1.2, 1.15], ddof=1) / np.sqrt(3))
    assert q == pytest.approx(t.ppf(0.975, 2))


def test_a_slope_claim_with_a_reference_fits_the_excess_over_it():
    """Theorem 4.1's quantity on the published jin2024 run: lsa's excess over the best of its
    class (lsa[prompts=100000]), not over the family's known-beta bound. Checked against an
    unweighted log-log fit of the mean paired excesses, computed here from the stored scores."""
    from pathlib import Path

    import numpy as np

    from mrbench.leaderboard import current
    from mrbench.report import scorecard
    from mrbench.store import Store, load_results

    root = Path(__file__).resolve().parents[1] / "reports" / "jin2024" / "results"
    results, store = current(load_results(root)), Store(root)
    [verdict] = [v for v in scorecard(results, store) if v.claim.name == "excess_risk_in_B_lsa"]
    cells = results[results["section"] == "training_prompts"].drop_duplicates("cell_key")
    points = []
    for B, part in cells.groupby("n_train"):
        key = {label: part[part["label"] == label]["cell_key"].iloc[0] for label in ("lsa", "lsa[prompts=100000]")}
        points.append((np.log(B), np.log((store.prompt_scores(key["lsa"]) - store.prompt_scores(key["lsa[prompts=100000]"])).mean())))
    x, y = np.array(points).T
    assert len(x) == 5 and abs(verdict.value - np.polyfit(x, y, 1)[0]) < 0.1
    assert verdict.verdict == "holds" and verdict.high < -0.5


def test_a_verdict_on_part_of_its_specs_says_so():
    """The published Fig. 3 verdict covers all 8 specs; with the m = 20 cells made skips (as
    before their checkpoints were shipped), it counts the specs it was reached on and says why
    the others have no result."""
    import mrbench
    from mrbench.leaderboard import current
    from mrbench.report import scorecard
    from mrbench.store import Store, load_results

    root = Path(__file__).resolve().parents[1] / "reports" / "pathak2023" / "results"
    card = mrbench.scorecard(root).set_index("claim")
    assert "specs it covers" not in card.loc["fig3_close_to_em[transformer]", "measured"]
    results = current(load_results(root))
    gone = results["label"].isin(["transformer", "transformer[dropout=0.1]"]) & (results["spec"].str.startswith("fig3/m=20"))
    results.loc[gone, ["status", "error"]] = ["skipped", "no checkpoint for this training distribution and no GPU"]
    verdict = next(v for v in scorecard(results, Store(root)) if v.claim.name == "fig3_close_to_em[transformer]")
    assert verdict.verdict in ("holds", "fails", "inconclusive")
    assert "on 4 of the 8 specs it covers" in verdict.detail
    assert "fig3/m=20,n_train=15000 ...: skipped: no checkpoint for this training distribution" in verdict.detail
