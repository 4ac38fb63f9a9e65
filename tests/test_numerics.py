"""Predictors and baselines against independent float64 computations."""
import numpy as np
import pytest
from scipy.special import logsumexp

from mrbench.checks import tiny_dataset
from mrbench.metrics import nmse_average, nmse_curve, pool_metrics
from mrbench.predictors import argmin, posterior_mean
from mrbench.solvers.least_squares import OLS, Ridge


def _reference_posterior(x, y, pool, sigma, pi):
    """Loop-by-loop posterior mean, written from display (4) of Pathak et al."""
    n, P, _ = x.shape
    out = np.zeros((n, P))
    for a in range(n):
        for i in range(P):
            logw = np.array([np.log(pi[j]) - sum((pool[j] @ x[a, l] - y[a, l]) ** 2 for l in range(i)) / (2 * sigma**2)
                             for j in range(len(pool))])
            p = np.exp(logw - logsumexp(logw))
            out[a, i] = (p @ pool) @ x[a, i]
    return out


@pytest.mark.parametrize("sigma", [1.0, 0.3, 5.0])
def test_posterior_mean_matches_reference(sigma):
    ds = tiny_dataset(sigma=sigma, n_test=6)
    x, y = ds.test.x.astype(np.float64), ds.test.y
    pi = np.array([0.5, 0.3, 0.2])
    got = posterior_mean(x, y, ds.truth.pool, sigma, pi)
    np.testing.assert_allclose(got, _reference_posterior(x, y, ds.truth.pool, sigma, pi), rtol=1e-12, atol=1e-12)


def test_posterior_mean_k0_is_prior_mean_and_survives_huge_residuals():
    ds = tiny_dataset(sigma=0.01, n_test=8)  # residual sums / 2 sigma^2 reach ~1e5: exp underflows
    pred = posterior_mean(ds.test.x, ds.test.y, ds.truth.pool, 0.01, ds.truth.pi)
    assert np.isfinite(pred).all()
    np.testing.assert_allclose(pred[:, 0], ds.test.x[:, 0].astype(float) @ ds.truth.pool.mean(0), rtol=1e-12)
    # With tiny noise the posterior concentrates on the true component after a few pairs.
    true_pred = np.einsum("nkd,nd->nk", ds.test.x.astype(float), ds.truth.pool[ds.test.z])
    np.testing.assert_allclose(pred[:, 3:], true_pred[:, 3:], atol=1e-6)


def test_sigma_zero_is_argmin_with_ties_averaged():
    ds = tiny_dataset(sigma=0.0, n_test=10)
    x, y, pool = ds.test.x, ds.test.y, ds.truth.pool
    pred = posterior_mean(x, y, pool, 0.0)
    # display (7) written out: the component with the least prefix residual sum, ties averaged
    ref = np.zeros(y.shape)
    for a in range(len(x)):
        for i in range(y.shape[1]):
            R = np.array([sum((w @ x[a, l] - y[a, l]) ** 2 for l in range(i)) for w in pool.astype(float)])
            ref[a, i] = pool[R <= R.min() + 1e-12].mean(0) @ x[a, i]
    np.testing.assert_allclose(argmin(x, y, pool), ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(pred, ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(pred[:, 0], x[:, 0].astype(float) @ pool.mean(0), rtol=1e-12)  # k = 0: all tie
    exact = np.einsum("nkd,nd->nk", x.astype(float), pool[ds.test.z])
    np.testing.assert_allclose(pred[:, 1:], exact[:, 1:], rtol=1e-10, atol=1e-10)
    # and the sigma -> 0 limit of the posterior mean agrees
    np.testing.assert_allclose(posterior_mean(x, y, pool, 1e-4)[:, 1:], pred[:, 1:], atol=1e-8)


def test_sigma_zero_ties_follow_pi_as_the_small_sigma_limit():
    ds = tiny_dataset(sigma=0.0, n_test=10)
    x, y, pool, pi = ds.test.x.astype(float), ds.test.y, ds.truth.pool, np.array([0.8, 0.15, 0.05])
    pred = posterior_mean(x, y, pool, 0.0, pi)
    np.testing.assert_allclose(pred[:, 0], x[:, 0] @ (pi @ pool), rtol=1e-12)  # k = 0: the prior mean
    np.testing.assert_allclose(posterior_mean(x, y, pool, 1e-4, pi), pred, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(posterior_mean(x, y, pool, 1e-170, pi), pred)  # sigma^2 underflows to 0
    # a component of prior weight 0 is never chosen, even where it fits best
    exact = np.einsum("nkd,nd->nk", x, pool[ds.test.z])
    without = np.array([0.0, 0.5, 0.5]) if (ds.test.z == 0).any() else np.array([0.5, 0.0, 0.5])
    got = posterior_mean(x, y, pool, 0.0, without)
    assert np.isfinite(got).all()
    gone = ds.test.z == np.flatnonzero(without == 0)[0]
    assert not np.allclose(got[gone, 1:], exact[gone, 1:])
    np.testing.assert_allclose(got[~gone, 1:], exact[~gone, 1:], atol=1e-10)


def test_ols_matches_lstsq_and_ridge_matches_solve():
    ds = tiny_dataset(n_test=5, k_max=10)
    x, y = ds.test.x.astype(np.float64), ds.test.y
    ols, ridge = OLS().predict(ds.test.x, y), Ridge(lam=0.7).predict(ds.test.x, y)
    for a in range(5):
        for i in range(1, 11):
            X, Y = x[a, :i], y[a, :i]
            w = np.linalg.lstsq(X, Y, rcond=None)[0]
            assert ols[a, i] == pytest.approx(w @ x[a, i], rel=1e-8, abs=1e-9)
            wr = np.linalg.solve(X.T @ X + 0.7 * np.eye(4), X.T @ Y)
            assert ridge[a, i] == pytest.approx(wr @ x[a, i], rel=1e-10, abs=1e-12)
    assert (ols[:, 0] == 0).all() and (ridge[:, 0] == 0).all()


def test_nmse_and_average():
    rng = np.random.default_rng(0)
    y, pred = rng.normal(size=(50, 5)), rng.normal(size=(50, 5))
    nmse, se = nmse_curve(pred, y, d=4)
    np.testing.assert_allclose(nmse, ((pred - y) ** 2).mean(0) / 4)
    np.testing.assert_allclose(se, ((pred - y) ** 2 / 4).std(0, ddof=1) / np.sqrt(50))
    avg, avg_se = nmse_average(pred, y, d=4)
    assert avg == pytest.approx(nmse[1:].mean())


def test_pool_metrics_match_brute_force():
    rng = np.random.default_rng(1)
    true = rng.normal(size=(4, 3))
    perm = [2, 0, 3, 1]
    est = true[perm] + 0.01 * rng.normal(size=(4, 3))
    got = pool_metrics(true, est, sigma=1.0, true_pi=np.full(4, 0.25), est_pi=np.array([0.1, 0.2, 0.3, 0.4]))
    import itertools
    best = min(sum(((true[i] - est[p[i]]) ** 2).sum() for i in range(4)) for p in itertools.permutations(range(4))) / 4
    assert got["pool_mse"] == pytest.approx(best)
    nearest = np.mean([min(((t - e) ** 2).sum() for e in est) for t in true])
    assert got["pool_oracle_nmse"] == pytest.approx((1.0 + nearest) / 3)
    # matched: true j <- est perm^-1; est_pi of the match of true i is est_pi[perm.index(i)]
    matched = np.array([0.1, 0.2, 0.3, 0.4])[[perm.index(i) for i in range(4)]]
    assert got["pi_error"] == pytest.approx(0.5 * np.abs(matched - 0.25).sum())


def test_ols_min_norm_on_rank_deficient_prompts():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((12, 10, 4)).astype(np.float32)
    x[:4, :, 1] = x[:4, :, 0]  # duplicated covariate
    x[4:8, :, 3] = 0  # a dead covariate
    y = rng.standard_normal((12, 10))
    pred = OLS().predict(x, y)
    for a in range(12):
        for i in range(1, 10):
            w = np.linalg.lstsq(x[a, :i].astype(np.float64), y[a, :i], rcond=None)[0]
            assert pred[a, i] == pytest.approx(w @ x[a, i], rel=1e-8, abs=1e-9)


def test_ridge_needs_a_positive_lambda():
    """Checked where a run is planned (the registry builds every solver through check_params)."""
    from mrbench.errors import UserError
    from mrbench.registry import instantiate, load_registry, parse_solver_arg

    with pytest.raises(ValueError, match="lam > 0"):
        Ridge(lam=0).check_params()
    with pytest.raises(UserError, match="lam > 0"):
        instantiate(load_registry(), parse_solver_arg("ridge[lam=0]"))
