"""Prompt-level mixture (Pathak et al. 2023, Sec. 2): each prompt draws one component w_j of a
fixed pool of m (uniform on the sphere of radius sqrt(d)) with weights pi, and all its pairs
follow y = <w_j, x> + sigma * noise, x ~ N(0, I_d). Test-time shifts (Sec. 4) scale x, scale the
pool or move it."""
from __future__ import annotations

import numpy as np

from ..predictors import posterior_mean
from ..prompts import Prompts, Truth, components, rowdot
from .base import Family, weights


def draw(pool: np.ndarray, sigma: float, n: int, P: int, rng: np.random.Generator,
         x_scale: float = 1.0, pi=None) -> Prompts:
    """One component of `pool` per prompt."""
    m, d = pool.shape
    z = components(rng, m, n, pi)
    x = rng.standard_normal((n, P, d), dtype=np.float32)
    noise = rng.standard_normal((n, P))
    if x_scale != 1.0:
        x = x * np.float32(x_scale)
    return Prompts(x, rowdot(x.astype(np.float64), pool[z][:, None, :]) + sigma * noise, z)


def test_pool(spec, pool: np.ndarray) -> np.ndarray:
    """The pool the test prompts are drawn from: weight shifts apply at test time only."""
    if spec.shift_kind == "weight_scale":
        return pool * spec.shift_value
    if spec.shift_kind == "weight_shift":
        return pool + spec.shift_value / np.sqrt(spec.d)
    return pool


class PromptFamily(Family):
    name = "prompt"
    description = "one component per prompt from a fixed pool (Pathak et al. 2023)"
    oracle = "posterior_mean"
    shift_kinds = {"covariate_scale": (1.0, True), "weight_scale": (1.0, True), "weight_shift": (0.0, False)}
    panels = ("shifts", "probe")

    def draw(self, spec, pool, n, P, rng, test=False):
        x_scale = spec.shift_value if test and spec.shift_kind == "covariate_scale" else 1.0
        pi = None if spec.pi is None else np.asarray(spec.pi)
        return draw(test_pool(spec, pool) if test else pool, spec.sigma, n, P, rng, x_scale, pi)

    def truth(self, spec, pool, test):
        return Truth(pool=pool, pi=weights(spec), sigma=spec.sigma, extra={"test_pool": test_pool(spec, pool)})

    def sampler(self, spec, pool, device, gen):
        import torch

        W = torch.as_tensor(pool, dtype=torch.float32, device=device)
        pi = torch.tensor(weights(spec), dtype=torch.float32, device=device)  # once: no copy per step

        def sample(b, P, dims=None):
            x = torch.randn((b, P, spec.d), generator=gen, device=device)
            if dims is not None and dims < spec.d:
                x[..., dims:] = 0.0
            noise = torch.randn((b, P), generator=gen, device=device)
            z = torch.multinomial(pi, b, replacement=True, generator=gen)
            return x, torch.einsum("bkd,bd->bk", x, W[z]) + spec.sigma * noise

        return sample

    def bayes(self, spec, x, y, truth, seed=0):
        return posterior_mean(x, y, truth.pool, truth.sigma, truth.pi)
