"""Training the in-context regressor: fresh prompts every step, or a fixed training set with
each prompt's pairs shuffled and its prefix dropped (Pathak et al., Appendix C.1).

Shapes stay fixed for the whole run (a curriculum on the number of pairs masks the loss instead
of shortening the prompts), so torch.compile compiles once. On CUDA, by default: bf16 autocast
and torch.compile; on the CPU: float32, deterministic under the seed.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..data import TrainData, make_dataset
from ..predictors import oracle_predictions
from ..solver import one_of
from .model import Config, InContextRegressor


@dataclass
class Recipe:
    steps: int = 20000
    seconds: float | None = None  # wall-clock budget; whichever of steps/seconds ends first
    batch_size: int = 256
    lr: float = 3e-4
    warmup: int = 500
    weight_decay: float = 0.0
    # number of pairs trained on: 11, growing by 2 up to k_max + 1 half-way through the budget
    curriculum: bool = False
    # "uniform": plain MSE over all positions; "oracle": each position's squared error divided
    # by the oracle's MSE there (plus 1% of E[y^2], so sigma = 0 stays finite), which makes the
    # loss track the mean NMSE ratio to the oracle and weighs short prefixes by their ratio
    position_weights: str = "uniform"
    compile: bool | None = None  # torch.compile; None: on CUDA only
    bf16: bool | None = None  # bf16 autocast; None: on CUDA only
    eval_every: int = 1000

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class History:
    """`seconds` is training time after the first step (which compiles on CUDA) and without
    evaluations: the time a seconds budget and every evaluation's "seconds" count."""

    steps: int = 0
    samples: int = 0
    seconds: float = 0.0
    first_step_seconds: float = 0.0
    loss: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)


class Sampler:
    """Batches on the training device: fresh prompts drawn with torch (same law as the numpy
    generator, another stream), or a fixed set, each prompt's pairs in a random order."""

    def __init__(self, train: TrainData, device: str, gen: torch.Generator):
        self.train, self.device, self.gen = train, device, gen
        self.spec = train.spec
        if train.streaming:
            self.pool = torch.as_tensor(train._pool, dtype=torch.float32, device=device)
            pi = np.full(self.spec.m, 1.0 / self.spec.m) if self.spec.pi is None else self.spec.pi
            self.pi = torch.tensor(pi, dtype=torch.float32, device=device)  # once: no copy per step
        else:
            data = train.fixed()
            self.x = torch.as_tensor(data.x, device=device)
            self.y = torch.as_tensor(data.y, dtype=torch.float32, device=device)

    def __call__(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.train.streaming:
            idx = torch.randint(len(self.x), (b,), generator=self.gen, device=self.device)
            order = torch.rand((b, self.x.shape[1]), generator=self.gen, device=self.device).argsort(1)
            return (torch.take_along_dim(self.x[idx], order[..., None], 1),
                    torch.take_along_dim(self.y[idx], order, 1))
        s, K = self.spec, self.train.K
        x = torch.randn((b, K, s.d), generator=self.gen, device=self.device)
        noise = torch.randn((b, K), generator=self.gen, device=self.device)
        if s.family == "sample":
            z = torch.multinomial(self.pi, b * K, replacement=True, generator=self.gen).view(b, K)
            betas = self._betas(b)
            w = torch.take_along_dim(betas, z[..., None], 1)  # (b, K, d)
            return x, (x * w).sum(-1) + s.sigma * noise
        z = torch.multinomial(self.pi, b, replacement=True, generator=self.gen)
        return x, torch.einsum("bkd,bd->bk", x, self.pool[z]) + s.sigma * noise

    def _betas(self, b):
        s = self.spec
        if s.components == "fixed":
            B = self.pool / math.sqrt(s.d) * s.snr * s.sigma
            B = B.expand(b, -1, -1)
        else:
            g = torch.randn((b, s.m, s.d), generator=self.gen, device=self.device)
            B = g / g.norm(dim=-1, keepdim=True) * s.snr * s.sigma
        return torch.stack([B[:, 0], -B[:, 0]], 1) if s.symmetric else B


def _progress(step: int, start: int, total: int, recipe: Recipe, seconds: float) -> float:
    """Fraction of the budget used from `start` on: steps, or training seconds when
    `recipe.seconds` is set, whichever runs out first."""
    progress = (step - start) / max(1, total - start)
    if recipe.seconds:
        progress = max(progress, seconds / recipe.seconds)
    return min(1.0, progress)


def lr_at(step: int, recipe: Recipe, total: int, seconds: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak at the end of the budget."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = _progress(step, recipe.warmup, total, recipe, seconds)
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def pairs_at(step: int, recipe: Recipe, total: int, K: int, seconds: float = 0.0) -> int:
    """Curriculum: pairs the loss counts, from 11 up by 2 to all K at half the budget, so
    that the second half trains on whole prompts whatever the budget."""
    if not recipe.curriculum:
        return K
    start = min(11, K)
    half = min(1.0, 2 * _progress(step, 0, total, recipe, seconds))
    return min(K, start + 2 * int(half * math.ceil((K - start) / 2)))


def position_weights(train: TrainData, n: int = 4096) -> torch.Tensor:
    """1 / (oracle MSE at each position + 1% of E[y^2]) on n held-out prompts, mean 1: (K,)."""
    ds = make_dataset(dataclasses.replace(train.spec, n_test=n, seed=train.spec.seed + 2_000_003))
    mse = ((oracle_predictions(ds) - ds.test.y) ** 2).mean(0)
    w = 1.0 / (mse + 0.01 * (ds.test.y**2).mean())
    return torch.as_tensor(w / w.mean(), dtype=torch.float32)


def train_model(train: TrainData, cfg: Config, recipe: Recipe, device: str = "cpu", seed: int = 0,
                evaluate=None, progress: bool = True) -> tuple[InContextRegressor, History]:
    """Train a fresh model; `evaluate(model) -> dict` is called every `eval_every` steps."""
    one_of("position_weights", recipe.position_weights, ("uniform", "oracle"))
    weights = position_weights(train).to(device) if recipe.position_weights == "oracle" else None
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    model = InContextRegressor(cfg).to(device)
    cuda = device.startswith("cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, fused=cuda or None)
    bf16 = cuda if recipe.bf16 is None else recipe.bf16
    # the uncompiled model evaluates and predicts: other batch sizes never recompile
    step_fn = torch.compile(model) if (cuda if recipe.compile is None else recipe.compile) else model
    sample, K = Sampler(train, device, gen), cfg.max_pairs
    hist = History()
    from tqdm.auto import tqdm

    # with a seconds budget the bar counts training seconds, so that its ETA means something
    timed = recipe.seconds is not None
    bar = tqdm(total=recipe.seconds if timed else recipe.steps, disable=not progress,
               unit="s" if timed else "step", dynamic_ncols=True)

    def clock() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    start = clock()
    model.train()
    for step in range(recipe.steps):
        elapsed = hist.seconds + time.perf_counter() - start
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe, recipe.steps, elapsed)
        x, y = sample(recipe.batch_size)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            pred = step_fn(x, y)
        err = (pred.float() - y) ** 2
        if weights is not None:
            err = err * weights
        # the curriculum masks the pairs beyond the current length: the shapes stay fixed
        loss = err[:, : pairs_at(step, recipe, recipe.steps, K, elapsed)].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hist.steps, hist.samples = step + 1, hist.samples + recipe.batch_size
        if step == 0:  # compilation happens here; the clocks start after it
            hist.first_step_seconds = clock() - start
            start = clock()
        if step % 50 == 0 or step == recipe.steps - 1:
            hist.loss.append(loss.item())
            bar.set_postfix(loss=f"{hist.loss[-1]:.4f}", **({"step": step + 1} if timed else {}), refresh=False)
        if evaluate is not None and (step + 1) % recipe.eval_every == 0:
            hist.seconds += clock() - start
            model.eval()
            hist.evals.append({"step": step + 1, "seconds": hist.seconds, **evaluate(model)})
            model.train()
            start = clock()
        elapsed = hist.seconds + time.perf_counter() - start
        bar.update(min(elapsed, recipe.seconds) - bar.n if timed else 1)
        if timed and elapsed >= recipe.seconds:
            break
    hist.seconds += clock() - start
    bar.close()
    model.eval()
    return model, hist


@torch.no_grad()
def predict(model: InContextRegressor, x: np.ndarray, y: np.ndarray, device: str = "cpu",
            chunk: int = 1024) -> np.ndarray:
    out = []
    for lo in range(0, len(x), chunk):
        xb = torch.as_tensor(x[lo:lo + chunk], dtype=torch.float32, device=device)
        yb = torch.nan_to_num(torch.as_tensor(y[lo:lo + chunk], dtype=torch.float32, device=device))
        out.append(model(xb, yb).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64)
