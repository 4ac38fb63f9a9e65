"""Prompt-level mixture whose components also differ in their inputs: each prompt draws one
component j (weights pi), its x ~ N(0, Sigma_j) and y = <w_j, x> + sigma * noise. Subgroups with
their own, unknown input distributions are the setting of Jain et al. (2023) and of Kong et
al.'s follow-ups.

Our law (no paper fixes one): the pool w_j is the prompt family's (same d, m, pool_seed), and
Sigma_j = diag(s_j) with log s_j = x_spread * g_j, g_j ~ N(0, I_d) from pool_seed, each s_j
rescaled to mean 1 (tr Sigma_j = d, so NMSE stays on the prompt family's scale). x_spread = 0
is the prompt family. The inputs then tell the components apart too, so the Bayes-optimal
prediction weighs the input likelihood of every x seen, the query's included:
p(j | prefix) ∝ pi_j prod_{l <= i} N(x_l; 0, Sigma_j) prod_{l < i} N(y_l; <w_j, x_l>, sigma^2).
"""
from __future__ import annotations

import numpy as np

from ..predictors import component_predictions, posterior_weights, prefix_residuals
from ..prompts import Prompts, Truth, components, rowdot
from .base import Family, _invalid, weights

_SCALES = 0x5CA1E


def input_scales(d: int, m: int, pool_seed: int, x_spread: float) -> np.ndarray:
    """(m, d) variances of each component's inputs, mean 1 per component."""
    rng = np.random.default_rng(np.random.SeedSequence([_SCALES, pool_seed, d, m]))
    s = np.exp(x_spread * rng.standard_normal((m, d)))
    return s / s.mean(axis=1, keepdims=True)


def subgroup_posterior_mean(x, y, pool, scales, sigma: float, pi) -> np.ndarray:
    """Bayes-optimal prediction at every position, in float64 and the log domain: (n, P)."""
    x64 = x.astype(np.float64)
    preds = component_predictions(x64, pool)
    # log N(x_l; 0, diag s_j) up to a constant, summed over the inputs seen (l <= i)
    ll = -0.5 * (np.einsum("nkd,md->nkm", x64 * x64, 1.0 / scales) + np.log(scales).sum(axis=1))
    w = posterior_weights(prefix_residuals(preds, y), sigma, pi, log_evidence=np.cumsum(ll, axis=1))
    return np.einsum("nkm,nkm->nk", w, preds)


class SubgroupFamily(Family):
    name = "subgroup"
    description = "one component per prompt, each with its own input covariance"
    fields = {"x_spread": 1.0}
    oracle = "subgroup_oracle"
    solvers_of = ("prompt",)  # y | x, j is the prompt family's: pool estimates (EM, ...) apply

    def validate(self, where, values, spec):
        out = super().validate(where, values, spec)
        if out["x_spread"] < 0:
            raise _invalid(where, "x_spread", out["x_spread"], "must be >= 0 (0: the prompt family)")
        return out

    def _scales(self, spec):
        return input_scales(spec.d, spec.m, spec.pool_seed, spec.x_spread)

    def draw(self, spec, pool, n, P, rng, test=False):
        z = components(rng, spec.m, n, None if spec.pi is None else np.asarray(spec.pi))
        sd = np.sqrt(self._scales(spec)).astype(np.float32)
        x = rng.standard_normal((n, P, spec.d), dtype=np.float32) * sd[z][:, None, :]
        noise = rng.standard_normal((n, P))
        return Prompts(x, rowdot(x.astype(np.float64), pool[z][:, None, :]) + spec.sigma * noise, z)

    def truth(self, spec, pool, test):
        return Truth(pool=pool, pi=weights(spec), sigma=spec.sigma, extra={"scales": self._scales(spec)})

    def sampler(self, spec, pool, device, gen):
        import torch

        W = torch.as_tensor(pool, dtype=torch.float32, device=device)
        sd = torch.as_tensor(np.sqrt(self._scales(spec)), dtype=torch.float32, device=device)
        pi = torch.tensor(weights(spec), dtype=torch.float32, device=device)

        def sample(b, P, dims=None):
            z = torch.multinomial(pi, b, replacement=True, generator=gen)
            x = torch.randn((b, P, spec.d), generator=gen, device=device) * sd[z][:, None, :]
            if dims is not None and dims < spec.d:
                x[..., dims:] = 0.0
            noise = torch.randn((b, P), generator=gen, device=device)
            return x, torch.einsum("bkd,bd->bk", x, W[z]) + spec.sigma * noise

        return sample

    def bayes(self, spec, x, y, truth, seed=0):
        return subgroup_posterior_mean(x, y, truth.pool, truth.extra["scales"], truth.sigma, truth.pi)
