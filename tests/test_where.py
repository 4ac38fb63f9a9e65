"""`where` conditions never run code: parsed with ast, only comparisons of fields and constants."""
import os

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrbench.errors import UserError
from mrbench.suites import filter_specs, load_suite
from mrbench.where import evaluate

ATTACKS = [
    "m.__class__.__init__.__globals__['sys'].modules['os'].system('id > PWNED')==0",
    "__import__('os').system('id') == 0",
    "m == 5 and (lambda: 1)() == 1",
    "sigma.real > 0",
    "[m for m in range(3)] == 0",
    "m + 1 == 6",
    "open('x') == 1",
    "@m",
    "m == m.__class__",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_attacks_are_refused_and_run_nothing(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    specs = load_suite("quick").specs
    with pytest.raises(UserError, match="not allowed|not a valid condition|must be a condition"):
        filter_specs(specs, text)
    assert not (tmp_path / "PWNED").exists()


def test_the_cli_exits_2_naming_what_is_not_allowed(cli, tmp_path):
    code, _, err = cli("run", "--suite", "quick", "--solvers", "ols", "--dry-run", "--out", str(tmp_path / "r"),
                       "--where", ATTACKS[0])
    assert code == 2 and "a call" in err and "is not allowed" in err and not (tmp_path / "PWNED").exists()


def test_a_suite_claim_where_is_checked_when_the_suite_loads(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("[suite]\nname='s'\n[defaults]\nd=4\nk_max=8\nn_test=10\n[sections.a]\ngrid={m=[2]}\n"
                    "[claims.c]\nquote='q'\nsource='s'\nmetric='ratio'\nsolver='ols'\nreference='posterior_mean'\n"
                    "holds_if='<= 1'\nwhere=\"m.__class__ == 1\"\n")
    with pytest.raises(UserError, match=r"\[claims.c\] where .*an attribute"):
        load_suite(path)


def test_conditions_select_what_pandas_would():
    frame = pd.DataFrame({"m": [5, 20, 5, 20], "sigma": [0.0, 1.0, 1.0, 0.0], "n_train": [None, 1000, 4000, None],
                          "symmetric": [True, False, True, False], "shift_kind": ["none", "weight_scale", "none", "none"]})
    cases = {"m == 5 and sigma > 0": [False, False, True, False], "not symmetric": [False, True, False, True],
             "m in [20, 30] or sigma == 0": [True, True, False, True], "n_train >= 2000": [False, False, True, False],
             "n_train == None": [True, False, False, True], "shift_kind != 'none'": [False, True, False, False],
             "0 < sigma <= 1": [False, True, True, False], "symmetric == true": [True, False, True, False],
             "m not in (5,)": [False, True, False, True], "sigma > -1": [True] * 4}
    for text, want in cases.items():
        assert evaluate(text, frame).tolist() == want, text


TOKENS = ["m", "sigma", "symmetric", "==", "<", ">=", "in", "not", "and", "or", "(", ")", "[", "]", ",", "5",
          "'none'", "1.5", ".", "__class__", "__globals__", "__import__", "os", "system", "'id'", "lambda", ":",
          "+", "*", "if", "else", "for", "True", "None", "__builtins__", "eval", "getattr", "{", "}", "**", "@"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12))
def test_fuzz_no_expression_runs_anything(tokens):
    text = " ".join(tokens)
    frame = pd.DataFrame({"m": [5, 20], "sigma": [0.0, 1.0], "symmetric": [True, False]})
    calls = []
    real_system = os.system
    os.system = lambda *a: calls.append(a) or 0
    try:
        out = evaluate(text, frame)
    except UserError:
        out = None
    finally:
        os.system = real_system
    assert not calls
    assert out is None or (out.dtype == bool and len(out) == 2)
