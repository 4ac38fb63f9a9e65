"""Pool-estimating solvers (em, altmin, kong2020) and the EM core."""
import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

import mrbench
from mrbench.checks import tiny_dataset
from mrbench.metrics import pool_metrics
from mrbench.registry import load_registry
from mrbench.solvers.estimation import Stats, batch_em, sphere

POOL_SOLVERS = ["em", "altmin", "kong2020", "em[init=spectral]"]


def _solver(text):
    from mrbench.registry import instantiate, parse_solver_arg

    return instantiate(load_registry(), parse_solver_arg(text))[0]


@pytest.fixture(scope="module")
def separated():
    # well separated: 3 components in d = 5 (pairwise distance ~ sqrt(10)), 21 pairs a prompt
    return tiny_dataset(d=5, m=3, sigma=0.5, k_max=20, n_train=3000)


@pytest.mark.parametrize("text", POOL_SOLVERS)
@pytest.mark.parametrize("sigma", [0.5, 0.0])
def test_recovers_well_separated_pool(text, sigma):
    ds = tiny_dataset(d=5, m=3, sigma=sigma, k_max=20, n_train=3000)
    solver = _solver(text).set_context(seed=3)
    solver.fit(ds.train)
    info = solver.info()
    got = pool_metrics(ds.truth.pool, info["pool"], sigma)
    assert got["pool_mse"] < 0.01, f"{text}: pool_mse {got['pool_mse']}"
    pred = solver.predict(ds.test.x, np.where(np.arange(21) == 20, np.nan, ds.test.y))
    assert np.isfinite(pred).all()
    assert np.isfinite(info["pi"]).all() and abs(np.sum(info["pi"]) - 1) < 1e-9


@pytest.mark.parametrize("estimate_sigma", [False, True])
def test_em_objective_never_decreases(separated, estimate_sigma):
    data = separated.train.fixed()
    stats = Stats.from_prompts(data.x, data.y)
    rng = np.random.default_rng(0)
    for _ in range(3):
        res = batch_em(stats, sphere(3, 5, rng), rng.dirichlet(np.ones(3)), 0.5, estimate_sigma, tol=1e-8, max_iter=200)
        trace = np.array(res.trace)
        assert (np.diff(trace) >= -1e-9 * np.abs(trace[1:])).all(), np.diff(trace).min()


def test_em_reports_components_left_without_prompts(separated):
    data = separated.train.fixed()
    stats = Stats.from_prompts(data.x, data.y)
    W0 = np.vstack([separated.truth.pool[:2], 100.0 * np.ones(5)])  # a start no prompt fits
    res = batch_em(stats, W0, np.ones(3) / 3, 0.5)
    assert res.empty == 1 and res.pi[2] * stats.n < 1 and np.abs(res.pool[2]).max() < 1e-3
    good = batch_em(stats, separated.truth.pool, np.ones(3) / 3, 0.5)
    assert good.empty == 0


def test_em_step_matches_direct_computation(separated):
    """One iteration on sufficient statistics equals Algorithm 1 written over the raw pairs."""
    data = separated.train.fixed().head(200)
    x, y = data.x.astype(np.float64), data.y
    rng = np.random.default_rng(1)
    W0, pi0, sigma = sphere(3, 5, rng), np.array([0.2, 0.3, 0.5]), 0.7
    res = batch_em(Stats.from_prompts(data.x, data.y), W0, pi0, sigma, tol=-1, max_iter=1, ridge=0.0)
    L = x.shape[1]
    ll = np.array([[np.log(pi0[j]) + sum(-0.5 * math.log(2 * math.pi * sigma**2) - (y[i, l] - x[i, l] @ W0[j]) ** 2 / (2 * sigma**2)
                                         for l in range(L)) for j in range(3)] for i in range(200)])
    gamma = np.exp(ll - logsumexp(ll, axis=1, keepdims=True))
    W = np.stack([np.linalg.solve(sum(gamma[i, j] * x[i].T @ x[i] for i in range(200)),
                                  sum(gamma[i, j] * x[i].T @ y[i] for i in range(200))) for j in range(3)])
    np.testing.assert_allclose(res.pool, W, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(res.pi, gamma.mean(0), rtol=1e-10)
    assert res.trace[0] == pytest.approx(logsumexp(ll, axis=1).sum(), rel=1e-10)


def test_stats_residuals_match_direct(separated):
    data = separated.train.fixed().head(50)
    W = sphere(3, 5, np.random.default_rng(2))
    r = Stats.from_prompts(data.x, data.y).residuals(torch.from_numpy(W)).numpy()
    direct = ((np.einsum("nld,md->nlm", data.x.astype(float), W) - data.y[..., None]) ** 2).sum(1)
    np.testing.assert_allclose(r, direct, rtol=1e-9)


def test_runner_stores_pool_metrics(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text("[suite]\nname='s'\n[defaults]\nd=5\nm=3\nk_max=20\nn_test=200\nn_train=2000\n"
                     "[sections.a]\ngrid={sigma=[0.0, 0.5]}\n")
    frame = mrbench.run(suite=str(suite), solvers="em,kong2020,posterior_mean,ols", out=tmp_path / "r", progress=False)
    assert (frame.status == "ok").all()
    est = frame[frame.solver.isin(["em", "kong2020"])]
    assert est.pool_mse.notna().all() and (est.pool_mse < 0.01).all()
    assert est.pool_oracle_nmse.notna().all() and est.pi_error.notna().all()
    em = frame[frame.solver == "em"]
    assert em.iterations.notna().all() and em.converged.all()
    others = frame[frame.solver.isin(["posterior_mean", "ols"])]
    assert others[["pool_mse", "pool_oracle_nmse", "pi_error", "iterations"]].isna().all().all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("text", ["em", "altmin", "kong2020"])
def test_pool_estimators_on_cuda_match_the_cpu(separated, text):
    """float64 on both devices: the same iterations, the same pool up to round-off."""
    fitted = {}
    for device in ("cpu", "cuda"):
        solver = _solver(text).set_context(seed=3, device=device)
        fitted[device] = solver.fit(separated.train).info()
    np.testing.assert_allclose(fitted["cuda"]["pool"], fitted["cpu"]["pool"], atol=1e-8)
    assert fitted["cuda"].get("iterations") == fitted["cpu"].get("iterations")
