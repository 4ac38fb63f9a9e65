"""Checkpoints: safetensors weights (no pickle) with a JSON sidecar.

A checkpoint is keyed by its training distribution and model: the spec's training fields with
the seed (a model trained with seed s for each replicate of `--seeds N`, so intervals over seeds
cover training runs; a stream at seed 0 is keyed without it, as the first shipped ones were),
the preset and the dropout. Lookup: the user cache ($MRBENCH_CACHE, else ~/.cache/mrbench), then
the checkpoints shipped inside the package.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from importlib import resources
from pathlib import Path

from ..families import own_fields
from ..specs import Spec, train_spec


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


def user_dir() -> Path:
    return Path(os.environ.get("MRBENCH_CACHE", Path.home() / ".cache" / "mrbench")) / "checkpoints"


def shipped_dir() -> Path:
    return Path(str(resources.files("mrbench") / "checkpoints"))


def find(name: str) -> Path | None:
    for d in (user_dir(), shipped_dir()):
        if (d / f"{name}.safetensors").exists() and (d / f"{name}.json").exists():
            return d / f"{name}.safetensors"
    return None


def save(model, meta: dict, directory: Path, name: str) -> Path:
    from safetensors.torch import save

    from ..store import atomic_write  # here: the store imports pandas and pyarrow, lookups need neither

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.safetensors"
    weights = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    sidecar = json.dumps({**meta, "config": model.cfg.to_dict()}, indent=1, default=str)
    # each file replaced whole: a crash never leaves a truncated one for find() to accept
    atomic_write(path, lambda f: f.write(save(weights)))
    atomic_write(path.with_suffix(".json"), lambda f: f.write(sidecar.encode()))
    return path


def load(path: Path, device: str = "cpu"):
    from safetensors.torch import load_file

    from .model import Config, InContextRegressor

    meta = json.loads(Path(path).with_suffix(".json").read_text())
    model = InContextRegressor(Config(**meta["config"]))
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval(), meta


def provenance(meta: dict) -> dict:
    """What produced a model, for the results' `info`: preset, recipe, prompts seen, device and
    training time (those of a checkpoint it was fine-tuned from included), and a one-line
    `summary` such as "cpu preset · 3.1M prompts · CPU 70 min" that leaderboards show."""
    samples, seconds = meta.get("samples") or 0, meta.get("wall_seconds") or 0.0
    origin = meta.get("init_from") or {}
    while origin:  # a chain of fine-tunings: count every stage
        samples, seconds = samples + (origin.get("samples") or 0), seconds + (origin.get("wall_seconds") or 0.0)
        origin = origin.get("init_from") or {}
    device = meta.get("device_name") or meta.get("device") or "?"
    where = "CPU" if device.lower().startswith("cpu") else device
    summary = f"{meta.get('preset')} preset · {_count(samples)} prompts · {where} {_duration(seconds)}"
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
