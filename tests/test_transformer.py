"""The transformer: model, training loop, checkpoints, `mrbench train`, and the solver."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mrbench
from mrbench.checks import tiny_dataset
from mrbench.spec import train_spec
from mrbench.transformer import checkpoints
from mrbench.transformer.model import PRESETS, Config, InContextRegressor, predict
from mrbench.transformer.train import Recipe, Sampler, train_model

TINY_SUITE = """
[suite]
name = "tt"
[defaults]
d = 4
m = 3
k_max = 8
n_test = 200
sigma = 0.5
[sections.a]
shift_kind = "weight_scale"
grid = { shift_value = [1.0, 2.0] }
"""


def test_presets_and_causality():
    counts = {p: InContextRegressor(Config(**PRESETS[p])).n_params() for p in PRESETS}
    assert counts["paper"] == pytest.approx(9.5e6, rel=0.02) and counts["small"] == pytest.approx(1.2e6, rel=0.02)
    model = InContextRegressor(Config(d=4, max_pairs=9, **PRESETS["tiny"])).eval()
    x, y = torch.randn(5, 9, 4), torch.randn(5, 9)
    base = model(x, y)
    assert base.shape == (5, 9)
    for j in (0, 4, 7):
        moved = y.clone()
        moved[:, j] += 3.0
        out = model(x, moved)
        assert torch.equal(out[:, : j + 1], base[:, : j + 1])  # prediction i never sees y_i or later
        assert not torch.allclose(out[:, j + 1:], base[:, j + 1:])


def _train(ds, steps=300, seed=0):
    cfg = Config(d=4, max_pairs=9, **PRESETS["tiny"])
    return train_model(ds.train, cfg, Recipe(steps=steps, batch_size=64, lr=3e-3, warmup=30), "cpu", seed, progress=False)


def test_training_is_deterministic_and_learns():
    ds = tiny_dataset(n_train=None, sigma=0.5)
    a, _ = _train(ds, steps=30)
    b, _ = _train(ds, steps=30)
    for (na, ta), (_, tb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(ta, tb), na
    a, hist = _train(ds, steps=800)
    assert np.mean(hist.loss[-3:]) < 0.6 * hist.loss[0] and hist.samples == 800 * 64
    y = ds.test.y.copy()
    y[:, -1] = np.nan
    pred = predict(a, ds.test.x, y)
    zero_mse, mse = (ds.test.y[:, 4:] ** 2).mean(), ((pred - ds.test.y)[:, 4:] ** 2).mean()
    assert mse < 0.6 * zero_mse


def test_fixed_set_batches_are_shuffled_prompts_of_the_set():
    ds = tiny_dataset(n_train=50)
    data = ds.train.fixed()
    x, y = Sampler(ds.train, "cpu", torch.Generator().manual_seed(0))(16)
    stored = np.sort(data.y, axis=1)
    for xs, row in zip(x.numpy(), y.numpy()):
        match = np.abs(stored - np.sort(row)).max(axis=1) < 1e-5  # the same pairs, in another order
        assert match.sum() == 1
        i = int(match.argmax())
        np.testing.assert_allclose(np.sort(xs[:, 0]), np.sort(data.x[i, :, 0]))


def test_checkpoint_roundtrip_lookup_and_sidecar(tmp_path, monkeypatch):
    monkeypatch.setenv("MRBENCH_CACHE", str(tmp_path / "cache"))
    ds = tiny_dataset(n_train=None)
    model, hist = _train(ds, steps=20)
    name = checkpoints.key(ds.spec, "tiny", 0.0)
    assert checkpoints.find(name) is None
    meta = {"steps": hist.steps, "training": train_spec(ds.spec).fields(), "preset": "tiny"}
    path = checkpoints.save(model, meta, checkpoints.user_dir(), name)
    assert checkpoints.find(name) == path
    loaded, meta = checkpoints.load(path)
    assert meta["steps"] == 20 and meta["config"]["n_layer"] == 2
    np.testing.assert_array_equal(predict(model, ds.test.x, ds.test.y), predict(loaded, ds.test.x, ds.test.y))
    assert path.read_bytes()[:8] != b"\x80\x04\x95"  # safetensors, not a pickle
    # every seed is its own training run, streams too
    assert checkpoints.key(ds.spec.with_seed(5), "tiny", 0.0) != name
    fixed = tiny_dataset(n_train=100).spec
    assert checkpoints.key(fixed.with_seed(5), "tiny", 0.0) != checkpoints.key(fixed, "tiny", 0.0)


def test_skipped_on_cpu_without_checkpoint_names_mrbench_train(tmp_path, monkeypatch):
    monkeypatch.setenv("MRBENCH_CACHE", str(tmp_path))
    frame = mrbench.run(suite="pathak2023:fig2", solvers="transformer[preset='small']", where="m == 5 and sigma == 1",
                        device="cpu", out=tmp_path / "r", progress=False, report=False)  # the cpu preset's is shipped
    assert (frame.status == "skipped").all()
    from mrbench.transformer.config import RECIPES

    budget = f"about {RECIPES['cpu'].seconds:.0f} s on the CPU (cpu recipe"  # the recipe's budget
    assert frame.error.str.contains(budget, regex=False).all()
    assert frame.error.str.contains("mrbench train --suite pathak2023 --preset small`").all()
    from mrbench.families import make_spec
    from mrbench.solvers.transformer import Transformer

    fixed = make_spec({"d": 20, "m": 5, "k_max": 60, "n_train": 15000, "suite": "pathak2023"}).with_seed(2)
    message = Transformer(preset="small", dropout=0.1).skip_reason(fixed, "cpu")
    assert "mrbench train --suite pathak2023 --preset small --dropout 0.1 --seeds 3`" in message  # seeds 0..2
    assert Transformer(preset="tiny", seconds=20, cpu_budget=30).skip_reason(fixed, "cpu") is None  # seconds cap it
    # a dropout the suite may not list: the command names it, and "auto" trains what `transformer` runs
    assert "mrbench train --suite pathak2023 --preset auto --dropout 0.1 --seeds 3`" in Transformer(
        dropout=0.1).skip_reason(fixed, "cpu")


def test_mrbench_train_then_run_uses_checkpoint(cli, tmp_path):
    suite = tmp_path / "tt.toml"
    suite.write_text(TINY_SUITE)
    env_cache = tmp_path / "cache"
    import os

    os.environ["MRBENCH_CACHE"] = str(env_cache)
    try:
        code, out, err = cli("train", "--suite", suite, "--preset", "tiny", "--steps", "60", "--batch-size", "32",
                             "--eval-every", "30")
        assert code == 0, err
        files = checkpoints.sidecars(env_cache / "checkpoints")
        assert len(files) == 1  # the two weight_scale test specs share one training distribution
        meta = json.loads(files[0].read_text())
        assert len(meta["final"]["ratio_per_k"]) == 8 and meta["steps"] == 60 and len(meta["evals"]) == 2
        assert {"config", "training", "samples", "wall_seconds", "first_step_seconds", "device", "mrbench_version",
                "git_commit"} <= set(meta)
        table = subprocess.run([sys.executable, "-m", "studies.transformer", "quality", env_cache / "checkpoints"],
                               cwd=Path(__file__).parents[1], capture_output=True, text=True, check=True).stdout
        assert f"{files[0].stem} | 3 | 0.5 | tiny | lr 0.003, batch 32, uniform weights, curriculum | - | - | - |" in table
        assert "/60 step [" in err and ".000" not in err  # whole steps in the progress bar
        evals = [line for line in out.splitlines() if line.startswith("evaluation at step ")]
        assert [e.split(",")[0] for e in evals] == ["evaluation at step 30", "evaluation at step 60"]
        assert "mean NMSE ratio to the oracle" in evals[0]  # one line each, the curve stays on screen
        code, _, err = cli("run", "--suite", suite, "--solvers", "transformer[preset='tiny']", "--out", tmp_path / "r")
        assert code == 0, err
    finally:
        del os.environ["MRBENCH_CACHE"]
    frame = mrbench.load_results(tmp_path / "r")
    assert (frame.status == "ok").all()
    assert frame["info"].str.contains(files[0].stem).all()
    from mrbench.leaderboard import leaderboard_text, models

    text = leaderboard_text(frame)
    assert "transformer[preset=tiny] · tiny preset · 1.92k prompts · CPU " in text  # 60 steps of 32 prompts
    (entry,) = models(frame)
    assert entry["checkpoint"].endswith(f"{files[0].stem}.safetensors") and entry["recipe"]["name"] == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_bf16_compiled():
    ds = tiny_dataset(n_train=None)
    cfg = Config(d=4, max_pairs=9, **PRESETS["tiny"])
    model, hist = train_model(ds.train, cfg, Recipe(steps=50, batch_size=256, warmup=5), "cuda", 0, progress=False)
    assert np.isfinite(hist.loss[-1]) and next(model.parameters()).is_cuda


@pytest.mark.parametrize("n_train", [None, 64])
def test_trains_on_the_sample_level_family(n_train):
    ds = tiny_dataset(family="sample", n_train=n_train, m=2)
    model, hist = _train(ds, steps=20)
    assert np.isfinite(hist.loss).all()
    assert np.isfinite(predict(model, ds.test.x, ds.test.y)).all()


def test_oracle_position_weights_track_the_oracle_error():
    from mrbench.data import oracle_predictions
    from mrbench.transformer.train import position_weights

    ds = tiny_dataset(n_train=None, sigma=0.5)
    w = position_weights(ds.train, n=2000).numpy().astype(np.float64)
    assert w.shape == (9,) and w.mean() == pytest.approx(1.0) and w[0] < w[-1]
    # w_k (oracle MSE_k + 1% E[y^2]) is the same for every k, up to sampling between two test sets
    other = tiny_dataset(n_train=None, sigma=0.5, n_test=2000)
    mse = ((oracle_predictions(other) - other.test.y) ** 2).mean(0)
    product = w * (mse + 0.01 * (other.test.y ** 2).mean())
    assert product.std() / product.mean() < 0.1
    model, hist = train_model(ds.train, Config(d=4, max_pairs=9, **PRESETS["tiny"]),
                              Recipe(steps=10, batch_size=16, warmup=2, position_weights="oracle"), "cpu", 0,
                              progress=False)
    assert np.isfinite(hist.loss).all()
    with pytest.raises(ValueError, match="position_weights"):
        train_model(ds.train, Config(d=4, max_pairs=9, **PRESETS["tiny"]), Recipe(position_weights="x"))


def test_training_seconds_leave_out_evaluations():
    import time

    ds = tiny_dataset(n_train=None)

    def slow_eval(model):
        time.sleep(0.25)
        return {}

    t0 = time.perf_counter()
    _, hist = train_model(ds.train, Config(d=4, max_pairs=9, **PRESETS["tiny"]),
                          Recipe(steps=20, batch_size=16, warmup=2, eval_every=5), "cpu", 0, slow_eval, progress=False)
    wall = time.perf_counter() - t0
    assert len(hist.evals) == 4 and hist.seconds < wall - 0.9
    assert [e["seconds"] for e in hist.evals] == sorted(e["seconds"] for e in hist.evals)
    assert hist.evals[-1]["seconds"] <= hist.seconds


def test_learning_rate_schedule_ends_with_the_first_budget():
    from mrbench.transformer.train import lr_at

    steps = Recipe(steps=1000, lr=1.0, warmup=100)
    assert lr_at(0, steps, 1000) == pytest.approx(0.01) and lr_at(100, steps, 1000) == pytest.approx(1.0)
    assert lr_at(999, steps, 1000) == pytest.approx(0.1, abs=1e-4)
    timed = Recipe(steps=10**6, lr=1.0, warmup=100, seconds=60.0)
    assert lr_at(500, timed, 10**6, seconds=30.0) == pytest.approx(0.55, abs=1e-3)  # half-way in time
    assert lr_at(500, timed, 10**6, seconds=60.0) == pytest.approx(0.1)


def test_curriculum_reaches_whole_prompts_half_way_through_either_budget():
    from mrbench.transformer.train import pairs_at

    steps = Recipe(steps=1000, curriculum=True)
    grown = [pairs_at(s, steps, 1000, 61) for s in range(1000)]
    assert grown[0] == 11 and grown[499] < 61 and grown[500] == 61 and grown[-1] == 61
    assert set(np.diff(grown)) <= {0, 2} and grown == sorted(grown)
    assert pairs_at(999, steps, 1000, 60) == 60 and pairs_at(0, steps, 1000, 9) == 9  # odd and short P
    timed = Recipe(steps=10**6, seconds=100.0, curriculum=True)
    assert pairs_at(10, timed, 10**6, 61, seconds=25.0) == 35 and pairs_at(10, timed, 10**6, 61, seconds=50.0) == 61
    assert pairs_at(0, Recipe(steps=1000), 1000, 61) == 61


def test_compiled_bf16_training_never_recompiles():
    """The CUDA recipe's code path (torch.compile, bf16 autocast, curriculum, evaluations with
    the uncompiled model) on the CPU: one compilation for the whole run."""
    import torch._dynamo

    torch._dynamo.reset()
    ds = tiny_dataset(n_train=None, sigma=0.5)
    cfg = Config(d=4, max_pairs=9, **PRESETS["tiny"])
    recipe = Recipe(steps=12, batch_size=32, warmup=2, eval_every=4, curriculum=True, compile=True, bf16=True)
    y = ds.test.y.copy()
    y[:, -1] = np.nan

    def evaluate(model):  # another batch size: would recompile if it went through the compiled model
        return {"mean": float(predict(model, ds.test.x[:50], y[:50]).mean())}

    with torch._dynamo.config.patch(error_on_recompile=True):
        model, hist = train_model(ds.train, cfg, recipe, "cpu", 0, evaluate, progress=False)
    assert len(hist.evals) == 3 and np.isfinite(hist.loss).all()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    assert next(model.parameters()).dtype == torch.float32  # autocast leaves the weights in float32
    torch._dynamo.reset()


def test_evaluator_uses_the_training_distribution_and_reports_ols_and_argmin_at_sigma_zero():
    from mrbench.families import make_spec
    from mrbench.training import Evaluator, summary

    model = InContextRegressor(Config(d=4, max_pairs=9, **PRESETS["tiny"])).eval()
    base = dict(d=4, m=3, k_max=8, n_test=50, sigma=0.5)
    plain = Evaluator(make_spec(base), "cpu", n=300)(model)
    shifted = Evaluator(make_spec(base | {"shift_kind": "covariate_scale", "shift_value": 3.0}), "cpu", n=300)(model)
    assert shifted == plain and len(plain["ratio_per_k"]) == 8 and plain["mean_ratio"] > 1
    noiseless = Evaluator(make_spec(base | {"sigma": 0.0}), "cpu", n=300)(model)
    assert "mean_ratio" not in noiseless and len(noiseless["nmse_per_k"]) == 8
    assert noiseless["argmin_mean_nmse"] < 1e-12 < noiseless["ols_mean_nmse"] < noiseless["mean_nmse"]
    assert "OLS" in summary(noiseless) and "oracle" in summary(plain)


def test_an_untrained_model_is_flagged_also_where_predicting_zero_is_near_the_oracle():
    from mrbench.families import make_spec
    from mrbench.training import PLATEAU_RATIO, Evaluator, barely_trained

    # the sample family: each pair draws its component, so predicting 0 is within 2 of the oracle
    spec = make_spec(dict(family="sample", prior="gaussian", d=4, m=2, snr=5.0, k_max=12, n_train=100, n_test=50))
    evaluate = Evaluator(spec, "cpu", n=300)
    untrained = evaluate(InContextRegressor(Config(d=4, max_pairs=13, **PRESETS["tiny"])).eval())
    assert 1 < evaluate.zero_ratio < PLATEAU_RATIO and untrained["mean_ratio"] < PLATEAU_RATIO
    assert barely_trained(untrained, evaluate.zero_ratio)
    # a tenth of the way from predicting 0 to the oracle is no longer the plateau
    assert not barely_trained({"mean_ratio": 1 + 0.85 * (evaluate.zero_ratio - 1)}, evaluate.zero_ratio)
    assert barely_trained({"mean_ratio": 2.5}, 40.0) and not barely_trained({"mean_nmse": 0.1}, None)


def test_checkpoint_names_for_every_seed_of_a_fixed_training_set():
    from mrbench.families import make_spec
    from mrbench.training import needed_checkpoints

    stream, fixed = make_spec(dict(d=4, m=3, k_max=8)), make_spec(dict(d=4, m=3, k_max=8, n_train=64))
    assert len(needed_checkpoints([stream], "tiny", 0.0, seeds=3)) == 3
    names = needed_checkpoints([fixed], "tiny", 0.0, seeds=3)
    assert [s.seed for s in names.values()] == [0, 1, 2]
    assert checkpoints.key(fixed, "tiny", 0) == checkpoints.key(fixed, "tiny", 0.0)  # int and float dropout


def test_warm_up_is_a_fraction_of_the_budget():
    from mrbench.transformer.train import lr_at

    steps = Recipe(steps=1000, lr=1.0, warmup=0.1)
    assert lr_at(50, steps, 1000) == pytest.approx(0.5) and lr_at(100, steps, 1000) == pytest.approx(1.0)
    assert lr_at(999, steps, 1000) == pytest.approx(0.1, abs=1e-4)
    timed = Recipe(steps=10**7, lr=1.0, warmup=0.1, seconds=3000.0)  # 300 s, however many steps that is
    assert lr_at(10**5, timed, 10**7, seconds=150.0) == pytest.approx(0.5)
    assert lr_at(10**5, timed, 10**7, seconds=300.0) == pytest.approx(1.0)


def test_curriculum_holds_its_first_length_until_the_plateau_is_left():
    from mrbench.transformer.train import pairs_at

    recipe = Recipe(steps=1000, curriculum=True)
    assert pairs_at(900, recipe, 1000, 61, grow_from=None) == 11
    grown = [pairs_at(s, recipe, 1000, 61, grow_from=0.3) for s in range(1000)]
    assert grown[300] == 11 and grown[649] < 61 and grown[650] == 61  # whole prompts half-way through the rest
    quick = Recipe(steps=1000, curriculum=True, curriculum_share=0.2)  # a fifth of the rest: 0.3 + 0.2 * 0.7
    grown = [pairs_at(s, quick, 1000, 61, grow_from=0.3) for s in range(1000)]
    assert grown[300] == 11 and grown[439] < 61 and grown[440] == 61


def _record_lengths(monkeypatch):
    seen = []
    forward = InContextRegressor.forward

    def spy(self, x, y):
        seen.append(x.shape[1])
        return forward(self, x, y)

    monkeypatch.setattr(InContextRegressor, "forward", spy)
    return seen


def test_uncompiled_curriculum_shortens_the_prompts(monkeypatch):
    """On the CPU a curriculum step costs what its short prompts cost (masking would not)."""
    seen = _record_lengths(monkeypatch)
    ds = tiny_dataset(n_train=None, k_max=40)
    cfg = Config(d=4, max_pairs=41, **PRESETS["tiny"])
    _, hist = train_model(ds.train, cfg, Recipe(steps=60, batch_size=8, curriculum=True), "cpu", 0, progress=False)
    assert seen[0] == 11 and seen[-1] == 41 and seen == sorted(seen)  # the plateau is left by 25% at the latest
    assert hist.grow_from is not None and hist.grow_from <= 0.25
    x, y = Sampler(ds.train, "cpu", torch.Generator().manual_seed(0))(5, 7)
    assert x.shape == (5, 7, 4) and y.shape == (5, 7)
    fixed = tiny_dataset(n_train=50)
    x, y = Sampler(fixed.train, "cpu", torch.Generator().manual_seed(0))(5, 3)
    assert x.shape == (5, 3, 4)  # a fixed set's prompts: shuffled, then cut


def test_a_run_resumed_half_way_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    from mrbench.transformer import state

    ds = tiny_dataset(n_train=None, sigma=0.5)
    cfg = Config(d=4, max_pairs=9, dropout=0.1, **PRESETS["tiny"])  # dropout: the global RNG must resume too
    recipe = Recipe(steps=40, batch_size=16, lr=3e-3, warmup=0.1, curriculum=True, eval_every=20)
    whole, hist = train_model(ds.train, cfg, recipe, "cpu", 0, lambda m: {}, progress=False)

    def interrupt(model):
        raise KeyboardInterrupt  # what Ctrl-C does half-way

    with pytest.raises(KeyboardInterrupt):
        train_model(ds.train, cfg, recipe, "cpu", 0, interrupt, progress=False, state=tmp_path / "run")
    assert state.exists(tmp_path / "run")
    saved = json.loads((tmp_path / "run.state.json").read_text())
    assert saved["step"] == 20 and saved["history"]["samples"] == 320
    assert (tmp_path / "run.state.safetensors").read_bytes()[:8] != b"\x80\x04\x95"  # no pickle
    resumed, rhist = train_model(ds.train, cfg, recipe, "cpu", 0, lambda m: {}, progress=False,
                                 state=tmp_path / "run", resume=True)
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert rhist.steps == hist.steps == 40 and rhist.samples == hist.samples and rhist.resumed_at == [20]
    assert rhist.pairs == hist.pairs and rhist.loss == hist.loss
    # a larger budget extends the run from where it stopped
    longer, lhist = train_model(ds.train, cfg, dataclasses.replace(recipe, steps=60), "cpu", 0, progress=False,
                                state=tmp_path / "run", resume=True)
    assert lhist.steps == 60 and lhist.resumed_at == [20, 40] and lhist.pairs == 9
    # the cosine re-stretched over 60 steps would step above where the 40-step run ended; the
    # resumed run never does (a larger budget must not undo the decay)
    from mrbench.transformer.train import lr_at

    assert lr_at(40, dataclasses.replace(recipe, steps=60), 60) > 1.5 * hist.lr_cap
    assert lhist.lr_cap <= hist.lr_cap


def test_fine_tuning_starts_from_the_given_weights():
    ds = tiny_dataset(n_train=None)
    base, _ = _train(ds, steps=30)
    cfg = Config(d=4, max_pairs=9, **PRESETS["tiny"])
    tuned, _ = train_model(ds.train, cfg, Recipe(steps=1, lr=1e-9, warmup=0), "cpu", 1, init=base.state_dict(),
                           progress=False)
    for (name, a), (_, b) in zip(base.state_dict().items(), tuned.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_checkpoint_keys_survive_new_spec_fields():
    """Shipped checkpoints are found by key: a field added to Spec must not rename them."""
    from mrbench.spec import Spec
    from mrbench.suites import load_suite

    (spec,) = [s for s in load_suite("quick").specs if s.m == 5 and s.sigma == 1]
    assert checkpoints.key(spec, "cpu", 0.0) == "cpu-aef67ab8a547e4df"  # the name shipped for quick.toml
    extended = dataclasses.make_dataclass("Extended", [("x_scales", tuple, None)], bases=(Spec,), frozen=True)
    same = extended(**dataclasses.asdict(spec))
    assert checkpoints.key(same, "cpu", 0.0) == "cpu-aef67ab8a547e4df"
    assert checkpoints.key(extended(**dataclasses.asdict(spec) | {"x_scales": (1.0, 2.0)}), "cpu", 0.0) != \
        "cpu-aef67ab8a547e4df"


def test_two_training_seeds_of_a_stream_train_two_models(cli, tmp_path):
    suite = tmp_path / "tt.toml"
    suite.write_text(TINY_SUITE)
    code, out, err = cli("train", "--suite", suite, "--preset", "tiny", "--steps", "20", "--batch-size", "16",
                         "--seeds", "2", "--out-dir", tmp_path / "ck")
    assert code == 0, err
    files = checkpoints.sidecars(tmp_path / "ck")
    assert len(files) == 2 and {json.loads(f.read_text())["training"]["seed"] for f in files} == {0, 1}
    a, _ = checkpoints.load(files[0].with_suffix(".safetensors"))
    b, _ = checkpoints.load(files[1].with_suffix(".safetensors"))
    assert not torch.equal(a.read_in.weight, b.read_in.weight)  # independently trained


def test_the_sample_family_lowers_the_recipes_learning_rate_unless_lr_is_given(cli, tmp_path, monkeypatch):
    # the cpu recipe's 3e-3 leaves the sample family's training on its plateau (Family.max_lr)
    import signal

    from mrbench import cli as cli_module, training

    sample = tmp_path / "ts.toml"
    sample.write_text('[suite]\nname = "ts"\n[defaults]\nfamily = "sample"\nprior = "gaussian"\nd = 4\nm = 2\n'
                      'k_max = 8\nn_test = 200\nsigma = 0.5\nsnr = 2.0\n[sections.a]\n')
    trained = []
    monkeypatch.setattr(training, "train_one", lambda task: trained.append(task.recipe.lr))
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # what `mrbench train` sets for its own process
    for extra in ([], ["--lr", "0.002"]):
        assert cli_module.main(["train", "--suite", str(sample), "--preset", "tiny", "--steps", "2",
                                "--out-dir", str(tmp_path / "ck"), *extra]) == 0
    assert trained == [1e-3, 2e-3]
    monkeypatch.undo()
    suite = tmp_path / "tt.toml"  # the prompt family keeps the recipe's; the sidecar records the rate
    suite.write_text(TINY_SUITE)
    code, out, err = cli("train", "--suite", suite, "--preset", "tiny", "--steps", "2", "--batch-size", "8",
                         "--out-dir", tmp_path / "tt")
    assert code == 0 and "cpu recipe at lr 0.003" in out, err
    assert json.loads(checkpoints.sidecars(tmp_path / "tt")[0].read_text())["recipe"]["lr"] == 3e-3
    from mrbench.families import make_spec
    from mrbench.solvers.transformer import Transformer

    spec = make_spec({"family": "sample", "d": 4, "m": 2, "k_max": 8, "snr": 2.0})
    assert Transformer().training_recipe("cpu", spec).lr == 1e-3  # what `mrbench run` would train with
    assert Transformer(lr=3e-3).training_recipe("cpu", spec).lr == 3e-3


def test_the_pathak2023_recipe_follows_appendix_c():
    from mrbench.transformer.config import RECIPES
    from mrbench.transformer.train import dims_at, lr_at, pairs_at

    r = RECIPES["pathak2023"]
    assert (r.batch_size, r.lr, r.phase_steps, r.steps) == (64, 1e-4, 2000, 300_000)
    assert [pairs_at(s, r, r.steps, 61) for s in (0, 1999, 2000, 49_999, 50_000, 299_999)] == [11, 11, 13, 59, 61, 61]
    assert [dims_at(s, r, r.steps, 20) for s in (0, 2000, 29_999, 30_000, 299_999)] == [5, 6, 19, 20, 20]
    assert {lr_at(s, r, r.steps) for s in (0, 1000, 150_000, 299_999)} == {1e-4}  # a constant step size
    ds = tiny_dataset(n_train=None)
    short = dataclasses.replace(r, steps=6, phase_steps=2, batch_size=8)
    _, hist = train_model(ds.train, Config(d=4, max_pairs=9, **PRESETS["tiny"]), short, "cpu", 0, progress=False)
    assert hist.pairs == 9 and hist.dims == 4  # 11 and 5 capped by P = 9 and d = 4


def test_a_fixed_set_run_stops_when_held_out_quality_stops_improving():
    from mrbench.transformer.train import stalled

    def ev(seconds, ratio, pairs=61):
        return {"seconds": seconds, "step": int(seconds), "pairs": pairs, "mean_ratio": ratio}

    # averaged over 3 evaluations: 1.5, 1.3, 1.2, 1.2, 1.2, ... from the 3rd evaluation on whole prompts
    curve = [ev(100, 9.0, pairs=31)] + [ev(200 + 100 * i, r) for i, r in enumerate([1.8, 1.5, 1.2, 1.2, 1.2, 1.2])]
    assert stalled(curve + [ev(900, 1.2)], 3, 61) is None  # two evaluations since the best average: not yet
    stop = stalled(curve + [ev(900, 1.2), ev(1000, 1.2)], 3, 61)
    assert stop["best_seconds"] == 600 and stop["seconds"] == 1000 and "1.2000 to 600 training s" in stop["why"]
    assert stalled(curve + [ev(900, 1.2), ev(1000, 1.0)], 3, 61) is None  # a new best average resets the count
    assert stalled(curve + [ev(900, 1.2), ev(1000, 1.3)], None, 61) is None  # no patience: never
    # one noisy evaluation does not stop a run (measured: a Fig. 3 run at n = 60000 had stopped at
    # 2282 of its 3000 s on single evaluations 1.078, 1.086, 1.092, 1.099, 1.094, 1.083)
    noisy = [ev(1561 + 120 * i, r) for i, r in enumerate([1.1023, 1.0783, 1.0860, 1.0924, 1.0990, 1.0941, 1.0830])]
    assert stalled(noisy, 5, 61) is None
    # the curriculum's shorter prompts do not count: only evaluations on whole prompts
    assert stalled([ev(s, 1.0, pairs=41) for s in range(10)], 3, 61) is None
    noiseless = [{"seconds": s, "step": s, "pairs": 61, "mean_nmse": 0.01} for s in range(7)]
    assert "mean nmse" in stalled(noiseless, 3, 61)["why"]



def test_a_fixed_set_run_returns_its_best_held_out_weights_also_after_a_resume(tmp_path):
    """Over-fitting a small set must not cost the checkpoint: the weights of the best evaluation
    are returned, they travel with the training state, and fresh prompts keep the last ones."""
    ds = tiny_dataset(n_train=50)
    cfg = Config(d=4, max_pairs=9, **PRESETS["tiny"])
    recipe = Recipe(steps=40, batch_size=16, lr=3e-3, eval_every=10, patience=None)
    seen = []

    def scores(*ratios):
        def evaluate(model):  # a held-out score chosen per evaluation, the weights it saw recorded
            seen.append({k: v.clone() for k, v in model.state_dict().items()})
            return {"mean_ratio": ratios[len(seen) - 1]}
        return evaluate

    model, hist = train_model(ds.train, cfg, recipe, "cpu", 0, scores(1.5, 1.2, 1.3, 1.4), progress=False,
                              state=tmp_path / "run")
    assert hist.kept == {"step": 20, "seconds": hist.evals[1]["seconds"], "samples": 320, "score": 1.2}
    assert all(torch.equal(v, seen[1][k]) for k, v in model.state_dict().items())
    # resumed with a larger budget: a later, worse evaluation does not replace the saved best
    longer, lhist = train_model(ds.train, cfg, dataclasses.replace(recipe, steps=60), "cpu", 0,
                                scores(1.5, 1.2, 1.3, 1.4, 1.25, 1.3), progress=False, state=tmp_path / "run",
                                resume=True)
    assert lhist.kept["step"] == 20 and all(torch.equal(v, seen[1][k]) for k, v in longer.state_dict().items())
    seen.clear()
    fresh_ds = tiny_dataset(n_train=None)
    last, fhist = train_model(fresh_ds.train, cfg, recipe, "cpu", 0, scores(1.5, 1.2, 1.3, 1.4), progress=False)
    assert fhist.kept is None and not all(torch.equal(v, seen[1][k]) for k, v in last.state_dict().items())


QUEUE_SUITE = """
[suite]
name = "tq"
[defaults]
d = 4
m = 3
k_max = 8
n_test = 100
sigma = 0.5
[sections.fixed]
solvers = ["ols", "transformer[preset='paper']", "transformer[preset='tiny']"]
grid = { n_train = [200, 400] }
[sections.fixed.solver_params.transformer]
by = "n_train"
dropout = [0.0, 0.1]
"""


def test_train_queue_trains_what_the_suite_needs_and_is_missing(cli, tmp_path, monkeypatch):
    """`mrbench train --dry-run` lists each transformer variant the suite's cells run (per-spec
    dropout included) and its state; without --dry-run the missing ones train, the paper
    preset is left to a GPU, and a run then finds them all."""
    suite = tmp_path / "tq.toml"
    suite.write_text(QUEUE_SUITE)
    monkeypatch.setenv("MRBENCH_CACHE", str(tmp_path / "cache"))
    code, out, err = cli("train", "--suite", suite, "--dry-run", "--steps", "20")
    assert code == 0, err
    lines = out.splitlines()
    assert sum("left to a GPU" in line for line in lines) == 2
    tiny = [line.split() for line in lines if line.startswith("tiny-")]
    assert [(row[1], row[4], row[5]) for row in tiny] == [
        ("fixed/n_train=200", "0", "to"), ("fixed/n_train=400", "0.1", "to")]
    assert lines[-1].startswith("2 of 4 checkpoints to train")
    code, out, err = cli("train", "--suite", suite, "--steps", "20", "--batch-size", "16", "--eval-every", "20")
    assert code == 0, err
    sidecars = checkpoints.sidecars(tmp_path / "cache" / "checkpoints")
    assert sorted(json.loads(p.read_text())["config"]["dropout"] for p in sidecars) == [0.0, 0.1]
    code, out, _ = cli("train", "--suite", suite, "--dry-run")
    assert "nothing to train" in out.splitlines()[-1] and out.count(f"in {tmp_path / 'cache' / 'checkpoints'}") == 2
    code, _, err = cli("run", "--suite", suite, "--out", tmp_path / "r", "--no-report")
    assert code == 0, err
    cells = mrbench.load_results(tmp_path / "r").drop_duplicates("cell_key").set_index("label")["status"]
    assert (cells[cells.index.str.startswith("transformer[preset=tiny")] == "ok").sum() == 2
    assert (cells[cells.index.str.startswith("transformer[preset=paper")] == "skipped").all()
    code, _, err = cli("train", "--suite", suite, "--dropout", "0.1")
    assert code == 2 and "--dropout needs --preset" in err


def test_train_runs_its_checkpoints_through_the_executors(cli, tmp_path, monkeypatch):
    """-j 2: two trainings side by side in worker processes; --executor dask: each a task on a
    Dask cluster (a LocalCluster here). Each writes both checkpoints of the queue suite."""
    suite = tmp_path / "tq.toml"
    suite.write_text(QUEUE_SUITE)
    code, out, err = cli("train", "--suite", suite, "--steps", "20", "--batch-size", "16", "--eval-every", "20",
                         "-j", "2", "--out-dir", tmp_path / "j2")
    assert code == 0, err
    assert sorted(p.stem for p in checkpoints.sidecars(tmp_path / "j2")) == sorted(
        line.split()[0] for line in cli("train", "--suite", suite, "--dry-run")[1].splitlines() if line.startswith("tiny-"))
    from distributed import Client, LocalCluster

    from mrbench.training import train_suite
    from mrbench.transformer.config import make_recipe

    recipe = make_recipe("cpu", steps=20, batch_size=16, eval_every=20)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        written = train_suite(str(suite), None, None, recipe, "cpu", tmp_path / "dask", executor="dask",
                              scheduler=client)
    assert len(written) == 2 and all(p.exists() for p in written)
    for path in written:
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["steps"] == 20 and meta["training"]["n_train"] in (200, 400)
