"""Training state for `mrbench train --resume`: weights, AdamW moments, RNG states as
safetensors (no pickle), and step, seconds, samples, curriculum position and history as JSON,
both replaced whole so that a crash mid-write leaves the previous state readable."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from ..atomic import atomic_write


def paths(prefix: Path) -> tuple[Path, Path]:
    return Path(f"{prefix}.state.safetensors"), Path(f"{prefix}.state.json")


def exists(prefix: Path) -> bool:
    return all(p.exists() for p in paths(prefix))


def save(prefix: Path, model, opt, gen: torch.Generator, hist, meta: dict, extra: dict | None = None) -> None:
    """`extra`: more tensors, named GROUP.NAME (e.g. best.w: a fixed set's best weights), returned by
    `load` as doc["extra"][GROUP][NAME]."""
    from safetensors.torch import save as to_bytes


    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    for i, slots in opt_state["state"].items():
        for name, value in slots.items():
            tensors[f"opt.{i}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.sampler"] = gen.get_state().cpu()
    tensors.update({k: v.detach().cpu().contiguous() for k, v in (extra or {}).items()})
    doc = {"history": dataclasses.asdict(hist), "param_groups": opt_state["param_groups"], **meta}
    weights, sidecar = paths(prefix)
    weights.parent.mkdir(parents=True, exist_ok=True)
    # both name the step they were taken at: a crash between the two writes is detected on load
    doc["step"] = hist.steps
    tensors["step"] = torch.tensor(hist.steps, dtype=torch.int64)
    atomic_write(weights, lambda f: f.write(to_bytes(tensors)))
    atomic_write(sidecar, lambda f: f.write(json.dumps(doc, indent=1, default=str).encode()))


class DamagedState(Exception):
    """A training state that cannot be restored; the message names its files."""


def seconds_done(prefix: Path) -> float:
    """The training seconds a saved state reached (0 if its sidecar cannot be read)."""
    try:
        return float(json.loads(paths(prefix)[1].read_text())["history"]["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def partial(prefix: Path) -> bool:
    """One file of the pair without the other."""
    return any(p.exists() for p in paths(prefix)) and not exists(prefix)


def load(prefix: Path, model, opt, gen: torch.Generator) -> dict:
    """Restore model, optimizer and RNG states in place; returns the JSON document.
    DamagedState if the files are truncated, mismatched or do not fit the model."""
    weights, sidecar = paths(prefix)
    try:
        return _restore(weights, sidecar, model, opt, gen)
    except DamagedState:
        raise
    except Exception as exc:  # truncated, edited, another model's: one line, never a traceback
        reason = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
        raise DamagedState(f"training state {weights.name} / {sidecar.name} in {weights.parent} is damaged "
                           f"({exc.__class__.__name__}: {reason}); remove both files to start afresh") from None


def _restore(weights: Path, sidecar: Path, model, opt, gen: torch.Generator) -> dict:
    from safetensors.torch import load_file

    tensors, doc = load_file(str(weights)), json.loads(sidecar.read_text())
    if int(tensors["step"]) != doc["step"]:
        raise DamagedState(f"{weights} and {sidecar} were written at different steps; remove both to start afresh")
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    slots: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            slots.setdefault(int(i), {})[name] = v  # load_state_dict moves them to the parameters
    opt.load_state_dict({"state": slots, "param_groups": doc["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    gen.set_state(tensors["rng.sampler"])
    doc["extra"] = {}
    for k, v in tensors.items():
        group, _, name = k.partition(".")
        if group not in ("model", "opt", "rng", "step"):
            doc["extra"].setdefault(group, {})[name] = v
    return doc
