import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrbench.errors import UserError
from mrbench.families import make_spec
from mrbench.suites import builtin_suites, filter_specs, load_suite


def write(tmp_path, body, name="s.toml"):
    p = tmp_path / name
    p.write_text(body)
    return p


BASE = "[suite]\nname='t'\n[defaults]\nd=4\nk_max=5\nn_test=10\n"


@pytest.mark.parametrize("line,field,hint", [
    ("m = 0", "m", ">= 1"), ("m = -1", "m", ">= 1"), ("sigma = -0.5", "sigma", ">= 0"),
    ("sigma = nan", "sigma", "finite"), ("d = 2.5", "d", "integer"), ("m = '5'", "m", "integer"),
    ("bogus = 3", "bogus", "valid fields"), ("shift_kind = 'rotate'", "shift_kind", "covariate_scale"),
    ("n_test = 1", "n_test", ">= 2"), ("sigma = true", "sigma", "number"),
])
def test_bad_values_name_file_field_and_range(tmp_path, line, field, hint):
    path = write(tmp_path, BASE + f"[sections.a]\n{line}\n")
    with pytest.raises(UserError) as err:
        load_suite(path)
    msg = str(err.value)
    assert str(path) in msg and f"'{field}'" in msg and hint in msg and "sections.a" in msg


def test_grid_zip_and_defaults(tmp_path):
    path = write(tmp_path, BASE + "[sections.a]\nsigma=1.0\ngrid={m=[2,3], n_train=[10,20]}\n"
                 "zip={shift_kind=['covariate_scale','weight_scale'], shift_value=[2.0, 0.5]}\n"
                 "[sections.b]\nm=4\nn_train='stream'\n")
    suite = load_suite(path)
    a = [s for s in suite.specs if s.section == "a"]
    assert len(a) == 8 and len(suite.specs) == 9
    assert {(s.shift_kind, s.shift_value) for s in a} == {("covariate_scale", 2.0), ("weight_scale", 0.5)}
    assert all(s.d == 4 and s.sigma == 1.0 for s in a)
    assert suite.specs[-1].n_train is None and suite.specs[-1].name == "b"
    assert len({s.name for s in suite.specs}) == 9
    assert len(load_suite(f"{path}:b").specs) == 1
    assert [s.m for s in filter_specs(suite.specs, "m == 3 and n_train == 10")] == [3, 3]


def test_unequal_zip_and_unknown_section(tmp_path):
    with pytest.raises(UserError, match="equal lengths"):
        load_suite(write(tmp_path, BASE + "[sections.a]\nzip={m=[1,2], sigma=[1.0]}\n"))
    with pytest.raises(UserError, match="unknown section 'zz'"):
        path = write(tmp_path, BASE + "[sections.a]\nm=2\n")
        load_suite(f"{path}:zz")
    with pytest.raises(UserError, match="unknown suite 'nope'.*quick"):
        load_suite("nope")


def test_builtin_suites_load():
    suites = builtin_suites()
    assert {"quick", "pathak2023"} <= set(suites)
    quick = load_suite("quick")
    assert {(s.m, s.sigma) for s in quick.specs} == {(5, 0.0), (5, 1.0), (20, 0.0), (20, 1.0)}
    assert all(s.d == 20 and s.k_max == 60 for s in quick.specs)
    p = load_suite("pathak2023")
    assert {s.n_train for s in p.specs if s.section == "fig3"} == {15000, 30000, 45000, 60000}
    assert {s.m for s in p.specs if s.section == "fig4"} == {5, 10, 20, 30}
    assert {s.shift_value for s in p.specs if s.section == "fig5"} == {0.33, 0.5, 1.0, 2.0, 3.0}
    assert {s.shift_value for s in p.specs if s.section == "fig6_shift"} == {0.0, 0.25, 0.5, 0.75, 1.0}


def test_bad_where_is_a_user_error():
    with pytest.raises(UserError, match="--where"):
        filter_specs(load_suite("quick").specs, "m ==")


values = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=5), st.lists(st.integers(), max_size=3))
fields = st.sampled_from(["d", "m", "sigma", "k_max", "n_train", "n_test", "shift_kind", "shift_value",
                          "pool_seed", "seed", "family", "extra"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(fields, values, max_size=6))
def test_make_spec_never_crashes(raw):
    """Malformed values give a UserError or a valid spec, never another exception."""
    try:
        s = make_spec(raw)
    except UserError:
        return
    assert s.m >= 1 and s.d >= 1 and s.sigma >= 0 and math.isfinite(s.sigma)


PER_SPEC = """
[suite]
name = "s"
[defaults]
d = 4
k_max = 8
[sections.a]
solvers = ["posterior_mean", "transformer[preset='tiny']"]
grid = { m = [2, 3], B = [100, 200] }
[sections.a.solver_params.transformer]
by = "B"
dropout = [0.0, 0.1]
"""


def test_per_spec_solver_parameters_expand_to_their_cells_and_keys(tmp_path):
    from mrbench.runner import plan

    path = tmp_path / "s.toml"
    path.write_text(PER_SPEC)
    cells, _ = plan(suite=str(path))
    labels = {(c.spec.m, c.spec.n_train): c.solver.label() for c in cells if c.solver.name == "transformer"}
    assert labels == {(2, 100): "transformer[preset=tiny]", (2, 200): "transformer[preset=tiny,dropout=0.1]",
                      (3, 100): "transformer[preset=tiny]", (3, 200): "transformer[preset=tiny,dropout=0.1]"}
    keys = {c.key for c in cells}
    assert len(keys) == len(cells) == 8
    dropped = [c for c in cells if c.solver.name == "transformer" and c.spec.n_train == 200]
    assert all(c.solver.dropout == 0.1 for c in dropped)


@pytest.mark.parametrize("edit, message", [
    (('by = "B"', 'by = "sigma"'), "by = 'sigma' is not a field this section varies"),
    (("dropout = [0.0, 0.1]", "dropout = [0.0]"), "dropout must list 2 values, one per n_train in [100, 200]"),
    (("solver_params.transformer]", "solver_params.em]"), "'em' is not in the section's solvers"),
    (("dropout = [0.0, 0.1]", "dropoutt = [0.0, 0.1]"), "has no parameter 'dropoutt'"),
])
def test_per_spec_solver_parameters_errors_name_the_problem(tmp_path, edit, message):
    from mrbench.runner import plan

    path = tmp_path / "s.toml"
    path.write_text(PER_SPEC.replace(*edit))
    with pytest.raises(UserError) as err:
        plan(suite=str(path))
    assert message in str(err.value)


def test_pathak2023_runs_the_papers_model_with_fig3s_dropout():
    from mrbench.runner import plan

    cells, _ = plan(suite="pathak2023")
    transformers = [c for c in cells if c.solver.name == "transformer"]
    # every section runs the paper's model, and the CPU model (`transformer`, preset auto) beside it
    for section in ("fig2", "fig3", "fig4", "fig5", "fig6_scale", "fig6_shift"):
        presets = {c.solver.preset for c in transformers if c.spec.section == section}
        assert presets == {"paper", "auto"}, section
    paper = [c for c in transformers if c.solver.preset == "paper"]
    fig3 = sorted((c.spec.n_train, c.solver.dropout) for c in paper if c.spec.section == "fig3" and c.spec.m == 5)
    assert fig3 == [(15000, 0.0), (30000, 0.1), (45000, 0.0), (60000, 0.1)]
