"""Checkpoints: safetensors weights (no pickle) with a JSON sidecar.

A checkpoint is keyed by its training distribution and model: the spec's training fields with
the seed (a model trained with seed s for each replicate of `--seeds N`, so intervals over seeds
cover training runs; a stream at seed 0 is keyed without it, as the first shipped ones were),
the preset and the dropout. Lookup: the user cache ($MRBENCH_CACHE, else ~/.cache/mrbench), then
the checkpoints shipped inside the package.

A file's name is not trusted: `load` checks that the sidecar's training distribution, preset
and dropout give the file's key, that its model config is the preset's for that distribution
and fits the tensors, and that the weights have the SHA-256 the sidecar records.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from importlib import resources
from pathlib import Path

from ..atomic import atomic_write
from ..errors import UserError
from ..families import make_spec, own_fields
from ..spec import Spec, train_spec


class CheckpointError(ValueError):
    """A checkpoint that is not what its name says: the message names the file and the mismatch."""


# The spec fields keyed when the first checkpoints were shipped, each with the value it takes
# if the field is ever removed from Spec. Fields added later enter a key only where they differ
# from their default, so adding one keeps every shipped checkpoint found (a test checks the
# shipped names through the solver).
KEYED_FIELDS = {"family": "prompt", "d": 20, "m": 5, "sigma": 1.0, "k_max": 60, "n_train": None, "n_test": 1000,
                "shift_kind": "none", "shift_value": 0.0, "pool_seed": 0, "seed": 0, "pi": None, "snr": 1.0,
                "components": "per_prompt", "symmetric": False, "suite": "", "section": "", "name": ""}


def key(spec: Spec, preset: str, dropout: float) -> str:
    fields = train_spec(spec).fields()  # a data family's own fields in line with the common ones
    defaults = {f.name: f.default for f in dataclasses.fields(Spec)} | own_fields()
    t = {name: fields.get(name, value) for name, value in KEYED_FIELDS.items()}
    t |= {k: v for k, v in fields.items() if k not in KEYED_FIELDS and v != defaults.get(k)}
    if spec.n_train is None and spec.seed == 0:  # the shipped names: streams were keyed without a seed
        t.pop("seed")
    # float(): `transformer[dropout=0]` and `--dropout 0` must name the same checkpoint
    payload = json.dumps({"train": t, "preset": preset, "dropout": float(dropout)}, sort_keys=True)
    return f"{preset}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


# The CPU transformer (preset "auto", the `transformer` solver's default): the first of these
# presets with a checkpoint of the training distribution. New CPU checkpoints are trained in the
# first (one token per pair: about twice as fast); one retrained in it shadows an older format.
CPU_PRESETS = ("cpu-pairs", "cpu")


def resolve(spec: Spec, preset: str, dropout: float, found=None) -> str:
    """The preset a transformer of `preset` runs on this training distribution: itself, or for
    "auto" the first CPU preset whose seed-0 checkpoint is found (so that every seed of a
    `--seeds N` run trains and runs the format of the first), else the one `mrbench train` trains.
    `found(name)` says whether a checkpoint counts as there (default `find`; the training queue
    counts a saved training state too, so that --resume continues the format it began)."""
    if preset != "auto":
        return preset
    found = found or find
    first = spec.with_seed(0)
    return next((p for p in CPU_PRESETS if found(key(first, p, dropout))), CPU_PRESETS[0])


def shadowed(spec: Spec, preset: str, dropout: float) -> Path | None:
    """The checkpoint that "auto" runs now and would not once `preset`'s is written, if any
    (only a seed-0 checkpoint decides the format)."""
    if preset not in CPU_PRESETS or spec.seed != 0:
        return None
    now = resolve(spec, "auto", dropout)  # a later preset only when its checkpoint is found
    return find(key(spec, now, dropout)) if CPU_PRESETS.index(now) > CPU_PRESETS.index(preset) else None


def user_dir() -> Path:
    return Path(os.environ.get("MRBENCH_CACHE", Path.home() / ".cache" / "mrbench")) / "checkpoints"


def shipped_dir() -> Path:
    return Path(str(resources.files("mrbench") / "checkpoints"))


def find(name: str) -> Path | None:
    for d in (user_dir(), shipped_dir()):
        if (d / f"{name}.safetensors").exists() and (d / f"{name}.json").exists():
            return d / f"{name}.safetensors"
    return None


def shipped(name: str) -> bool:
    return (shipped_dir() / f"{name}.safetensors").exists()


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@functools.lru_cache(maxsize=256)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    return sha256(Path(path))


def digest(path: Path) -> str:
    """The weights' SHA-256, computed once per file version (the runner keys every cell with it)."""
    st = Path(path).stat()
    return _digest(str(path), st.st_mtime_ns, st.st_size)


def save(model, meta: dict, directory: Path, name: str) -> Path:
    from safetensors.torch import save


    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.safetensors"
    weights = save({k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()})
    sidecar = json.dumps({**meta, "config": model.cfg.to_dict(), "sha256": hashlib.sha256(weights).hexdigest()},
                         indent=1, default=str)
    # each file replaced whole, the sidecar last: it is what makes the pair a checkpoint
    atomic_write(path, lambda f: f.write(weights))
    atomic_write(path.with_suffix(".json"), lambda f: f.write(sidecar.encode()))
    return path


def read_sidecar(path: Path) -> dict:
    sidecar = Path(path).with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path}: its sidecar {sidecar.name} is unreadable ({exc})") from None
    if not isinstance(meta, dict) or not all(k in meta for k in ("training", "preset", "config")):
        raise CheckpointError(f"checkpoint {path}: its sidecar {sidecar.name} lacks training, preset or config")
    return meta


def mismatch(path: Path, meta: dict, by_key: bool = True, data: bytes | None = None) -> str | None:
    """Why the checkpoint at `path` is not what its name and sidecar say (None: it is), without
    reading the tensors: the weights' hash (of `data`, the bytes about to be loaded, if given),
    and with `by_key` the key and the model config."""
    from .config import Config, preset_shape

    path = Path(path)
    if "sha256" not in meta:
        return "its sidecar records no SHA-256 of the weights (written by an older mrbench: retrain it)"
    actual = hashlib.sha256(data).hexdigest() if data is not None else digest(path)
    if actual != meta["sha256"]:
        return f"its weights' SHA-256 is {actual[:16]}..., the sidecar records {str(meta['sha256'])[:16]}..."
    if not by_key:
        return None
    try:
        spec = make_spec(meta["training"], f"{path.name} sidecar")
        dropout = float(meta["config"]["dropout"])
        expected = key(spec, meta["preset"], dropout)
        shape = preset_shape(meta["preset"])
        cfg = Config(**meta["config"])
    except (UserError, ValueError, TypeError, KeyError) as exc:
        return f"its sidecar does not describe a checkpoint ({exc})"
    if expected != path.stem:
        return f"its sidecar's training distribution, preset and dropout are those of {expected}, not {path.stem}"
    want = Config(d=spec.d, max_pairs=spec.k_max + 1, dropout=dropout, **shape)
    if cfg != want:
        diff = [f"{k} {a!r} (preset {meta['preset']}: {b!r})" for (k, a), b in
                zip(cfg.to_dict().items(), want.to_dict().values()) if a != b]
        return f"its sidecar's model config is not the preset's: {', '.join(diff)}"
    return None


def load(path: Path, device: str = "cpu", by_key: bool = True):
    """The model and its sidecar, once the checkpoint proves it is what its name says
    (CheckpointError otherwise). by_key=False: a study's file, named by the user rather than
    found by key, is checked only for its hash and its tensors."""
    from safetensors.torch import load as from_bytes

    from .model import Config, InContextRegressor

    meta = read_sidecar(path)
    data = Path(path).read_bytes()  # hashed and loaded from the same bytes
    why = mismatch(path, meta, by_key, data)
    if why is not None:
        raise CheckpointError(f"checkpoint {path}: {why}")
    model = InContextRegressor(Config(**meta["config"]))
    try:
        model.load_state_dict(from_bytes(data))
    except Exception as exc:  # tensors that do not fit the config, or a damaged file
        raise CheckpointError(f"checkpoint {path}: its tensors do not fit its config "
                              f"({str(exc).splitlines()[0][:200]})") from None
    return model.to(device).eval(), meta


def provenance(meta: dict) -> dict:
    """What produced a model, for the results' `info`: preset, recipe, prompts seen, device and
    training time (those of a checkpoint it was fine-tuned from included), and a one-line
    `summary` such as "cpu preset · 3.1M prompts · CPU 70 min · held-out ratio 1.026" that
    leaderboards and verdicts show (the ratio: its training's final evaluation, at sigma > 0)."""
    samples, seconds = meta.get("samples") or 0, meta.get("wall_seconds") or 0.0
    origin = meta.get("init_from") or {}
    while origin:  # a chain of fine-tunings: count every stage
        samples, seconds = samples + (origin.get("samples") or 0), seconds + (origin.get("wall_seconds") or 0.0)
        origin = origin.get("init_from") or {}
    device = meta.get("device_name") or meta.get("device") or "?"
    where = "CPU" if device.lower().startswith("cpu") else device
    summary = f"{meta.get('preset')} preset · {_count(samples)} prompts · {where} {_duration(seconds)}"
    kept = meta.get("kept")
    if kept and kept["step"] != meta.get("steps"):  # a fixed set's best held-out weights, not its last
        summary += f" · weights of {_duration(kept['seconds'])}"
    held_out = (meta.get("final") or {}).get("mean_ratio")
    if held_out is not None:  # how far from the oracle the training left it: a verdict's context
        summary += f" · held-out ratio {held_out:.3f}"
    out = {k: meta.get(k) for k in ("preset", "steps", "samples", "wall_seconds", "device_name", "recipe")}
    return out | {"samples_total": samples, "seconds_total": round(seconds, 1), "summary": summary,
                  **({"init_from": meta["init_from"].get("checkpoint")} if meta.get("init_from") else {})}


def _count(n: float) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def sidecars(directory: Path, recursive: bool = False) -> list[Path]:
    """The checkpoint sidecars (NAME.json) in a directory, not the training states beside them."""
    found = Path(directory).rglob("*.json") if recursive else Path(directory).glob("*.json")
    return sorted(p for p in found if not p.name.endswith(".state.json"))
