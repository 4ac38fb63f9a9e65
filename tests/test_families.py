"""Data families: the registry, the torch sampler against the numpy generator (the same law),
and the third family (components with their own input covariances) and its oracle."""
import dataclasses

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal, norm

from mrbench.data import make_dataset, train_data
from mrbench.errors import UserError
from mrbench.families import families, get, make_spec
from mrbench.families.subgroup import input_scales
from mrbench.metrics import nmse_curve
from mrbench.predictors import posterior_mean
from mrbench.prompts import Prompts, hide_query
from mrbench.registry import load_registry

LAW = {"prompt": {}, "sample": {"snr": 2.0, "m": 3}, "sample:gaussian": {"snr": 2.0, "m": 3, "prior": "gaussian"},
       "subgroup": {"x_spread": 1.0}}


def test_every_family_is_registered_with_an_oracle_solver():
    registry = load_registry()
    assert {"prompt", "sample", "subgroup"} <= set(families())
    for family in families().values():
        assert registry[family.oracle].cls.requires_truth, family.name


def test_unknown_family_and_foreign_fields_are_named():
    with pytest.raises(UserError, match="must be one of prompt, sample, subgroup"):
        make_spec({"family": "nope"})
    with pytest.raises(UserError, match="'x_spread'.*applies to family 'subgroup' only"):
        make_spec({"x_spread": 2.0})
    with pytest.raises(UserError, match="'x_spread' = -1.0.*>= 0"):
        make_spec({"family": "subgroup", "x_spread": -1.0})
    with pytest.raises(UserError, match="shifts apply to family 'prompt' only"):
        make_spec({"family": "subgroup", "shift_kind": "covariate_scale", "shift_value": 2.0})


@pytest.mark.parametrize("name", sorted(LAW))
def test_torch_sampler_draws_the_generators_law(name):
    """Moments of 40000 prompts of 4 pairs from each source agree within 5 standard errors:
    E y^2, E y^4 (the mixture's tails), E x^2 per coordinate, and E[y_0 y_1 <x_0, x_1>] (how
    two pairs of one prompt share their coefficients); and for families whose oracle needs no
    per-prompt coefficients, the oracle's NMSE curve on the sampler's prompts."""
    spec = make_spec({"family": name.split(":")[0], "d": 6, "m": 4, "k_max": 3, "n_test": 2, "n_train": None,
                      **LAW[name]})
    name = spec.family
    train = train_data(spec)
    n, P = 40000, 4
    a = train.fresh(n, np.random.default_rng(0), P)
    x, y = get(name).sampler(spec, train._pool, "cpu", torch.Generator().manual_seed(0))(n, P)
    b = Prompts(x.numpy(), y.numpy().astype(np.float64), None)

    def stats(p):
        x64 = p.x.astype(np.float64)
        return {"y2": p.y**2, "y4": p.y**4, "x2": (x64**2).mean(axis=(1, 2)),
                "share": p.y[:, 0] * p.y[:, 1] * np.einsum("nd,nd->n", x64[:, 0], x64[:, 1])}

    for key, (u, v) in {k: (stats(a)[k], stats(b)[k]) for k in stats(a)}.items():
        se = np.sqrt(u.var() / u.size + v.var() / v.size)
        assert abs(u.mean() - v.mean()) < 5 * se, (name, key, u.mean(), v.mean(), se)
    ds = make_dataset(spec)
    if ds.truth.test_coef is None:
        curves = []
        for p in (a, b):
            test = dataclasses.replace(ds, test=Prompts(p.x[:5000], p.y[:5000], None))
            curves.append(nmse_curve(get(name).oracle_predictions(test), p.y[:5000], spec.d))
        (ca, sa), (cb, sb) = curves
        assert np.all(np.abs(ca - cb) < 5 * np.hypot(sa, sb)), (name, ca, cb)


def _brute_force(x, y, pool, scales, sigma, pi):
    """Posterior mean by direct densities (scipy), one prompt and position at a time."""
    n, P, d = x.shape
    out = np.zeros((n, P))
    for p in range(n):
        for i in range(P):
            logw = np.log(pi).copy()
            for j in range(len(pool)):
                logw[j] += multivariate_normal(np.zeros(d), np.diag(scales[j])).logpdf(x[p, : i + 1]).sum()
                logw[j] += norm(x[p, :i] @ pool[j], sigma).logpdf(y[p, :i]).sum() if i else 0.0
            w = np.exp(logw - logw.max())
            out[p, i] = (w / w.sum()) @ (pool @ x[p, i])
    return out


def test_subgroup_oracle_matches_brute_force_densities():
    spec = make_spec({"family": "subgroup", "d": 4, "m": 3, "k_max": 6, "n_test": 12, "sigma": 0.7,
                      "x_spread": 1.5, "pi": [0.5, 0.3, 0.2]})
    ds = make_dataset(spec)
    fast = get("subgroup").oracle_predictions(ds)
    slow = _brute_force(ds.test.x.astype(np.float64), ds.test.y, ds.truth.pool, ds.truth.extra["scales"],
                        spec.sigma, ds.truth.pi)
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9)


def test_subgroup_at_zero_spread_is_the_prompt_family():
    base = {"d": 5, "m": 4, "k_max": 10, "n_test": 200, "n_train": 300}
    sub = make_dataset(make_spec({"family": "subgroup", "x_spread": 0.0, **base}))
    prompt = make_dataset(make_spec(base))
    assert np.array_equal(sub.test.x, prompt.test.x) and np.array_equal(sub.test.y, prompt.test.y)
    assert np.array_equal(sub.train.fixed().x, prompt.train.fixed().x)
    np.testing.assert_allclose(get("subgroup").oracle_predictions(sub), get("prompt").oracle_predictions(prompt),
                               rtol=1e-12, atol=1e-12)


def test_subgroup_inputs_follow_their_components_covariance():
    spec = make_spec({"family": "subgroup", "d": 6, "m": 3, "k_max": 49, "n_test": 3000, "x_spread": 1.0})
    ds = make_dataset(spec)
    scales = input_scales(6, 3, 0, 1.0)
    np.testing.assert_allclose(scales.mean(axis=1), 1.0)
    for j in range(3):
        var = (ds.test.x[ds.test.z == j].astype(np.float64) ** 2).mean(axis=(0, 1))
        np.testing.assert_allclose(var, scales[j], rtol=0.05)


def test_subgroup_oracle_beats_the_pool_only_posterior_and_nothing_beats_it():
    """The inputs identify the component: from few pairs on, knowing the covariances helps.
    OLS, which ignores the mixture, never beats the oracle beyond sampling error."""
    from mrbench.solvers.least_squares import OLS

    ds = make_dataset(make_spec({"family": "subgroup", "d": 10, "m": 5, "k_max": 20, "n_test": 2000, "x_spread": 1.0}))
    y = hide_query(ds.test.y)
    oracle = nmse_curve(get("subgroup").oracle_predictions(ds), ds.test.y, 10)[0]
    pool_only = nmse_curve(posterior_mean(ds.test.x, y, ds.truth.pool, 1.0, ds.truth.pi), ds.test.y, 10)[0]
    assert oracle[1:6].mean() < 0.8 * pool_only[1:6].mean()
    ols, se = nmse_curve(OLS().predict(ds.test.x, y), ds.test.y, 10)
    assert np.all(ols[1:] > oracle[1:] - 3 * se[1:])


def test_subgroup_suite_runs_the_solvers_that_apply(tmp_path):
    from mrbench.runner import plan

    cells, suite = plan("subgroups", solvers="all")
    labels = {c.solver.label() for c in cells}
    assert {"subgroup_oracle", "ols", "em", "kong2020", "transformer"} <= labels  # em: a prompt family solver
    assert not labels & {"posterior_mean", "sample_bayes", "known_beta", "icl_em"}  # the prompt family's oracle, sample-only
    assert [s.x_spread for s in suite.specs] == [0.0, 0.5, 1.0]


def test_a_plugin_file_adds_a_data_family(cli, tmp_path):
    """A Family subclass in a --plugin file is registered like a solver: a suite can use it,
    its field becomes a result column."""
    plugin = tmp_path / "echo.py"
    plugin.write_text('''
from mrbench.families.prompt import PromptFamily

class Echo(PromptFamily):
    name = "echo"
    description = "the prompt family under another name, with a field of its own"
    fields = {"gain": 1.0}
''')
    suite = tmp_path / "echo.toml"
    suite.write_text('[suite]\nname = "echo"\n[defaults]\nfamily = "echo"\nd = 4\nm = 3\nk_max = 8\n'
                     'n_test = 50\ngain = 2.0\n[sections.one]\nsolvers = ["ols"]\n')
    code, out, err = cli("run", "--plugin", plugin, "--suite", suite, "--out", tmp_path / "res", "--quiet")
    assert code == 0, err
    import pandas as pd

    rows = pd.read_parquet(tmp_path / "res")
    assert set(rows["family"]) == {"echo"} and set(rows["gain"]) == {2.0} and set(rows["status"]) == {"ok"}


def test_a_family_adds_a_score_column_from_one_file(cli, tmp_path):
    """A family's declared score columns reach the store, with their values; a column it
    returns without declaring it fails the cell, naming the column, and the run goes on."""
    plugin = tmp_path / "scored.py"
    plugin.write_text('''
import numpy as np
from mrbench.families.prompt import PromptFamily

class Scored(PromptFamily):
    name = "scored"
    scores = {"abs_err": float, "abs_err_se": float}

    def curve_scores(self, ds, pred):
        err = np.abs(pred - ds.test.y)
        return {"abs_err": err.mean(0), "abs_err_se": err.std(0, ddof=1) / np.sqrt(len(err))}

class Leaky(PromptFamily):
    name = "leaky"

    def curve_scores(self, ds, pred):
        return {"undeclared_err": np.abs(pred - ds.test.y).mean(0)}
''')
    suite = tmp_path / "scored.toml"
    suite.write_text('[suite]\nname = "scored"\n[defaults]\nd = 4\nm = 3\nk_max = 8\nn_test = 50\n'
                     '[sections.one]\nfamily = "scored"\nsolvers = ["ols", "ridge"]\n'
                     '[sections.two]\nfamily = "leaky"\nsolvers = ["ols"]\n')
    code, out, err = cli("run", "--plugin", plugin, "--suite", suite, "--out", tmp_path / "res", "--quiet",
                         "--save-predictions")
    assert code == 1, err  # the leaky cell failed
    import pandas as pd

    from mrbench.store import Store

    rows = pd.read_parquet(tmp_path / "res")
    scored = rows[rows["family"] == "scored"]
    assert set(scored["status"]) == {"ok"} and len(scored) == 2 * 9
    cell = scored[scored["solver"] == "ridge"]
    pred = Store(tmp_path / "res").predictions(cell["cell_key"].iloc[0])
    from mrbench.data import make_dataset
    from mrbench.families import make_spec

    # the plugin stays out of this process (its columns would enter every later schema): its
    # prompts are the prompt family's, drawn from the same seeds
    ds = make_dataset(make_spec(dict(family="prompt", d=4, m=3, k_max=8, n_test=50)))
    # the stored predictions are float32: the score was computed from the float64 ones
    np.testing.assert_allclose(cell.sort_values("k")["abs_err"], np.abs(pred - ds.test.y).mean(0), rtol=1e-6)
    (leaky,) = rows[rows["family"] == "leaky"].itertuples()
    assert leaky.status == "failed" and "undeclared_err" in leaky.error and "undeclared_err" not in rows
