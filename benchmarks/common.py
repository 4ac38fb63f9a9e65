"""Shared helpers: the registry split into benchmark groups, data, and scoring.

MRBENCH_BENCH_SCALE (default 1) scales every benchmark dataset's prompt counts: the test suite
runs each benchmark once at a tiny scale, so a benchmark that breaks fails the build."""
import os

from mrbench.data import make_dataset, oracle_predictions
from mrbench.families import make_spec
from mrbench.metrics import nmse_average
from mrbench.registry import load_registry

REGISTRY = {name: e.cls for name, e in load_registry().items() if e.available}
SEPARATE = {"transformer"}  # its training is a GPU job: bench_transformer.py times it apart
# Every other registered solver lands in one of these groups, so a new solver is benchmarked.
FAMILY = {name: (cls.families or ("prompt",))[0] for name, cls in REGISTRY.items()}  # the data each runs on
FAMILIES = sorted(set(FAMILY.values()))
# Per data family: dimension, longest prompt, and the share of the test prompts kept (the
# sample family's in-context EM reruns at every prefix and would dominate the suite's time).
DEFAULT = dict(d=20, k_long=60, share=1)
# The sample family under its Gaussian law, whose Bayes reference exists, at jin2024's sizes:
# the grid's m = 5, 20 run K = 2, 5 components and its k = 60 runs n = 40 pairs (in-context EM
# and the Bayes reference rerun at every prefix; K = 20 is no setting of the paper).
SETTINGS = {"sample": dict(d=10, snr=5.0, prior="gaussian", k_long=20, share=5, m_as={5: 2, 20: 5}, k_as={60: 40})}
PER_PROMPT = sorted(n for n, c in REGISTRY.items() if not c.trained and n not in SEPARATE)
TRAINED = sorted(n for n, c in REGISTRY.items() if c.trained and n not in SEPARATE)


def settings(family: str) -> dict:
    return {**DEFAULT, **SETTINGS.get(family, {})}


def dataset(m, k=None, n_train=2000, n_test=500, sigma=1.0, family="prompt"):
    """A dataset of the family at its benchmark settings; k None: its longest prompt."""
    s = settings(family)
    share, k_long = s.pop("share"), s.pop("k_long")
    m, k = s.pop("m_as", {}).get(m, m), s.pop("k_as", {}).get(k, k)
    scale = float(os.environ.get("MRBENCH_BENCH_SCALE", "1"))  # read per call: the tests set it late
    n_train = n_train and max(1, round(n_train * scale))
    n_test = max(2, round(n_test / share * scale))
    ds = make_dataset(make_spec(dict(family=family, m=m, sigma=sigma, k_max=k or k_long, n_train=n_train,
                                     n_test=n_test, **s)))
    ds.reference = oracle_predictions(ds)  # once, in the setup cache (the sample family's is Monte Carlo)
    return ds


def nmse_ratio(pred, ds):
    """Mean NMSE over k = 1..k_max, as a ratio to the family's oracle's."""
    ref = getattr(ds, "reference", None)
    ref = oracle_predictions(ds) if ref is None else ref
    return nmse_average(pred, ds.test.y, ds.spec.d)[0] / nmse_average(ref, ds.test.y, ds.spec.d)[0]


def fitted(name, ds, device="cpu"):
    solver = REGISTRY[name]().set_context(seed=0, device=device)
    return solver.fit(ds.train, ds.truth if solver.requires_truth else None)
