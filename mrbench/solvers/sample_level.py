"""Sample-level mixture (Jin et al. 2024): the Bayes reference, the known-beta bound, and EM run
on each prompt's own pairs.

Every pair draws its own component, so the best one can do for y_i knowing the prompt's beta
and pi is x_i^T sum_k pi_k beta_k (`known_beta`, a bound no learner reaches); the best one can
do from the prefix is its posterior mean under the family's law (`sample_bayes`). `icl_em` estimates beta and pi from the prefix alone (K known, sigma
the spec's), with an exact weighted-least-squares M-step; `icl_gradient_em` replaces the M-step
by a few gradient steps (the variant the paper's transformer construction follows).
"""
import numpy as np

from mrbench.families.sample import (
    bayes_predictions,
    known_beta_predictions,
    no_bayes_reason,
)
from mrbench.lazy import torch
from mrbench.solver import Solver, at_least, one_of


class SampleBayes(Solver):
    """The Bayes predictor E[y_i | prefix] under the family's law (its components' prior, pi,
    sigma): the family's reference. Monte Carlo (a Rao-Blackwellized particle filter over the
    labels, `replicates` independent runs of `particles`); `info` reports its error."""

    name = "sample_bayes"
    requires_truth = True
    group = "oracle"
    families = ("sample",)
    code_also = ("mrbench.families.sample", "mrbench.families.sample_posterior")

    def __init__(self, particles=256, replicates=4):
        self.particles, self.replicates = particles, replicates

    def check_params(self):
        super().check_params()
        at_least("particles", self.particles, 1)
        at_least("replicates", self.replicates, 2)

    def skip_reason(self, spec, device):
        return no_bayes_reason(spec)

    def fit(self, train, truth=None):
        self.spec_, self.truth_ = train.spec, truth
        return self

    def predict(self, x, y):
        pred, se = bayes_predictions(self.spec_, x, y, self.truth_.coef_for(x), seed=self.seed,
                                     particles=self.particles, replicates=self.replicates)
        # The Monte Carlo variance adds to this reference's MSE: its share of the MSE, at the
        # worst position whose label the prompt shows (all but the query)
        mse = ((pred - y) ** 2)[:, :-1].mean(axis=0)
        share = (se**2)[:, :-1].mean(axis=0) / np.maximum(mse, 1e-300)
        self.mc_share_ = float(share.max()) if np.isfinite(y[:, :-1]).all() else float("nan")
        return pred

    def info(self):
        return {"particles": self.particles, "replicates": self.replicates, "mc_variance_share_max": self.mc_share_,
                "summary": f"Monte Carlo, {self.replicates} runs x {self.particles} particles: its variance is at "
                           f"most {self.mc_share_:.2%} of the MSE (worst k)"}


class KnownBeta(Solver):
    """Knows each test prompt's own beta and pi: x^T sum_k pi_k beta_k at every position, a
    bound no learner reaches (the papers' sqrt(d/n) rates are distances to it). The
    coefficients come per prompt (`Truth.coef_for`), so any subset of the test prompts works."""

    name = "known_beta"
    requires_truth = True
    group = "bound"
    families = ("sample",)

    def fit(self, train, truth=None):
        self.truth_ = truth
        return self

    def predict(self, x, y):
        return known_beta_predictions(x, self.truth_.coef_for(x))


class ICLEM(Solver):
    """EM on the prefix of each prompt, from scratch at every prefix length (T iterations).
    init: 'random' (directions uniform, scale s from the prefix's label variance, since
    E y^2 = sum_k pi_k ||beta_k||^2 + sigma^2) or 'spectral' (informed: the same scale in the
    top-K eigenvectors of mean y^2 x x^T). The M-step is a ridge regression; ridge 'auto' is
    the MAP choice sigma^2 d / s^2 for a N(0, s^2/d I) prior, which keeps prefixes shorter than
    d from fitting noise. EM has local optima: `restarts` more starts (other random rotations of
    the init) and `warm` (also start from the previous prefix's answer, which one more pair
    seldom moves far) each give a run, and the run of highest penalized likelihood is kept.
    Defaults by measurement (d = 10, sigma = 1, snr = 10, n = 40, 300 prompts, excess MSE over
    the known-beta bound at k = 40): one start 20.7, 10 restarts 9.0, 30 restarts 5.4, warm
    5.6 (at about 4x the time of one start), the Bayes predictor 2.8; so warm, no restarts."""

    name = "icl_em"
    group = "prompt-only"
    families = ("sample",)

    def __init__(self, iterations=20, init="spectral", ridge="auto", restarts=1, warm=True):
        self.iterations, self.init, self.ridge, self.restarts, self.warm = iterations, init, ridge, restarts, warm

    def check_params(self):
        super().check_params()
        one_of("init", self.init, ("random", "spectral"))
        at_least("iterations", self.iterations, 1)
        at_least("restarts", self.restarts, 1)
        if self.ridge != "auto" and not (isinstance(self.ridge, (int, float)) and self.ridge >= 0):
            raise ValueError(f"ridge={self.ridge!r}: must be 'auto' or a number >= 0")

    def fit(self, train, truth=None):
        self.K_, self.sigma_ = train.m, train.sigma
        return self

    def m_step(self, x, y, gamma, B, lam):
        """argmin_b sum_l gamma_lk (y_l - x_l^T b)^2 + lam ||b||^2 for each component: (n, K, d)."""
        xg = x[:, None] * gamma.permute(0, 2, 1)[..., None]  # (n, K, i, d)
        A = xg.transpose(-1, -2) @ x[:, None] + lam[:, None, None, None] * torch.eye(x.shape[-1], dtype=x.dtype)
        return torch.linalg.solve(A, (xg.transpose(-1, -2) @ y[:, None, :, None])[..., 0])

    def predict(self, x, y):
        X, Y = torch.from_numpy(x.astype(np.float64)), torch.from_numpy(y.astype(np.float64))
        starts = [self._random_starts(x, r) for r in range(self.restarts)]
        out = torch.zeros(Y.shape, dtype=torch.float64)
        self.components_ = np.full((*x.shape[:2], self.K_, x.shape[2]), np.nan)
        for i in range(1, X.shape[1]):  # prefix of i pairs predicts position i
            B, pi = self._em(X[:, :i], Y[:, :i], starts[0][:, i])
            if self.restarts > 1 or self.warm:  # keep, per prompt, the run of the highest penalized likelihood
                best = self._objective(X[:, :i], Y[:, :i], B, pi)
                runs = [self._em(X[:, :i], Y[:, :i], more[:, i]) for more in starts[1:]]
                if self.warm and i > 1:  # from the last prefix's answer: one more pair seldom moves it far
                    runs.append(self._em(X[:, :i], Y[:, :i], None, last))
                for B2, pi2 in runs:
                    obj = self._objective(X[:, :i], Y[:, :i], B2, pi2)
                    take = obj > best
                    B, pi = torch.where(take[:, None, None], B2, B), torch.where(take[:, None], pi2, pi)
                    best = torch.maximum(best, obj)
            last = B
            out[:, i] = torch.einsum("nd,nd->n", X[:, i], (pi[..., None] * B).sum(1))
            self.components_[:, i] = B.numpy()
        return out.numpy()

    def estimated_components(self):
        return self.components_

    def _random_starts(self, x, restart=0):
        """Random directions for every prompt and prefix: (n, k+1, K, d or K). Each prompt's come
        from the seed, the restart and its first x (which every prefix sees), not from its place
        in the batch, so a prompt gets the same prediction whatever other prompts share the call."""
        n, K1, d = x.shape
        width = d if self.init == "random" else min(self.K_, d)
        keys = (np.frombuffer(np.ascontiguousarray(x[:, 0], dtype=np.float32).tobytes(), dtype=np.uint32)
                .reshape(n, d).astype(np.uint64))
        tag = [restart] if restart else []  # the first start is the one a single run has always had
        draws = [np.random.default_rng([self.seed, *tag, *k]).standard_normal((K1, self.K_, width)) for k in keys]
        return torch.from_numpy(np.stack(draws))

    def _lam(self, x, y):
        """The ridge of the M-step and the scale of the starts, from the prefix's label variance."""
        s2 = max(self.sigma_, 1e-3) ** 2
        scale = ((y**2).mean(1) - self.sigma_**2).clamp_min(1e-6).sqrt()
        lam = s2 * x.shape[-1] / scale**2 if self.ridge == "auto" else torch.full((len(x),), float(self.ridge), dtype=x.dtype)
        return lam, scale, s2

    def _objective(self, x, y, B, pi):
        """What EM climbs: the prefix's log-likelihood under (B, pi) less the M-step's ridge
        penalty (a Gaussian prior on beta): (n,)."""
        lam, _, s2 = self._lam(x, y)
        r = (y[..., None] - x @ B.transpose(1, 2)) ** 2
        loglik = torch.logsumexp(torch.log(pi)[:, None, :] - r / (2 * s2), dim=-1).sum(1)
        return loglik - lam * (B**2).sum((1, 2)) / (2 * s2)

    def _em(self, x, y, c, B=None):
        K = self.K_
        lam, scale, s2 = self._lam(x, y)
        B = self._start(x, y, scale, c) if B is None else B
        pi = torch.full((len(x), K), 1.0 / K, dtype=x.dtype)
        for _ in range(self.iterations):
            r = (y[..., None] - x @ B.transpose(1, 2)) ** 2  # (n, i, K)
            gamma = torch.softmax(torch.log(pi)[:, None, :] - r / (2 * s2), dim=-1)
            pi = gamma.mean(1).clamp_min(1e-12)
            B = self.m_step(x, y, gamma, B, lam)
        return B, pi

    def _start(self, x, y, scale, c):
        n, i, d = x.shape
        r = min(self.K_, d)  # the components span at most d directions
        c = c / c.norm(dim=-1, keepdim=True)
        if self.init == "random":
            return scale[:, None, None] * c
        M = (x * (y**2)[..., None]).transpose(1, 2) @ x / i  # (n, d, d)
        U = torch.linalg.eigh(M).eigenvectors[..., -r:]  # top eigenvectors
        return scale[:, None, None] * (c @ U.transpose(1, 2))


class ICLGradientEM(ICLEM):
    """icl_em with each M-step `steps` gradient steps on the same weighted ridge loss, of size
    lr / L, L the largest curvature of the unweighted loss (lr < 2 is stable: gamma <= 1)."""

    name = "icl_gradient_em"

    def __init__(self, iterations=20, init="spectral", steps=5, lr=1.0, ridge="auto", restarts=1, warm=True):
        self.iterations, self.init, self.steps, self.lr, self.ridge = iterations, init, steps, lr, ridge
        self.restarts, self.warm = restarts, warm

    def m_step(self, x, y, gamma, B, lam):
        i = x.shape[1]
        L = 2.0 * torch.linalg.eigvalsh(x.transpose(1, 2) @ x / i)[:, -1] + 2.0 * lam / i
        step = (self.lr / L)[:, None, None]
        for _ in range(self.steps):
            resid = x @ B.transpose(1, 2) - y[..., None]  # (n, i, K)
            grad = 2.0 / i * ((gamma * resid).transpose(1, 2) @ x + lam[:, None, None] * B)
            B = B - step * grad
        return B
