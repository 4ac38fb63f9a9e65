"""Training the in-context regressor: fresh prompts every step, or a fixed training set with
each prompt's pairs shuffled and its prefix dropped (Pathak et al., Appendix C.1).

Shapes stay fixed for the whole run (a curriculum on the number of pairs masks the loss instead
of shortening the prompts), so torch.compile compiles once. On CUDA: bf16 autocast, TF32,
torch.compile; on the CPU: float32, deterministic under the seed.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..data import TrainData
from .model import Config, InContextRegressor


@dataclass
class Recipe:
    steps: int = 20000
    seconds: float | None = None  # wall-clock budget; whichever of steps/seconds ends first
    batch_size: int = 256
    lr: float = 3e-4
    warmup: int = 500
    weight_decay: float = 0.0
    curriculum: bool = False  # number of pairs from 11 up to k_max + 1, +2 every 2000 steps
    compile: bool = True  # on CUDA only
    eval_every: int = 1000

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class History:
    steps: int = 0
    samples: int = 0
    seconds: float = 0.0
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
        pi = torch.full((s.m,), 1.0 / s.m, device=self.device) if s.pi is None else torch.tensor(s.pi, device=self.device)
        if s.family == "sample":
            z = torch.multinomial(pi, b * K, replacement=True, generator=self.gen).view(b, K)
            betas = self._betas(b)
            w = torch.take_along_dim(betas, z[..., None], 1)  # (b, K, d)
            return x, (x * w).sum(-1) + s.sigma * noise
        z = torch.multinomial(pi, b, replacement=True, generator=self.gen)
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


def lr_at(step: int, recipe: Recipe, total: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = min(1.0, (step - recipe.warmup) / max(1, total - recipe.warmup))
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_model(train: TrainData, cfg: Config, recipe: Recipe, device: str = "cpu", seed: int = 0,
                evaluate=None, progress: bool = True) -> tuple[InContextRegressor, History]:
    """Train a fresh model; `evaluate(model) -> dict` is called every `eval_every` steps."""
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    model = InContextRegressor(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    cuda = device.startswith("cuda")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    step_fn = torch.compile(model) if cuda and recipe.compile else model
    sample, K = Sampler(train, device, gen), cfg.max_pairs
    hist = History()
    from tqdm.auto import tqdm

    bar = tqdm(total=recipe.steps, disable=not progress, unit="step", dynamic_ncols=True)
    start = time.perf_counter()
    model.train()
    for step in range(recipe.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe, recipe.steps)
        x, y = sample(recipe.batch_size)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            pred = step_fn(x, y)
        err = (pred.float() - y) ** 2
        if recipe.curriculum:  # mask the pairs beyond the current length, keep the shapes
            err = err[:, : min(K, 11 + 2 * (step // 2000))]
        loss = err.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hist.steps, hist.samples = step + 1, hist.samples + recipe.batch_size
        if step % 50 == 0 or step == recipe.steps - 1:
            hist.loss.append(loss.item())
            bar.set_postfix(loss=f"{hist.loss[-1]:.4f}", refresh=False)
        if evaluate is not None and (step + 1) % recipe.eval_every == 0:
            model.eval()
            hist.evals.append({"step": step + 1, "seconds": time.perf_counter() - start, **evaluate(model)})
            model.train()
        bar.update(1)
        if recipe.seconds is not None and time.perf_counter() - start >= recipe.seconds:
            break
    if cuda:
        torch.cuda.synchronize()
    hist.seconds = time.perf_counter() - start
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
