"""The sample family's Bayes reference: the particle filter against brute force (every
labeling), and no solver beating it beyond sampling error on the family's own law."""
from pathlib import Path

import numpy as np
import pytest

from mrbench.data import make_dataset
from mrbench.families import make_spec
from mrbench.families.sample_posterior import enumerate_posterior_mean, posterior_mean
from mrbench.leaderboard import below_reference, current
from mrbench.prompts import hide_query
from mrbench.registry import instantiate, load_registry, parse_solver_arg
from mrbench.store import Store, load_results


def tiny_prompts(K, pi, symmetric, P, n=5, d=2, sigma=0.5, snr=3.0, seed=0):
    rng = np.random.default_rng(seed)
    tau2 = snr**2 * sigma**2 / d
    x = rng.standard_normal((n, P, d))
    B = rng.standard_normal((n, K, d)) * np.sqrt(tau2)
    if symmetric:
        B[:, 1] = -B[:, 0]
    z = rng.choice(K, size=(n, P), p=pi)
    y = np.einsum("npd,npd->np", x, B[np.arange(n)[:, None], z]) + sigma * rng.standard_normal((n, P))
    return x, y, sigma, tau2


@pytest.mark.parametrize("K,pi,symmetric,P", [
    (2, [0.5, 0.5], False, 8), (2, [0.7, 0.3], True, 8), (3, [0.6, 0.3, 0.1], False, 6)])
def test_particle_filter_agrees_with_enumerating_every_labeling(K, pi, symmetric, P):
    x, y, sigma, tau2 = tiny_prompts(K, pi, symmetric, P)
    exact = enumerate_posterior_mean(x, y, pi, sigma, tau2, symmetric)
    mc, se = posterior_mean(x, y, pi, sigma, tau2, symmetric, particles=4096, replicates=8, seed=1)
    # each prediction within its own Monte Carlo error (and a floor for the exact k = 0, 1)
    assert (np.abs(mc - exact) <= 5 * se + 1e-3 * np.sqrt((exact**2).mean())).all()
    # the reference's MSE, what ratios divide by, to 1e-3 relative
    mse_mc, mse_exact = ((mc - y) ** 2).mean(), ((exact - y) ** 2).mean()
    assert abs(mse_mc / mse_exact - 1) < 1e-3
    # y's last column (the query) is never read
    y2 = y.copy()
    y2[:, -1] = 1e6
    np.testing.assert_array_equal(posterior_mean(x, y2, pi, sigma, tau2, symmetric, particles=64, replicates=2)[0],
                                  posterior_mean(x, y, pi, sigma, tau2, symmetric, particles=64, replicates=2)[0])


def test_enumeration_at_k_zero_and_with_one_component_is_ridge():
    """Independent closed forms: k = 0 predicts 0 (the prior mean); with K = 1 the posterior mean
    is ridge regression with penalty sigma^2 / tau^2."""
    x, y, sigma, tau2 = tiny_prompts(1, [1.0], False, 6)
    exact = enumerate_posterior_mean(x, y, [1.0], sigma, tau2)
    assert np.all(exact[:, 0] == 0)
    for i in range(1, 6):
        X, t = x[:, :i], y[:, :i]
        A = np.einsum("nkd,nke->nde", X, X) + sigma**2 / tau2 * np.eye(2)
        w = np.linalg.solve(A, np.einsum("nkd,nk->nd", X, t)[..., None])[..., 0]
        np.testing.assert_allclose(exact[:, i], np.einsum("nd,nd->n", x[:, i], w), rtol=1e-10)
    mc, _ = posterior_mean(x, y, [1.0], sigma, tau2, particles=2, replicates=2)  # no labels to sample
    np.testing.assert_allclose(mc, exact, rtol=1e-10, atol=1e-12)


def sample_spec(**kw):
    return make_spec({"family": "sample", "prior": "gaussian", "d": 4, "K": 2, "n": 16, "B": 400, "n_test": 600,
                      "snr": 4.0, **kw})


@pytest.mark.parametrize("kw", [{}, {"symmetric": True}, {"K": 3, "pi": [0.6, 0.3, 0.1]}])
def test_no_solver_beats_the_bayes_reference(kw):
    """Every registered solver of the family, on fresh prompts of its law: its mean squared error
    over k = 1..n, paired over prompts with the reference's, is never lower by 3 standard
    errors; the known-beta bound is (it knows what no learner can)."""
    ds = make_dataset(sample_spec(**kw))
    y = hide_query(ds.test.y)
    registry = load_registry()
    errors = {}
    for name, entry in registry.items():
        if not entry.cls.applies_to("sample") or name == "transformer":
            continue
        [solver] = instantiate(registry, parse_solver_arg(name))
        solver.set_context(seed=0).fit(ds.train, ds.truth if solver.requires_truth else None)
        errors[name] = ((solver.predict(ds.test.x, y) - ds.test.y)[:, 1:] ** 2).mean(axis=1)
    ref = errors.pop("sample_bayes")
    for name, err in errors.items():
        diff = err - ref
        if not diff.any():  # symmetric with uniform pi: both predict 0 everywhere
            continue
        z = diff.mean() / (diff.std(ddof=1) / np.sqrt(len(diff)))
        if name == "known_beta":
            assert z < -3, (kw, z)
        else:
            assert z > -3, (name, kw, diff.mean(), z)


def test_bayes_is_the_known_beta_predictor_for_fixed_components():
    ds = make_dataset(sample_spec(components="fixed", n_test=50))
    [bayes] = instantiate(load_registry(), parse_solver_arg("sample_bayes"))
    pred = bayes.set_context(seed=0).fit(ds.train, ds.truth).predict(ds.test.x, hide_query(ds.test.y))
    np.testing.assert_allclose(pred, np.einsum("nkd,nd->nk", ds.test.x.astype(float), ds.test.coef))
    assert bayes.info()["mc_variance_share_max"] == 0


def test_sphere_law_has_no_bayes_reference():
    [bayes] = instantiate(load_registry(), parse_solver_arg("sample_bayes"))
    reason = bayes.skip_reason(make_spec({"family": "sample", "d": 4, "K": 2, "n": 8, "B": 10}), "cpu")
    assert "prior = 'sphere'" in reason and "gaussian" in reason


def test_gaussian_law_has_the_snr_in_expectation():
    ds = make_dataset(sample_spec(d=6, n_test=4000, snr=3.0, sigma=0.5))
    sq = (ds.test.betas**2).sum(-1).ravel()  # E||beta||^2 = (snr sigma)^2, chi-square spread
    assert abs(sq.mean() - 2.25) < 4 * sq.std() / np.sqrt(sq.size)
    assert sq.std() > 0.3  # not on a sphere


REPORTS = Path(__file__).resolve().parents[1] / "reports"


@pytest.mark.parametrize("suite", ["jin2024", "pathak2023", "subgroups", "quick"])
def test_no_solver_beats_the_reference_in_the_published_runs(suite):
    """Every solver of every published suite, on every spec of the training law, against its
    family's reference, paired over the stored per-prompt scores: none lower by 3 SE. And the
    check can fail: counted as a learner, the known-beta bound beats the sample family's
    reference on every noisy spec but the symmetric ones (with uniform weights both predict 0)."""
    root = REPORTS / suite / "results"
    results, store = current(load_results(root)), Store(root)
    assert below_reference(results, store) == []
    sample = results[(results["family"] == "sample") & (results["sigma"] > 0)]
    if suite == "jin2024":
        specs = set(sample["spec"])
        assert specs and specs == set(sample[(sample["label"] == "sample_bayes") & (sample["status"] == "ok")]["spec"])
        flagged = below_reference(results.assign(solver_group=results["solver_group"].replace("bound", "")), store)
        asymmetric = set(sample[~sample["symmetric"].astype(bool)]["spec"])
        assert {b["spec"] for b in flagged if b["label"] == "known_beta"} == asymmetric
