
import numpy as np
import pytest

from mrbench.data import CHUNK, make_dataset
from mrbench.families import make_spec
from mrbench.prompts import make_pool


def spec(**kw):
    return make_spec({"d": 5, "m": 3, "k_max": 6, "n_test": 50, "n_train": 40, **kw})


def test_same_spec_same_bits():
    a, b = make_dataset(spec()), make_dataset(spec())
    for f in ("x", "y", "z"):
        assert getattr(a.test, f).tobytes() == getattr(b.test, f).tobytes()
    for f in ("x", "y"):
        assert getattr(a.train.fixed(), f).tobytes() == getattr(b.train.fixed(), f).tobytes()
    assert a.train.fixed().z is None  # solvers learn from x and y only


def test_pool_depends_on_d_m_pool_seed_only_and_lies_on_sphere():
    pool = make_pool(20, 5, 3)
    np.testing.assert_allclose(np.linalg.norm(pool, axis=1), np.sqrt(20), rtol=1e-14)
    for other in (dict(seed=9, n_train=1000), dict(sigma=0.0), dict(shift_kind="weight_scale", shift_value=2.0)):
        ds = make_dataset(spec(d=20, m=5, pool_seed=3, **other))
        np.testing.assert_array_equal(ds.truth.pool, pool)
    assert not np.array_equal(make_pool(20, 5, 4), pool)


def test_noiseless_labels_are_exact_and_noise_has_sigma():
    ds = make_dataset(spec(sigma=0.0))
    exact = np.einsum("nkd,nd->nk", ds.test.x.astype(np.float64), ds.truth.pool[ds.test.z])
    np.testing.assert_allclose(ds.test.y, exact, rtol=0, atol=1e-12)
    noisy = make_dataset(spec(sigma=2.0, n_test=4000))
    resid = noisy.test.y - np.einsum("nkd,nd->nk", noisy.test.x.astype(np.float64), noisy.truth.pool[noisy.test.z])
    assert resid.std() == pytest.approx(2.0, rel=0.02)


def test_training_sets_are_nested_and_test_independent_of_train_size():
    small, big = make_dataset(spec(n_train=CHUNK + 7)), make_dataset(spec(n_train=3 * CHUNK))
    np.testing.assert_array_equal(small.train.fixed().x, big.train.fixed().x[: CHUNK + 7])
    np.testing.assert_array_equal(small.test.x, big.test.x)
    assert not np.array_equal(small.test.x[:5], small.train.fixed().x[:5])


def test_components_uniform():
    ds = make_dataset(spec(m=4, n_test=20000))
    freq = np.bincount(ds.test.z, minlength=4) / 20000
    np.testing.assert_allclose(freq, 0.25, atol=0.015)


@pytest.mark.parametrize("kind,value", [("covariate_scale", 2.0), ("weight_scale", 0.5), ("weight_shift", 1.0)])
def test_shifts_apply_to_test_only(kind, value):
    base, shifted = make_dataset(spec(sigma=0.0)), make_dataset(spec(sigma=0.0, shift_kind=kind, shift_value=value))
    np.testing.assert_array_equal(base.train.fixed().x, shifted.train.fixed().x)
    np.testing.assert_array_equal(base.train.fixed().y, shifted.train.fixed().y)
    np.testing.assert_array_equal(base.truth.pool, shifted.truth.pool)  # oracles keep the unshifted pool
    pool = base.truth.pool
    x = base.test.x.astype(np.float64)
    if kind == "covariate_scale":
        np.testing.assert_allclose(shifted.test.x, base.test.x * 2.0)
        np.testing.assert_allclose(shifted.test.y, 2.0 * base.test.y, rtol=1e-6, atol=1e-6)
    elif kind == "weight_scale":
        np.testing.assert_allclose(shifted.test.y, 0.5 * base.test.y, rtol=1e-12, atol=1e-12)
    else:
        w = pool + 1.0 / np.sqrt(5)
        np.testing.assert_allclose(shifted.test.y, np.einsum("nkd,nd->nk", x, w[base.test.z]), atol=1e-12)


def test_stream_draws_fresh_prompts_and_fixed_default():
    ds = make_dataset(spec(n_train=None))
    assert ds.train.streaming and len(ds.train.fixed()) == 15000
    a = ds.train.fresh(8, np.random.default_rng(0))
    b = ds.train.fresh(8, np.random.default_rng(1))
    assert a.x.shape == (8, 7, 5) and not np.array_equal(a.x, b.x)
    with pytest.raises(RuntimeError):
        make_dataset(spec()).train.fresh(8, np.random.default_rng(0))


def _digest(*arrays) -> str:
    import hashlib

    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()[:12]


@pytest.mark.parametrize("fields, digest", [
    (dict(m=5, n_test=300, n_train=200), "64abe3d94a51"),
    (dict(m=20, sigma=0.0, n_test=300, shift_kind="covariate_scale", shift_value=2.0), "32bdd90cc5a6"),
    (dict(m=5, n_test=100, shift_kind="weight_shift", shift_value=0.5, pi=[0.1, 0.2, 0.3, 0.2, 0.2]), "b16f8a38644c"),
    (dict(family="sample", m=2, d=5, snr=3.0, n_test=200, symmetric=True, n_train=100), "83a206f39827"),
    (dict(family="sample", m=3, d=5, snr=2.0, n_test=200, components="fixed"), "970d19cf8a5e"),
])
def test_test_prompts_keep_their_bits(fields, digest):
    """The test prompts of these specs as first drawn (before the data families moved into
    modules of their own): a change of generator shows here, not as a silent shift of results."""
    ds = make_dataset(make_spec(fields))
    assert _digest(ds.test.x, ds.test.y) == digest
