"""`mrbench train --suite NAME`: train every checkpoint a suite needs, with a progress bar and
periodic evaluation of the NMSE ratio to the oracle, and write it with its sidecar."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path


from .. import __version__
from ..data import TrainData, hide_query, make_dataset, make_pool
from ..metrics import nmse_curve
from ..predictors import oracle_predictions
from ..runner import git_commit
from ..specs import filter_specs, load_suite, train_spec
from . import checkpoints
from .model import PRESETS, Config
from .train import Recipe, predict, train_model


def evaluator(spec, device: str, n: int = 2000):
    """NMSE ratio per k to the family's oracle on held-out prompts (a seed no suite uses)."""
    import dataclasses

    ds = make_dataset(dataclasses.replace(spec, seed=spec.seed + 1_000_003, n_test=n))
    y = hide_query(ds.test.y)
    ref, _ = nmse_curve(oracle_predictions(ds), ds.test.y, spec.d)

    def evaluate(model) -> dict:
        nmse, _ = nmse_curve(predict(model, ds.test.x, y, device), ds.test.y, spec.d)
        ratio = nmse[1:] / ref[1:]
        return {"mean_ratio": float(ratio.mean()), "worst_ratio": float(ratio.max()),
                "worst_k": int(ratio.argmax() + 1), "ratio_per_k": [float(r) for r in ratio]}

    return evaluate


def train_suite(suite: str, where: str | None, preset: str, recipe: Recipe, device: str, out_dir: Path | None,
                dropout: float = 0.0, echo=print) -> list[Path]:
    specs = filter_specs(load_suite(suite).specs, where)
    needed = {}
    for spec in specs:  # shifted and differently sized test specs share a checkpoint
        needed.setdefault(checkpoints.key(spec, preset, dropout), spec)
    written = []
    for name, spec in needed.items():
        echo(f"training {name} for {spec.name} ({preset}, {recipe.steps} steps, device {device})")
        cfg = Config(d=spec.d, max_pairs=spec.k_max + 1, dropout=dropout, **PRESETS[preset])
        train = TrainData(train_spec(spec), make_pool(spec.d, spec.m, spec.pool_seed))
        evaluate = evaluator(spec, device)
        model, hist = train_model(train, cfg, recipe, device, seed=spec.seed, evaluate=evaluate)
        final = evaluate(model)
        echo(f"  mean NMSE ratio to the oracle {final['mean_ratio']:.4f}, worst {final['worst_ratio']:.4f} "
             f"at k = {final['worst_k']}, {hist.seconds:.1f} s (+ {hist.first_step_seconds:.1f} s first step)")
        meta = {"training": train.spec.__dict__ | {"pi": train.spec.pi}, "preset": preset, "recipe": recipe.to_dict(),
                "steps": hist.steps, "samples": hist.samples, "wall_seconds": round(hist.seconds, 3),
                "first_step_seconds": round(hist.first_step_seconds, 3),
                "device": device, "final": final, "evals": hist.evals, "loss": hist.loss,
                "mrbench_version": __version__, "git_commit": git_commit(),
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        written.append(checkpoints.save(model, meta, out_dir or checkpoints.user_dir(), name))
        echo(f"  wrote {written[-1]}")
    return written
