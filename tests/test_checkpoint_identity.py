"""A checkpoint proves who it is: found by name, trusted only once its sidecar gives that
name's key, the preset's config, and the weights' SHA-256; a mismatch fails the cell (naming
the file), a replaced checkpoint reruns exactly its cells, and training never shadows a
shipped model unasked."""
import json
import shutil

import pytest

import mrbench
from mrbench.suites import load_suite
from mrbench.transformer import checkpoints

QUICK = dict(suite="quick", solvers="transformer", progress=False, report=False)


def _shipped(m, sigma=1.0):
    spec = [s for s in load_suite("quick").specs if s.m == m and s.sigma == sigma][0]
    return checkpoints.key(spec, "cpu", 0.0)


def _plant(cache, source, name, edit=lambda meta: None):
    """Copy a shipped checkpoint into the user cache under `name`, its sidecar edited."""
    cache.mkdir(parents=True, exist_ok=True)
    src = checkpoints.shipped_dir() / source
    shutil.copy(src.with_suffix(".safetensors"), cache / f"{name}.safetensors")
    meta = json.loads(src.with_suffix(".json").read_text())
    edit(meta)
    (cache / f"{name}.json").write_text(json.dumps(meta))


def _run_m20(tmp_path, **kw):
    return mrbench.run(where="m == 20 and sigma == 1", out=tmp_path / "r", **QUICK, **kw)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MRBENCH_CACHE", str(tmp_path / "cache"))
    return checkpoints.user_dir()


@pytest.mark.parametrize("attack,match", [
    ("m5 weights and sidecar under the m20 name", "training distribution, preset and dropout are those of cpu-aef"),
    ("sidecar n_head 4 -> 1", "model config is not the preset's: n_head 1"),
    ("other weights, same sidecar", "weights' SHA-256 is"),
    ("truncated sidecar", "sidecar cpu-0310a1373ebb64d1.json is unreadable"),
    ("sidecar without a hash", "records no SHA-256"),
])
def test_a_checkpoint_that_is_not_what_its_name_says_fails_its_cell(cache, tmp_path, attack, match):
    m20, m5 = _shipped(20), _shipped(5)
    assert m5 == "cpu-aef67ab8a547e4df" and m20 == "cpu-0310a1373ebb64d1"
    if attack.startswith("m5"):
        _plant(cache, m5, m20)
    elif attack.startswith("sidecar n_head"):
        _plant(cache, m20, m20, lambda meta: meta["config"].update(n_head=1))
    elif attack.startswith("other weights"):
        _plant(cache, m20, m20)
        shutil.copy(checkpoints.shipped_dir() / f"{m5}.safetensors", cache / f"{m20}.safetensors")
    elif attack.startswith("truncated"):
        _plant(cache, m20, m20)
        (cache / f"{m20}.json").write_text((cache / f"{m20}.json").read_text()[:100])
    else:
        _plant(cache, m20, m20, lambda meta: meta.pop("sha256"))
    rows = _run_m20(tmp_path)
    assert set(rows.status) == {"failed"}
    assert match in rows.error.iloc[0] and str(cache / f"{m20}.safetensors") in rows.error.iloc[0]
    assert rows.nmse.isna().all()  # never a number


def test_a_checkpoint_without_its_sidecar_is_never_loaded(cache, tmp_path):
    cache.mkdir(parents=True)
    shutil.copy(checkpoints.shipped_dir() / f"{_shipped(5)}.safetensors", cache / f"{_shipped(20)}.safetensors")
    assert checkpoints.find(_shipped(20)) == checkpoints.shipped_dir() / f"{_shipped(20)}.safetensors"


def test_a_replaced_checkpoint_reruns_exactly_its_cells(cache, tmp_path):
    first = mrbench.run(suite="quick", solvers="ols,transformer", where="sigma == 1", out=tmp_path / "r",
                        progress=False, report=False)
    assert set(first.status) == {"ok"}
    _plant(cache, _shipped(20), _shipped(20))  # the same model, now in the cache: same weights, same key
    plan = mrbench.run(suite="quick", solvers="ols,transformer", where="sigma == 1", out=tmp_path / "r",
                       progress=False, report=False, dry_run=True)
    assert plan.stored.all()
    # replaced by other weights (a valid checkpoint of that name: its sidecar's hash updated)
    shutil.copy(checkpoints.shipped_dir() / f"{_shipped(5)}.safetensors", cache / f"{_shipped(20)}.safetensors")
    meta = json.loads((cache / f"{_shipped(20)}.json").read_text())
    meta["sha256"] = checkpoints.sha256(cache / f"{_shipped(20)}.safetensors")
    (cache / f"{_shipped(20)}.json").write_text(json.dumps(meta))
    plan = mrbench.run(suite="quick", solvers="ols,transformer", where="sigma == 1", out=tmp_path / "r",
                       progress=False, report=False, dry_run=True)
    assert plan.loc[~plan.stored, ["spec", "solver"]].values.tolist() == [["fig2/m=20,sigma=1.0", "transformer"]]


def test_train_keeps_a_shipped_checkpoint_unless_forced(cli, tmp_path):
    # with --preset as without it: what is found is not trained again, nothing is written
    for preset in (["--preset", "cpu"], []):
        code, out, err = cli("train", "--suite", "quick", "--where", "m == 5 and sigma == 1", "--steps", "1",
                             *preset, "--out-dir", tmp_path / "ck")
        assert code == 0 and "cpu-aef67ab8a547e4df for fig2/m=5,sigma=1.0 (cpu preset): shipped" in out, err
        assert not (tmp_path / "ck").exists()
    code, out, err = cli("train", "--suite", "quick", "--where", "m == 5 and sigma == 1", "--steps", "1",
                         "--preset", "cpu", "--force", "--out-dir", tmp_path / "ck")
    assert code == 0 and "note: cpu-aef67ab8a547e4df is a shipped checkpoint" in out and "will shadow" in out, err
    assert (tmp_path / "ck" / "cpu-aef67ab8a547e4df.safetensors").exists()


def test_every_shipped_checkpoint_proves_who_it_is():
    for sidecar in checkpoints.sidecars(checkpoints.shipped_dir()):
        path = sidecar.with_suffix(".safetensors")
        assert checkpoints.mismatch(path, checkpoints.read_sidecar(path)) is None, sidecar.name
