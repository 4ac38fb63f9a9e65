"""`mrbench train --suite NAME`: train every checkpoint a suite needs, with a progress bar and
periodic evaluation of the NMSE ratio to the oracle, and write it with its sidecar."""
from __future__ import annotations

import dataclasses
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from . import formatting as fmt
from .data import make_dataset, oracle_predictions, train_data
from .errors import UserError
from .executors import make_executor
from .families.registry import family_of
from .metrics import nmse_curve
from .predictors import argmin
from .prompts import hide_query
from .provenance import __version__, device_name, git_commit
from .registry import parse_solver_arg
from .spec import train_spec
from .statuses import FAILED, OK
from .suites import filter_specs, load_suite
from .transformer import checkpoints, state
from .transformer.config import Config, preset_shape
from .transformer.model import predict
from .transformer.train import Recipe, train_model


class Evaluator:
    """NMSE per k = 1..k_max on n held-out prompts of the training distribution (a seed no suite
    uses) as a ratio to the family's oracle: calling it on a model scores the model. At sigma = 0
    the oracle's NMSE is 0 from k = 1 on and a ratio means nothing, so the mean NMSE is reported
    next to OLS's and the argmin's. `zero_ratio`: predicting 0 (what a model that ignores the
    prompt reaches, about) against the oracle; None at sigma = 0."""

    def __init__(self, spec, device: str, n: int = 2000):
        self.spec, self.device, self.zero_ratio = spec, device, None
        self.ds = ds = make_dataset(dataclasses.replace(train_spec(spec), seed=spec.seed + 1_000_003, n_test=n))
        self.y = y = hide_query(ds.test.y)
        if spec.sigma == 0:
            self.others = {"ols": self._curve(least_squares(ds.test.x, y)),
                           "argmin": self._curve(argmin(ds.test.x, y, ds.truth.pool))}
        else:
            self.ref = self._curve(oracle_predictions(ds))
            self.zero_ratio = float((self._curve(np.zeros_like(ds.test.y)) / self.ref).mean())

    def _curve(self, pred):
        return nmse_curve(pred, self.ds.test.y, self.spec.d)[0][1:]

    def __call__(self, model) -> dict:
        nmse = self._curve(predict(model, self.ds.test.x, self.y, self.device))
        out = {"mean_nmse": float(nmse.mean()), "nmse_per_k": [float(v) for v in nmse]}
        if self.zero_ratio is None:
            return out | {f"{name}_mean_nmse": float(v.mean()) for name, v in self.others.items()}
        ratio = nmse / self.ref
        return out | {"mean_ratio": float(ratio.mean()), "worst_ratio": float(ratio.max()),
                      "worst_k": int(ratio.argmax() + 1), "ratio_per_k": [float(r) for r in ratio]}


def least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Min-norm least squares on each prefix (the pseudo-inverse), the baseline at sigma = 0:
    computed here rather than asked of the `ols` solver, so that training depends on no solver."""
    x = x.astype(np.float64)
    out = np.zeros(y.shape)
    for i in range(1, x.shape[1]):
        w = np.linalg.pinv(x[:, :i]) @ y[:, :i, None]
        out[:, i] = np.einsum("nd,nd->n", x[:, i], w[..., 0])
    return out


# A run barely trained: its final mean ratio above PLATEAU_RATIO, or less than PLATEAU_GAIN of the
# way from predicting 0 to the oracle. The second catches the families where predicting 0 is
# itself near the oracle (the sample family's: about 1.5), where a ratio alone does not.
PLATEAU_RATIO, PLATEAU_GAIN = 2.0, 0.1


def barely_trained(final: dict, zero_ratio: float | None) -> bool:
    ratio = final.get("mean_ratio")
    if ratio is None:
        return False
    return ratio > PLATEAU_RATIO or (zero_ratio is not None and ratio - 1 > (1 - PLATEAU_GAIN) * (zero_ratio - 1))


def summary(result: dict) -> str:
    if "mean_ratio" in result:
        return (f"mean NMSE ratio to the oracle {result['mean_ratio']:.4f}, "
                f"worst {result['worst_ratio']:.4f} at k = {result['worst_k']}")
    return (f"mean NMSE {result['mean_nmse']:.4g} (sigma = 0; OLS {result['ols_mean_nmse']:.4g}, "
            f"argmin {result['argmin_mean_nmse']:.4g})")


def needed_checkpoints(specs, preset: str, dropout: float, seeds: int = 1) -> dict:
    """Checkpoint name -> a spec to train it from, for the cells of `mrbench run --seeds`:
    shifted and differently sized test specs share one; each seed has its own."""
    return {name: job.spec for name, job in _jobs([(s, preset, dropout) for s in specs], seeds).items()}


@dataclasses.dataclass(frozen=True)
class Job:
    spec: object  # the spec to train from (its training distribution and seed)
    preset: str
    dropout: float


def _jobs(variants, seeds: int, state_dir: Path | None = None) -> dict[str, Job]:
    jobs = {}
    # a saved training state counts as found: "auto" then continues the format that state began
    saved = None if state_dir is None else (lambda name: checkpoints.find(name) or state.exists(state_dir / name))
    for spec, preset, dropout in variants:
        for seeded in (spec.with_seed(spec.seed + r) for r in range(seeds)):
            chosen = checkpoints.resolve(seeded, preset, dropout, saved)
            jobs.setdefault(checkpoints.key(seeded, chosen, dropout), Job(seeded, chosen, dropout))
    return jobs


def suite_variants(suite, specs) -> list[tuple]:
    """(spec, preset, dropout) of every transformer cell the suite runs on the specs: each
    section's transformer labels, with the per-spec parameters (Fig. 3's dropout per n)."""
    out = []
    for spec in specs:
        for name, params in parse_solver_arg(suite.solvers_for(spec)):
            if name in ("transformer", "all"):
                out.append((spec, params.get("preset", "auto"), float(params.get("dropout", 0.0))))
    return out


def train_queue(suite: str, where: str | None, preset: str | None, dropout: float | None, seeds: int,
                device: str, recipe: Recipe, out_dir: Path, state_dir: Path | None, force: bool = False) -> list[dict]:
    """What `mrbench train` would do, one row per checkpoint: with no `preset`, every transformer
    variant the suite's cells run (the paper preset left to a GPU), else that preset and dropout
    on every spec; found ones are kept unless `force`. Each row: name, spec, preset, dropout,
    where it is (or how far its saved state got), and the training seconds left of the budget."""
    loaded = load_suite(suite)
    specs = filter_specs(loaded.specs, where)
    variants = suite_variants(loaded, specs) if preset is None else [(s, preset, dropout or 0.0) for s in specs]
    rows, saved_in = [], state_dir or out_dir
    for name, job in _jobs(variants, seeds, saved_in).items():
        found, prefix = checkpoints.find(name), saved_in / name
        done = state.seconds_done(prefix) if state.exists(prefix) else 0.0
        if found is not None and not force:
            status = "shipped" if found.parent == checkpoints.shipped_dir() else f"in {found.parent}"
        elif preset is None and job.preset == "paper" and not device.startswith("cuda"):
            status = "left to a GPU (paper preset; --preset paper trains it here)"
        elif recipe.seconds and done >= recipe.seconds:
            status = f"to train: its state is at {done:.0f} s, past the budget (--seconds N --resume extends it)"
        else:
            status = f"to train{f' (state saved at {done:.0f} s)' if done else ''}"
        left = max((recipe.seconds or 0.0) - done, 0.0) if status.startswith("to train") and recipe.seconds else None
        rows.append({"name": name, "spec": job.spec.name, "seed": job.spec.seed, "preset": job.preset,
                     "dropout": job.dropout, "status": status, "seconds_left": left, "job": job})
    return rows


def queue_text(rows: list[dict]) -> str:
    if not rows:
        return "no transformer cell in the selected specs: nothing to train"
    text = fmt.text_table({
        "checkpoint": [r["name"] for r in rows], "for spec": [r["spec"] for r in rows],
        "seed": [str(r["seed"]) for r in rows], "preset": [r["preset"] for r in rows],
        "dropout": [f"{r['dropout']:g}" for r in rows], "status": [r["status"] for r in rows],
        "estimated": [fmt.duration(r["seconds_left"]) if r["seconds_left"] is not None else "" for r in rows]},
        right=("seed", "dropout", "estimated"))
    todo = [r for r in rows if r["status"].startswith("to train")]
    total = sum(r["seconds_left"] or 0.0 for r in todo)
    if not todo:
        return text + f"\nnothing to train: the {len(rows)} checkpoints are there or left to a GPU"
    return text + (f"\n{len(todo)} of {len(rows)} checkpoints to train: about {fmt.duration(total)} of training "
                   f"(the recipe's budget, less what saved states did; evaluations not counted)")


def train_suite(suite: str, where: str | None, preset: str | None, recipe: Recipe, device: str, out_dir: Path | None,
                dropout: float | None = None, seeds: int = 1, echo=print, state_dir: Path | None = None,
                resume: bool = False, init_from: str | None = None, force: bool = False,
                start_if_missing: bool = False, state_every: float = 120.0, dry_run: bool = False,
                jobs: int = 1, executor: str = "serial", scheduler=None, lr_given: bool = False) -> list[Path]:
    """Train (or, with `resume`, continue) the checkpoints the suite's selected specs need:
    with no `preset`, every missing transformer variant its cells run (train_queue); else
    that preset and dropout for every spec. The training state lives in `state_dir`
    (default: beside the checkpoints) as NAME.state.safetensors and NAME.state.json;
    `init_from` names a checkpoint (or a path) whose weights the training starts from. `resume`
    without a saved state is an error unless `start_if_missing` (--resume-or-start). The
    trainings run through `mrbench run`'s executors: `jobs` local workers (one thread each on
    two cores with -j 2), or a Dask cluster (`executor="dask"`, `scheduler`). Unless `lr_given`
    (--lr), each job's family may lower the recipe's learning rate (Family.max_lr). `echo` says
    the queue's lines; each training prints its own where it runs."""
    commit = git_commit()  # the code that trains, not whatever is checked out at the end
    out_dir = out_dir or checkpoints.user_dir()
    rows = train_queue(suite, where, preset, dropout, seeds, device, recipe, out_dir, state_dir, force)
    if dry_run:
        echo(queue_text(rows))
        return []
    for r in rows:
        if not r["status"].startswith("to train"):
            echo(f"{r['name']} for {r['spec']} ({r['preset']} preset): {r['status']}")
    needed = {r["name"]: r["job"] for r in rows if r["status"].startswith("to train")}
    if init_from:
        _initial_weights(init_from)  # a bad name is an error before anything trains
    for name in filter(checkpoints.shipped, needed):  # only with --force
        effect = "replace" if Path(out_dir).resolve() == checkpoints.shipped_dir().resolve() else "shadow"
        echo(f"note: {name} is a shipped checkpoint: writing it to {out_dir} will {effect} the shipped model "
             f"in every later run (--force)")
    for name, job in needed.items():  # said before it trains: the new one takes over `transformer`
        older = checkpoints.shadowed(job.spec, job.preset, job.dropout)
        if older:
            echo(f"note: {name} will be what `transformer` runs on {job.spec.name}, in place of {older.stem} "
                 f"({checkpoints.CPU_PRESETS[0]} comes first; transformer[preset=...] still asks for either)")
    prefixes = {name: (state_dir or out_dir) / name for name in needed}
    damaged = [str(p) for p in prefixes.values() if state.partial(p)]
    if resume and damaged:  # a fresh run overwrites it anyway
        raise UserError(f"incomplete training state (one of NAME.state.safetensors and NAME.state.json): "
                        f"{', '.join(damaged)}; remove it to start afresh")
    absent = [name for name, p in prefixes.items() if not state.exists(p)]
    if resume and absent and not start_if_missing:
        raise UserError(f"--resume: no training state for {', '.join(absent)} in {state_dir or out_dir}; "
                        f"nothing to continue (--resume-or-start starts those afresh)")
    recipes = {name: recipe if lr_given else family_of(job.spec).training_recipe(recipe) for name, job in needed.items()}
    tasks = [TrainTask(name, job, recipes[name], device, str(out_dir), str(prefixes[name]), resume, init_from,
                       state_every, commit, progress=executor == "serial" and jobs == 1) for name, job in needed.items()]
    runner = make_executor(executor, jobs, None, device, scheduler)
    failed = []
    try:
        runner.run(tasks, lambda name, status: failed.append(name) if status != OK else None)
    except BaseException:  # Ctrl-C: the training states are saved, no worker outlives it
        runner.stop()
        raise
    finally:
        runner.close()
    if failed:
        raise UserError(f"{len(failed)} of {len(tasks)} trainings failed: {', '.join(failed)} (their states, if "
                        f"any, are kept: --resume continues them)")
    return [Path(out_dir) / f"{t.name}.safetensors" for t in tasks]


@dataclasses.dataclass
class _Key:
    key: str


@dataclasses.dataclass
class TrainTask:
    """One checkpoint's training as a task the executors run (`mrbench train -j N`, or on a Dask
    cluster) beside `mrbench run`'s: its one "cell" is the checkpoint's name."""
    name: str
    job: Job
    recipe: Recipe
    device: str
    out: str
    prefix: str
    resume: bool
    init_from: str | None
    state_every: float
    commit: str
    progress: bool = True

    @property
    def cells(self) -> list[_Key]:
        return [_Key(self.name)]

    def rest(self, done: set[str]) -> "TrainTask":
        return self

    def train_spec(self):
        return train_spec(self.job.spec)

    def execute(self, on_start=lambda key: None, on_done=lambda key, status: None) -> None:
        on_start(self.name)
        train_one(self)
        on_done(self.name, OK)

    def fail(self, key: str, status: str, error: str) -> None:  # its saved state is its record
        print(f"training {self.name} {status}: {error}", file=sys.stderr)

    def fail_unwritten(self, error: str) -> list[tuple[str, str]]:
        self.fail(self.name, FAILED, error)
        return [(self.name, FAILED)]


def train_one(task: TrainTask, echo=print) -> Path:
    """Train (or continue) one checkpoint and write it with its sidecar."""
    job, recipe, device, prefix = task.job, task.recipe, task.device, Path(task.prefix)
    spec, preset = job.spec, job.preset
    budget = f"{recipe.seconds:g} s" if recipe.seconds else f"{recipe.steps} steps"
    echo(f"{'resuming' if task.resume and state.exists(prefix) else 'training'} {task.name} for {spec.name} "
         f"({preset} preset, dropout {job.dropout:g}, {recipe.name} recipe at lr {recipe.lr:g}, {budget}, device {device})")
    init = _initial_weights(task.init_from) if task.init_from else None
    cfg = Config(d=spec.d, max_pairs=spec.k_max + 1, dropout=job.dropout, **preset_shape(preset))
    train = train_data(spec)
    evaluate = Evaluator(spec, device)
    try:
        model, hist = train_model(train, cfg, recipe, device, seed=spec.seed, evaluate=evaluate, state=prefix,
                                  resume=task.resume, init=init and init[0], state_every=task.state_every,
                                  progress=task.progress)
    except state.DamagedState as exc:
        raise UserError(str(exc)) from None
    final = evaluate(model)
    said = f"  {task.name}: " if not task.progress else "  "
    echo(f"{said}{summary(final)}, {hist.seconds:.1f} s (+ {hist.first_step_seconds:.1f} s first step)"
         + (f"; stopped early at {hist.stopped['seconds']:.0f} s of the budget" if hist.stopped else "")
         + (f"; the weights of its best held-out evaluation, at {hist.kept['seconds']:.0f} s"
            if hist.kept and hist.kept["step"] != hist.steps else ""))
    if barely_trained(final, evaluate.zero_ratio):
        echo(f"{said}barely trained: mean ratio {final['mean_ratio']:.2f} to the oracle, where predicting 0 scores "
             f"{evaluate.zero_ratio:.2f}: a budget this short, or a run still on the initial plateau; "
             "docs/transformer.md gives the budgets and recipes that train (to a ratio of 1.05 at m = 5: about "
             "1,300 s on one core)")
    meta = {"training": train.spec.fields(), "preset": preset, "recipe": recipe.to_dict(),
            "steps": hist.steps, "samples": hist.samples, "wall_seconds": round(hist.seconds, 3),
            "first_step_seconds": round(hist.first_step_seconds, 3), "resumed_at": hist.resumed_at,
            "device": device, "device_name": device_name(device, torch.get_num_threads()), "final": final,
            "evals": hist.evals, "stopped_early": hist.stopped, "kept": hist.kept,
            "loss": hist.loss, "init_from": init and init[1],
            "mrbench_version": __version__, "git_commit": task.commit,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path = checkpoints.save(model, meta, Path(task.out), task.name)
    echo(f"{said}wrote {path}")
    return path


def _initial_weights(source: str) -> tuple[dict, dict]:
    """The weights of a checkpoint (a name, found as the solver finds it, or a path) and a
    record of where they came from, for the sidecar."""
    path = Path(source) if source.endswith(".safetensors") else checkpoints.find(source)
    if path is None or not path.exists():
        raise UserError(f"--init-from {source!r}: no such checkpoint (a name NAME as in NAME.safetensors "
                        f"in {checkpoints.user_dir()} or the package, or a path to a .safetensors file)")
    try:
        model, meta = checkpoints.load(path)
    except checkpoints.CheckpointError as exc:
        raise UserError(f"--init-from: {exc}") from None
    origin = {k: meta.get(k) for k in ("preset", "steps", "samples", "wall_seconds", "device_name", "init_from")}
    sigma = meta.get("training", {}).get("sigma")
    return model.state_dict(), {"checkpoint": path.stem, "sigma": sigma, **origin}
