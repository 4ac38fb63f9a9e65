"""Spec values: one data-generating setting, and its training distribution.

The ground floor: a Spec is plain data. Validating raw values into one asks the data
families (`mrbench.families.make_spec`); reading suite files is `mrbench.suites`.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

# Names of the sample-level literature (Jin et al. 2024), accepted in suite files.
ALIASES = {"K": "m", "n": "k_max", "B": "n_train"}


@dataclass(frozen=True)
class Spec:
    """One data-generating setting. Its identity (all fields) keys the data and the results."""

    family: str = "prompt"
    d: int = 20
    m: int = 5
    sigma: float = 1.0
    k_max: int = 60
    n_train: int | None = None  # None: a stream of fresh prompts (see data.DEFAULT_N_TRAIN)
    n_test: int = 1000
    shift_kind: str = "none"
    shift_value: float = 0.0
    pool_seed: int = 0
    seed: int = 0
    pi: tuple[float, ...] | None = None  # component weights; None: uniform
    # The data family's own fields (mrbench.families), (name, value) sorted by name, all of them
    # with defaults filled in; read as attributes: spec.snr.
    extra: tuple[tuple[str, Any], ...] = ()
    # Where the spec comes from; part of the results, not of the data.
    suite: str = ""
    section: str = ""
    name: str = ""

    def __getattr__(self, name: str) -> Any:  # the family's own fields
        for key, value in self.__dict__.get("extra", ()):
            if key == name:
                return value
        raise AttributeError(f"spec of family {self.__dict__.get('family')!r} has no field {name!r}")

    def fields(self) -> dict[str, Any]:
        """Every field, the family's own ones in line with the common ones."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return out | dict(self.extra)

    def with_seed(self, seed: int) -> "Spec":
        return dataclasses.replace(self, seed=seed)

    def canonical(self) -> str:
        return json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))


LABEL_FIELDS = ("suite", "section", "name")
COMMON_FIELDS = tuple(f.name for f in dataclasses.fields(Spec) if f.name != "extra")


def train_spec(spec: Spec) -> Spec:
    """The training distribution of a spec: test-time fields (shift, test size) and labels
    cleared. Specs with equal training specs share training data and fits."""
    return dataclasses.replace(spec, shift_kind="none", shift_value=0.0, n_test=2, suite="", section="", name="")
