"""The sample-level family (Jin et al. 2024): generator, oracle, in-context EM, LSA."""
import numpy as np
import pytest
import torch

import mrbench
from mrbench.data import make_dataset
from mrbench.errors import UserError
from mrbench.families import make_spec
from mrbench.metrics import excess_curve
from mrbench.registry import instantiate, load_registry, parse_solver_arg


def spec(**kw):
    return make_spec({"family": "sample", "d": 5, "K": 2, "n": 20, "B": 500, "n_test": 300, "snr": 5.0, **kw})


def solver(text):
    return instantiate(load_registry(), parse_solver_arg(text))[0]


def test_generator_component_frequencies_norms_and_symmetry():
    ds = make_dataset(spec(K=3, pi=[0.6, 0.3, 0.1], n_test=3000))
    freq = np.bincount(ds.test.z.ravel(), minlength=3) / ds.test.z.size
    np.testing.assert_allclose(freq, [0.6, 0.3, 0.1], atol=0.01)
    sym = make_dataset(spec(symmetric=True, sigma=0.5, snr=4.0, n_test=50))
    np.testing.assert_allclose(sym.test.coef, 0.0, atol=1e-12)  # the oracle is identically 0
    fixed = make_dataset(spec(components="fixed", n_test=50))
    np.testing.assert_allclose(np.linalg.norm(fixed.truth.pool, axis=1), 5.0)
    np.testing.assert_allclose(fixed.test.coef, np.broadcast_to(fixed.truth.pool.mean(0), (50, 5)))
    # the oracle's coefficient is the regression function E[y x] = sum_k pi_k beta_k (E[x x^T] = I),
    # estimated from the samples themselves, not from the generator's formula
    weighted = make_dataset(spec(K=3, pi=[0.6, 0.3, 0.1], components="fixed", n_test=3000))
    yx = (weighted.test.y[..., None] * weighted.test.x).reshape(-1, 5)
    se = yx.std(0) / np.sqrt(len(yx))
    assert (np.abs(yx.mean(0) - weighted.test.coef[0]) < 4 * se).all()
    assert np.abs(yx.mean(0) - weighted.truth.pool.mean(0)).max() > 10 * se.max()  # pi matters here
    # y is <beta_z, x> + sigma noise: the residual of the oracle has the right size
    ds = make_dataset(spec(sigma=0.7, snr=1e-6, n_test=2000))  # beta ~ 0: residual is the noise
    assert ds.test.y.std() == pytest.approx(0.7, rel=0.03)


@pytest.mark.parametrize("bad,match", [
    (dict(sigma=0.0), "sigma"), (dict(K=3, symmetric=True), "symmetric"), (dict(snr=-1.0), "snr"),
    (dict(pi=[0.5, 0.6]), "sum to 1"), (dict(pi=[1.0]), "pi"), (dict(components="mixed"), "components"),
])
def test_sample_spec_validation(bad, match):
    with pytest.raises(UserError, match=match):
        spec(**bad)
    with pytest.raises(UserError, match="family 'sample' only"):
        make_spec({"snr": 2.0})


def test_oracle_has_zero_excess_and_prompt_solvers_skip(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text("[suite]\nname='j'\n[defaults]\nfamily='sample'\nprior='gaussian'\nd=4\nK=2\nn=12\nB=300\n"
                     "n_test=100\n"
                     "[sections.a]\ngrid={symmetric=[true,false],n=[8,12]}\n")
    frame = mrbench.run(suite=str(suite), solvers="all,posterior_mean", out=tmp_path / "r", progress=False,
                        report=False)
    cells = frame.drop_duplicates("cell_key")
    assert set(cells.solver) >= {"sample_bayes", "known_beta", "icl_em", "icl_gradient_em", "lsa", "ols", "ridge"}
    assert not {"argmin", "em", "altmin", "kong2020"} & set(cells.solver)  # 'all' keeps to the family
    named = cells[cells.solver == "posterior_mean"]  # named explicitly: recorded, not dropped
    assert (named.status == "not_applicable").all() and named.error.str.contains("family prompt").all()
    assert (cells[~cells.solver.isin(["posterior_mean", "transformer"])].status == "ok").all()
    assert (cells[cells.solver == "transformer"].status == "skipped").all()  # no checkpoint, over its CPU budget
    bound = frame[frame.solver == "known_beta"]
    assert (bound.excess_mse == 0).all()  # the excess is measured against the known-beta bound
    assert frame[frame.status == "ok"].excess_mse.notna().all()
    again = mrbench.run(suite=str(suite), solvers="all,posterior_mean", out=tmp_path / "r", dry_run=True, echo=str)
    assert again[again.solver != "transformer"].stored.all()  # not-applicable cells are final
    from mrbench.report import build

    context, _ = build(tmp_path / "r")  # the sample-level panel: excess MSE against n, per symmetry
    [panel] = context["sample"]
    assert panel.id == "sample-a-k_max" and {t.get_text() for t in panel.fig.axes[0].get_legend().get_texts()} >= {
        "icl_em, symmetric=True", "icl_em, symmetric=False", "ols, symmetric=False"}


def test_icl_em_approaches_oracle_as_n_grows_at_high_snr():
    ds = make_dataset(spec(n=60, snr=8.0, n_test=400))
    y = ds.test.y.copy()
    y[:, -1] = np.nan
    em = solver("icl_em").set_context(seed=0).fit(ds.train)
    ex, _ = excess_curve(em.predict(ds.test.x, y), ds.test.x, ds.test.coef)
    ols, _ = excess_curve(solver("ols").predict(ds.test.x, y), ds.test.x, ds.test.coef)
    points = [ex[n] for n in (10, 20, 40, 60)]
    assert all(b < a * 1.1 for a, b in zip(points, points[1:])), points  # monotone, with 10% tolerance
    assert points[-1] < 0.5 * points[0]
    assert ex[40:].mean() < ols[40:].mean()  # and beats OLS at high SNR, large n


def test_lsa_gradient_descent_reaches_least_squares_solution():
    ds = make_dataset(spec(K=3, d=3, n=10, B=400, snr=2.0))
    lsa = solver("lsa[steps=3000]").set_context(seed=0).fit(ds.train)
    from mrbench.solvers.lsa import features

    data = ds.train.fixed()
    x, y = torch.from_numpy(data.x.astype(float)), torch.from_numpy(data.y)
    b, q, t = features(x, y)[:, 1:].reshape(-1, 3), x[:, 1:].reshape(-1, 3), y[:, 1:].reshape(-1)
    F = torch.einsum("nd,ne->nde", q, b).reshape(-1, 9).numpy()
    closed = np.linalg.lstsq(F, t.numpy(), rcond=None)[0].reshape(3, 3)
    np.testing.assert_allclose(lsa.gamma_, closed, atol=1e-3)


@pytest.mark.parametrize("text", ["icl_em", "icl_gradient_em", "icl_em[init=random]"])
def test_more_components_than_dimensions(text):
    ds = make_dataset(spec(K=6, d=3, n=8, n_test=20))
    y = ds.test.y.copy()
    y[:, -1] = np.nan
    pred = solver(text).set_context(seed=0).fit(ds.train).predict(ds.test.x, y)
    assert pred.shape == y.shape and np.isfinite(pred).all()


def test_jin_sweeps_have_an_oracle_that_is_not_zero():
    """Over n, B, d and SNR the rates must be visible: the oracle x^T sum pi_k beta_k is not 0."""
    import dataclasses

    from mrbench.data import make_dataset
    from mrbench.suites import load_suite

    suite = load_suite("jin2024")
    for spec in suite.specs:
        if spec.section in ("training_prompts", "dimension", "snr", "iterations", "components") or not spec.symmetric:
            ds = make_dataset(dataclasses.replace(spec, n_test=50))
            assert np.abs(ds.test.coef).max() > 0.1 * spec.snr * spec.sigma, spec.name
    assert any(s.symmetric for s in suite.specs if s.section == "prompt_length")  # the symmetric case is kept


def test_recovery_error_is_up_to_permutation_and_sign():
    from mrbench.metrics import recovery_curve

    rng = np.random.default_rng(0)
    beta = rng.standard_normal((50, 1, 6))
    betas = np.concatenate([beta, -beta], axis=1)  # the symmetric case: beta_2 = -beta_1
    est = np.full((50, 4, 2, 6), np.nan)
    est[:, 1] = betas[:, ::-1]  # swapped (equivalently, every sign flipped): error 0
    delta = np.zeros(6)
    delta[0] = 0.3
    est[:, 2] = betas + delta  # each component off by 0.3
    est[:, 3] = betas[:, ::-1] + delta  # swapped and off by 0.3
    mean, se = recovery_curve(est, betas)
    assert np.isnan(mean[0]) and mean[1] == pytest.approx(0.0, abs=1e-12)
    assert mean[2] == pytest.approx(0.3) and mean[3] == pytest.approx(0.3) and se[2] == pytest.approx(0.0, abs=1e-12)
    three = rng.standard_normal((20, 3, 4))
    est3 = three[:, None, [2, 0, 1]] + 0.1  # a 3-cycle, every coordinate off by 0.1: RMS 0.2
    assert recovery_curve(est3, three)[0][0] == pytest.approx(0.2)


def test_in_context_em_stores_its_recovery_error(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text("""
[suite]
name = "rec"
[defaults]
family = "sample"
d = 4
K = 2
k_max = 30
n_test = 60
snr = 5.0
[sections.a]
solvers = ["icl_em", "ols"]
""")
    frame = mrbench.run(suite=spec, out=tmp_path / "r", progress=False, report=False)
    em = frame[frame["solver"] == "icl_em"].set_index("k")["recovery_error"]
    assert np.isnan(em[0]) and em[30] < 0.6 * em[2] < 0.6 * 5.0  # ||beta|| = 5: better with more pairs
    assert frame[frame["solver"] == "ols"]["recovery_error"].isna().all()
