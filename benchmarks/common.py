"""Shared helpers: the registry split into benchmark groups, data, and scoring."""

from mrbench.data import make_dataset
from mrbench.metrics import nmse_average
from mrbench.predictors import oracle_predictions
from mrbench.registry import load_registry
from mrbench.specs import make_spec

REGISTRY = {name: e.cls for name, e in load_registry().items() if e.available}
SEPARATE = {"transformer"}  # its training is a GPU job: bench_transformer.py times it apart
# Every other registered solver lands in one of these groups, so a new solver is benchmarked.
FAMILY = {name: cls.families[0] for name, cls in REGISTRY.items()}
PER_PROMPT = sorted(n for n, c in REGISTRY.items() if not c.trained and n not in SEPARATE)
TRAINED = sorted(n for n, c in REGISTRY.items() if c.trained and n not in SEPARATE)


def dataset(m, k, n_train=2000, n_test=500, sigma=1.0, family="prompt"):
    """Prompt family at d = 20; sample family at d = 10, SNR 5, with a fifth of the test prompts
    (its in-context EM reruns at every prefix and would dominate the suite's time)."""
    if family == "sample":
        extra, n_test = {"family": "sample", "d": 10, "snr": 5.0}, max(2, n_test // 5)
    else:
        extra = {"d": 20}
    return make_dataset(make_spec(dict(m=m, sigma=sigma, k_max=k, n_train=n_train, n_test=n_test, **extra)))


def nmse_ratio(pred, ds):
    """Mean NMSE over k = 1..k_max, as a ratio to the family's oracle's."""
    ref = oracle_predictions(ds)
    return nmse_average(pred, ds.test.y, ds.spec.d)[0] / nmse_average(ref, ds.test.y, ds.spec.d)[0]


def fitted(name, ds, device="cpu"):
    solver = REGISTRY[name]().set_context(seed=0, device=device)
    return solver.fit(ds.train, ds.truth if solver.requires_truth else None)
