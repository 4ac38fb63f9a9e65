"""Training the in-context regressor: fresh prompts every step, or a fixed training set with
each prompt's pairs shuffled and its prefix dropped (Pathak et al., Appendix C.1).

A curriculum on the number of pairs shortens the prompts when the model is not compiled (the
CPU: a step costs what its prompts do) and masks the loss when it is (CUDA: shapes stay fixed,
so torch.compile compiles once). On CUDA, by default: bf16 autocast and torch.compile; on the
CPU: float32 eager (faster there than bf16 or compiled), deterministic under the seed with a
step budget, also across `resume`.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import torch

from ..data import TrainData, make_dataset, oracle_predictions
from ..families import family_of
from ..solver import one_of
from .config import RECIPES, Recipe  # noqa: F401  (re-exported)
from .model import Config, InContextRegressor


@dataclass
class History:
    """`seconds` is training time after the first step of each process (which compiles on
    CUDA) and without evaluations: the time a seconds budget and every evaluation's
    "seconds" count."""

    steps: int = 0
    samples: int = 0
    seconds: float = 0.0
    first_step_seconds: float = 0.0
    pairs: int = 0  # the curriculum's position: never shrinks, also when a resumed run extends the budget
    dims: int = 0
    grow_from: float | None = None  # the budget position where the curriculum started to grow
    plateau_ema: list[float] = field(default_factory=list)  # running training loss and mean y^2 until then
    loss: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    resumed_at: list[int] = field(default_factory=list)  # steps at which training was resumed
    # the lowest learning rate used after the warm-up: a resumed run with a larger budget never
    # steps above it (re-stretching the cosine would raise it again, and undo the decay's gains)
    lr_cap: float | None = None
    stopped: dict | None = None  # why a fixed-set run stopped before its budget (Recipe.patience)
    kept: dict | None = None  # a fixed set: the evaluation whose weights the run returns (BestWeights)


class Sampler:
    """Batches on the training device: fresh prompts from the data family's torch sampler (its
    law, another stream), or a fixed set, each prompt's pairs in a random order."""

    def __init__(self, train: TrainData, device: str, gen: torch.Generator):
        self.train, self.device, self.gen = train, device, gen
        if train.streaming:
            self.fresh = family_of(train.spec).sampler(train.spec, train._pool, device, gen)
        else:
            data = train.fixed()
            self.x = torch.as_tensor(data.x, device=device)
            self.y = torch.as_tensor(data.y, dtype=torch.float32, device=device)

    def __call__(self, b: int, pairs: int | None = None, dims: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """b prompts of `pairs` pairs (default all P): fresh ones are drawn that long, a fixed
        set's are shuffled and cut to it (the prefix randomly dropped, Appendix C.1). Fresh
        prompts' x are zero beyond the first `dims` coordinates (a fixed set's are as stored)."""
        P = pairs or self.train.pairs
        if self.train.streaming:
            return self.fresh(b, P, dims)
        idx = torch.randint(len(self.x), (b,), generator=self.gen, device=self.device)
        order = torch.rand((b, self.x.shape[1]), generator=self.gen, device=self.device).argsort(1)[:, :P]
        return (torch.take_along_dim(self.x[idx], order[..., None], 1),
                torch.take_along_dim(self.y[idx], order, 1))


def _progress(step: int, start: int, total: int, recipe: Recipe, seconds: float) -> float:
    """Fraction of the budget used from `start` on: steps, or training seconds when
    `recipe.seconds` is set, whichever runs out first."""
    progress = (step - start) / max(1, total - start)
    if recipe.seconds:
        progress = max(progress, seconds / recipe.seconds)
    return min(1.0, progress)


def warmed_up(step: int, recipe: Recipe, total: int, seconds: float = 0.0) -> bool:
    if recipe.warmup >= 1:
        return step >= recipe.warmup
    return _progress(step, 0, total, recipe, seconds) >= recipe.warmup


def lr_at(step: int, recipe: Recipe, total: int, seconds: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak at the end of the budget (or
    the peak throughout, with schedule = "constant")."""
    if recipe.warmup == 0 and recipe.schedule == "constant":
        return recipe.lr
    if recipe.warmup >= 1:  # in steps
        if step < recipe.warmup:
            return recipe.lr * (step + 1) / recipe.warmup
        progress = _progress(step, int(recipe.warmup), total, recipe, seconds)
    else:  # a fraction of the budget
        progress = _progress(step, 0, total, recipe, seconds)
        if progress < recipe.warmup:
            return recipe.lr * max(progress / recipe.warmup, 0.01)
        progress = (progress - recipe.warmup) / (1 - recipe.warmup)
    if recipe.schedule == "constant":
        return recipe.lr
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


# The curriculum holds its first length until the model leaves the initial plateau (its
# training loss below PLATEAU_EXIT times the mean y^2 of the batches: a quarter of the label
# variance explained in context; the oracle itself explains about 60% on 11 pairs in 5
# dimensions), or until this fraction of the budget has passed, whichever comes first.
PLATEAU_EXIT, HOLD_AT_MOST = 0.75, 0.25


def _grown(step: int, recipe: Recipe, total: int, seconds: float, grow_from: float | None) -> float:
    """How far the curriculum has grown, 0 to 1: 0 until the budget position `grow_from`
    (None: not yet), then linearly to 1 over `curriculum_share` of the rest of the budget (half
    by default), so that the end trains on whole prompts whatever the budget."""
    if grow_from is None:
        return 0.0
    progress = _progress(step, 0, total, recipe, seconds)
    return min(1.0, max(0.0, progress - grow_from) / max((1 - grow_from) * recipe.curriculum_share, 1e-9))


def pairs_at(step: int, recipe: Recipe, total: int, P: int, seconds: float = 0.0,
             grow_from: float | None = 0.0) -> int:
    """Curriculum: pairs trained on, from 11 up by 2 to all P."""
    if not recipe.curriculum:
        return P
    start = min(11, P)
    if recipe.phase_steps:
        return min(P, start + 2 * (step // recipe.phase_steps))
    return min(P, start + 2 * int(_grown(step, recipe, total, seconds, grow_from) * math.ceil((P - start) / 2)))


def dims_at(step: int, recipe: Recipe, total: int, d: int, seconds: float = 0.0,
            grow_from: float | None = 0.0) -> int:
    """Curriculum on the dimension (Garg et al.), for fresh prompts: x is zero beyond the
    first dims_at coordinates, from 5 up by 1 to all d, growing with the pairs."""
    if not (recipe.curriculum and recipe.curriculum_dims):
        return d
    start = min(5, d)
    if recipe.phase_steps:
        return min(d, start + step // recipe.phase_steps)
    return start + int(_grown(step, recipe, total, seconds, grow_from) * (d - start))


def position_weights(train: TrainData, n: int = 4096) -> torch.Tensor:
    """1 / (oracle MSE at each position + 1% of E[y^2]) on n held-out prompts, mean 1: (P,)."""
    ds = make_dataset(dataclasses.replace(train.spec, n_test=n, seed=train.spec.seed + 2_000_003))
    mse = ((oracle_predictions(ds) - ds.test.y) ** 2).mean(0)
    w = 1.0 / (mse + 0.01 * (ds.test.y**2).mean())
    return torch.as_tensor(w / w.mean(), dtype=torch.float32)


class Curriculum:
    """Pairs and dims trained on, from the position in the budget: the first length is held
    until the loss leaves the initial plateau (or HOLD_AT_MOST of the budget has passed), then
    grows; it never shrinks, also when a resumed run extends the budget. Kept in `hist`."""

    def __init__(self, recipe: Recipe, hist: History, P: int, d: int):
        self.recipe, self.hist, self.P, self.d = recipe, hist, P, d

    @property
    def on_plateau(self) -> bool:
        return self.recipe.curriculum and not self.recipe.phase_steps and self.hist.grow_from is None

    def advance(self, step: int, elapsed: float) -> None:
        r, h = self.recipe, self.hist
        if self.on_plateau and _progress(step, 0, r.steps, r, elapsed) >= HOLD_AT_MOST:
            h.grow_from = HOLD_AT_MOST
        h.pairs = max(h.pairs, pairs_at(step, r, r.steps, self.P, elapsed, h.grow_from))
        h.dims = max(h.dims, dims_at(step, r, r.steps, self.d, elapsed, h.grow_from))

    def observe(self, step: int, loss: torch.Tensor, y: torch.Tensor, elapsed) -> None:
        """After a step on the plateau: has the training loss left it? (`elapsed()`: where.)"""
        if not self.on_plateau:
            return
        h = self.hist
        now = [loss.item(), (y[:, : h.pairs].float() ** 2).mean().item()]
        ema = h.plateau_ema or now
        h.plateau_ema = [0.98 * a + 0.02 * b for a, b in zip(ema, now)]
        if step >= 100 and h.plateau_ema[0] < PLATEAU_EXIT * h.plateau_ema[1]:
            h.grow_from = _progress(step, 0, self.recipe.steps, self.recipe, elapsed())


class Clock:
    """Training seconds, kept in `hist`: after the first step of each process (which compiles on
    CUDA), without evaluations."""

    def __init__(self, hist: History, cuda: bool):
        self.hist, self.cuda = hist, cuda
        self.start = self.now()

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def elapsed(self) -> float:
        return self.hist.seconds + time.perf_counter() - self.start

    def first_step_done(self) -> None:
        self.hist.first_step_seconds += self.now() - self.start
        self.start = self.now()

    def pause(self) -> None:
        if self.start is not None:
            self.hist.seconds += self.now() - self.start
            self.start = None

    def resume(self) -> None:
        self.start = self.now()


class Evaluations:
    """`evaluate(model) -> dict` every `eval_every` steps or `eval_seconds` training seconds,
    recorded in `hist.evals` with the position it was made at."""

    def __init__(self, evaluate, recipe: Recipe, hist: History):
        self.evaluate, self.recipe, self.hist = evaluate, recipe, hist
        self.due_at = (hist.evals[-1]["seconds"] if hist.evals else 0.0) + (recipe.eval_seconds or math.inf)

    def due(self, step: int, elapsed: float) -> bool:
        return self.evaluate is not None and ((step + 1) % self.recipe.eval_every == 0 or elapsed >= self.due_at)

    def run(self, model: InContextRegressor, step: int) -> None:
        h = self.hist
        model.eval()
        h.evals.append({"step": step + 1, "seconds": h.seconds, "samples": h.samples, "pairs": h.pairs,
                        **self.evaluate(model)})
        model.train()
        self.due_at = h.seconds + (self.recipe.eval_seconds or math.inf)


def held_out_score(evaluation: dict) -> float | None:
    """The score an evaluation is judged by: the mean ratio to the oracle (at sigma = 0 the mean NMSE)."""
    return evaluation.get("mean_ratio", evaluation.get("mean_nmse"))


class BestWeights:
    """A fixed training set's run returns the weights of its best held-out evaluation, not its
    last ones: a small set is over-fitted within the budget (measured: jin2024's n = 20 set of
    2000 prompts went from a mean ratio of 1.066 at 840 training s to 1.250 at 1560 s). Which
    evaluation it was is `hist.kept`; the weights travel with the training state."""

    def __init__(self, hist: History, weights: dict | None = None):
        self.hist, self.weights = hist, weights

    def offer(self, model: InContextRegressor) -> None:
        """After an evaluation: keep the model's weights if it is the best so far."""
        last = self.hist.evals[-1]
        score = held_out_score(last)
        if score is not None and (self.hist.kept is None or score < self.hist.kept["score"]):
            self.hist.kept = {"step": last["step"], "seconds": last["seconds"], "samples": last["samples"],
                              "score": score}
            self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def restore(self, model: InContextRegressor) -> None:
        if self.weights is not None:
            model.load_state_dict(self.weights)

    def tensors(self) -> dict:
        return {} if self.weights is None else {f"best.{k}": v for k, v in self.weights.items()}


class StateSaver:
    """The training state under the path prefix `path` (None: nowhere), saved when asked and
    every `every` wall seconds."""

    def __init__(self, path, every: float, model, opt, gen, hist: History, meta: dict, best: BestWeights | None):
        self.path, self.every, self.parts, self.meta, self.best = path, every, (model, opt, gen, hist), meta, best
        self.last = time.perf_counter()

    def save(self) -> None:
        from . import state as saved

        if self.path is not None:
            saved.save(self.path, *self.parts, self.meta, extra=self.best.tensors() if self.best else None)
        self.last = time.perf_counter()

    def periodic(self) -> None:
        if time.perf_counter() - self.last >= self.every:
            self.save()


def _set_lr(opt, step: int, recipe: Recipe, hist: History, elapsed: float) -> None:
    """The schedule's rate, never above the lowest reached after the warm-up (hist.lr_cap)."""
    lr = lr_at(step, recipe, recipe.steps, elapsed)
    if hist.lr_cap is not None:
        lr = min(lr, hist.lr_cap)
    if warmed_up(step, recipe, recipe.steps, elapsed):
        hist.lr_cap = lr
    for group in opt.param_groups:
        group["lr"] = lr


def _step(step_fn, opt, x: torch.Tensor, y: torch.Tensor, pairs: int, weights, bf16: bool) -> torch.Tensor:
    """One optimizer step on the (position-weighted) squared error of the first `pairs` positions."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        pred = step_fn(x, y)
    err = (pred.float() - y) ** 2
    if weights is not None:
        err = err * weights[: err.shape[1]]
    loss = err[:, :pairs].mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def train_model(train: TrainData, cfg: Config, recipe: Recipe, device: str = "cpu", seed: int = 0,
                evaluate=None, progress: bool = True, state=None, resume: bool = False,
                state_every: float = 120.0, init=None) -> tuple[InContextRegressor, History]:
    """Train a model; `evaluate(model) -> dict` is called every `eval_every` steps (or
    `eval_seconds` training seconds).

    With `state` (a path prefix), the training state is saved there at the first evaluation,
    every `state_every` wall seconds, at the end and on KeyboardInterrupt (SIGINT; the CLI maps
    SIGTERM to it); with `resume`, training continues from it.
    The schedule is a function of the position in the budget (steps, or seconds), so a resumed
    run with a larger budget stretches the rest of its cosine and curriculum over the new
    budget; neither goes back: the curriculum never shrinks, and the learning rate never rises
    above the lowest it reached after the warm-up. On the CPU with a step budget, a run resumed at any
    step ends with the same weights as one never interrupted. `init`: a state dict the weights
    start from (fine-tuning), instead of the random initialization."""
    from . import state as saved

    one_of("position_weights", recipe.position_weights, ("uniform", "oracle"))
    one_of("schedule", recipe.schedule, ("cosine", "constant"))
    if not 0 < recipe.curriculum_share <= 1:
        raise ValueError(f"curriculum_share={recipe.curriculum_share!r}: must be in (0, 1]")
    weights = position_weights(train).to(device) if recipe.position_weights == "oracle" else None
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    model = InContextRegressor(cfg).to(device)
    if init is not None:
        model.load_state_dict(init)
    cuda = device.startswith("cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, fused=cuda or None)
    hist, kept_weights = History(), None
    if resume and state is not None and saved.exists(state):
        doc = saved.load(state, model, opt, gen)
        hist, kept_weights = History(**doc["history"]), doc["extra"].get("best")
        hist.resumed_at.append(hist.steps)
        hist.stopped = None  # judged again at the next evaluation
    best = None if train.streaming else BestWeights(hist, kept_weights)
    bf16 = cuda if recipe.bf16 is None else recipe.bf16
    compiled = cuda if recipe.compile is None else recipe.compile
    # the uncompiled model evaluates and predicts: other batch sizes never recompile
    step_fn = torch.compile(model) if compiled else model
    sample, curriculum = Sampler(train, device, gen), Curriculum(recipe, hist, cfg.max_pairs, cfg.d)
    saver = StateSaver(state, state_every, model, opt, gen, hist, {
        "recipe": recipe.to_dict(), "config": cfg.to_dict(), "training": train.spec.canonical(), "seed": seed}, best)
    evals, bar, first = Evaluations(evaluate, recipe, hist), _Bar(recipe, hist, progress, train.streaming), hist.steps
    clock = Clock(hist, cuda)
    model.train()
    try:
        for step in range(first, recipe.steps):
            elapsed = clock.elapsed()
            if recipe.seconds is not None and elapsed >= recipe.seconds:
                break
            _set_lr(opt, step, recipe, hist, elapsed)
            curriculum.advance(step, elapsed)
            # compiled: full prompts and a masked loss (fixed shapes); else prompts that long
            x, y = sample(recipe.batch_size, None if compiled else hist.pairs, hist.dims)
            loss = _step(step_fn, opt, x, y, hist.pairs, weights, bf16)
            curriculum.observe(step, loss, y, clock.elapsed)
            hist.steps, hist.samples = step + 1, hist.samples + recipe.batch_size
            if step == first:  # compilation happens here; the clocks start after it
                clock.first_step_done()
            if step % 50 == 0 or step == recipe.steps - 1:
                hist.loss.append(loss.item())
            if evals.due(step, clock.elapsed()):
                clock.pause()  # evaluations are not training time
                evals.run(model, step)
                bar.evaluated(hist.evals[-1])
                if best is not None:
                    best.offer(model)
                    hist.stopped = stalled(hist.evals, recipe.patience, cfg.max_pairs)
                if len(hist.evals) == 1:  # a kill from here on never loses the run
                    saver.save()
                clock.resume()
            bar.update(clock.elapsed(), loss, y)
            saver.periodic()
            if hist.stopped:
                bar.note(f"stopped early: {hist.stopped['why']}")
                break
    except KeyboardInterrupt:
        clock.pause()
        saver.save()
        bar.close()
        raise
    clock.pause()
    saver.save()  # the last weights: a resumed run continues from them
    bar.close()
    if best is not None:
        best.restore(model)
    model.eval()
    return model, hist


def stalled(evals: list[dict], patience: int | None, pairs: int, tolerance: float = 1e-3,
            window: int = 3) -> dict | None:
    """Why training should stop, or None: on whole prompts (`pairs`), the held-out score (the
    mean ratio to the oracle, at sigma = 0 the mean NMSE), averaged over the last `window`
    evaluations (one evaluation's noise, about 1% on 2000 prompts, would stop a run that still
    improves), has not fallen below (1 - tolerance) times its best for `patience` evaluations."""
    scored = [e for e in evals if e.get("pairs") == pairs and held_out_score(e) is not None]
    if not patience or len(scored) < window + patience:
        return None
    score = "mean_ratio" if "mean_ratio" in scored[0] else "mean_nmse"  # its name, for the message
    values = [held_out_score(e) for e in scored]
    smooth = [sum(values[i - window + 1:i + 1]) / window for i in range(window - 1, len(values))]
    best, since = 0, 0
    for i in range(1, len(smooth)):
        best, since = (i, 0) if smooth[i] < (1 - tolerance) * smooth[best] else (best, since + 1)
    if since < patience:
        return None
    at, last = scored[best + window - 1], scored[-1]
    return {"seconds": last["seconds"], "step": last["step"], "best_seconds": at["seconds"], "best": smooth[best],
            "why": f"the held-out {score.replace('_', ' ')}, averaged over {window} evaluations, has not improved on "
                   f"its best ({smooth[best]:.4f} to {at['seconds']:.0f} training s) by {tolerance:.1%} in {patience} "
                   f"evaluations (to {last['seconds']:.0f} s, where it is {smooth[-1]:.4f}): a fixed training set "
                   f"stops there"}


class _Bar:
    """Progress in whole training seconds (with a seconds budget: the time left is the budget's
    rest, not a rate's guess) or steps, with steps/s, the loss as a share of the labels' mean
    square (the raw loss grows with the curriculum's prompts) and the latest evaluation."""

    def __init__(self, recipe: Recipe, hist: History, enabled: bool, streaming: bool):
        from tqdm.auto import tqdm

        # a fixed set's x are used as stored: the dimension curriculum applies to fresh prompts only
        self.timed, self.hist, self.show_dims = recipe.seconds is not None, hist, streaming
        total = recipe.seconds if self.timed else recipe.steps
        unit = "s" if self.timed else "step"
        left = "{postfix}" if self.timed else "<{remaining}{postfix}"
        fmt = "{l_bar}{bar}| {n:.0f}/{total:.0f} " + unit + " [{elapsed}" + left + "]"
        self.bar = tqdm(total=total, initial=hist.seconds if self.timed else hist.steps, disable=not enabled,
                        bar_format=fmt, dynamic_ncols=True, mininterval=1.0)
        self.t0, self.step0 = time.perf_counter(), hist.steps

    def update(self, elapsed: float, loss: torch.Tensor, y: torch.Tensor) -> None:
        if self.bar.disable:
            return
        self.bar.update(min(elapsed, self.bar.total) - self.bar.n if self.timed else 1)
        if self.hist.steps % 20 == 0 or self.hist.steps == self.step0 + 1:
            rate = (self.hist.steps - self.step0) / max(time.perf_counter() - self.t0, 1e-9)
            share = loss.item() / max((y[:, : self.hist.pairs].float() ** 2).mean().item(), 1e-12)
            left = f", {_hms(max(self.bar.total - elapsed, 0))} left" if self.timed else ""
            post = f"{left}, step {self.hist.steps}, {rate:.1f} steps/s, loss {share:.3f} of E[y²]"
            if self.hist.pairs:
                post += f", {self.hist.pairs} pairs" + (f" in {self.hist.dims} dims" if self.hist.dims and self.show_dims else "")
            last = self.hist.evals[-1] if self.hist.evals else {}
            if "mean_ratio" in last:
                post += f", ratio {last['mean_ratio']:.3f} (worst {last['worst_ratio']:.2f})"
            elif "mean_nmse" in last:
                post += f", NMSE {last['mean_nmse']:.4f}"
            self.bar.set_postfix_str(post.lstrip(", "), refresh=False)

    def evaluated(self, entry: dict) -> None:
        """One line per evaluation, above the bar, so that the learning curve stays on screen."""
        if self.bar.disable:
            return
        where = (f"{entry['seconds']:.0f} training s" if self.timed else f"step {entry['step']}") + \
            f", {entry['samples'] / 1e6:.2f}M prompts" + (f", {entry['pairs']} pairs" if entry.get("pairs") else "")
        if "mean_ratio" in entry:
            what = (f"mean NMSE ratio to the oracle {entry['mean_ratio']:.4f} "
                    f"(worst {entry['worst_ratio']:.2f} at k = {entry['worst_k']})")
        else:
            what = f"mean NMSE {entry['mean_nmse']:.4g}"
        self.note(f"evaluation at {where}: {what}")

    def note(self, text: str) -> None:
        if not self.bar.disable:
            self.bar.write(text)

    def close(self) -> None:
        self.bar.close()


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
