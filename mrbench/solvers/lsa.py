"""A single linear self-attention layer trained by gradient descent (Jin et al. 2024's
training-dynamics model), in its reduced form: y_i is predicted by x_i^T Gamma b_i with
b_i = (1/i) sum_{l<i} y_l x_l, and Gamma (d x d) is trained on the spec's training prompts.

Our choices: full-batch gradient descent on the MSE over every prefix of every training prompt,
step size 1/L from the loss's curvature; init 'zero' (Gamma = 0, the structured start with no
cross terms) or 'random'. The paper's exact parameterization and initialization are not among
our sources.

`prompts=N` instead solves the least-squares problem exactly on N fresh prompts of the training
law (not the spec's training set): with N large, the best of the class, which Theorem 4.1's
excess risk is measured from (inf over the class of the population loss).
"""
import numpy as np

from mrbench.lazy import torch
from mrbench.solver import Solver, at_least, one_of


def features(x, y):
    """(n, P, d) and (n, P) -> b (n, P, d): b_i = (1/i) sum_{l<i} y_l x_l, b_0 = 0."""
    xy = x * y[..., None]
    b = torch.zeros_like(x)
    b[:, 1:] = torch.cumsum(xy[:, :-1], dim=1) / torch.arange(1, x.shape[1], dtype=x.dtype)[:, None]
    return b


class LSA(Solver):
    name = "lsa"
    trained = True
    group = "in-context"
    families = ("sample",)

    def __init__(self, steps=500, init="zero", prompts=None):
        self.steps, self.init, self.prompts = steps, init, prompts

    def check_params(self):
        super().check_params()
        one_of("init", self.init, ("zero", "random"))
        at_least("steps", self.steps, 0)
        if self.prompts is not None:
            at_least("prompts", self.prompts, 1)

    def fit(self, train, truth=None):
        if self.prompts is not None:
            return self._fit_exact(train)
        data = train.fixed()
        x, y = torch.from_numpy(data.x.astype(np.float64)), torch.from_numpy(data.y)
        b = features(x, y)[:, 1:].reshape(-1, x.shape[-1])
        q, t = x[:, 1:].reshape(-1, x.shape[-1]), y[:, 1:].reshape(-1)
        d = x.shape[-1]
        gen = torch.Generator().manual_seed(self.seed)
        G = torch.zeros((d, d), dtype=torch.float64) if self.init == "zero" else torch.randn((d, d), generator=gen, dtype=torch.float64) / d
        # The loss is quadratic in Gamma with Hessian 2 E[(b b^T) kron (q q^T)]; its top
        # eigenvalue, by power iteration, sets a stable step size.
        lr = 1.0 / self._curvature(q, b, gen)
        for _ in range(self.steps):
            r = torch.einsum("nd,de,ne->n", q, G, b) - t
            G = G - lr * 2.0 * torch.einsum("n,nd,ne->de", r, q, b) / len(t)
        self.gamma_ = G.numpy()
        return self

    def _fit_exact(self, train, chunk=2000):
        """The normal equations of vec(Gamma), accumulated over chunks of fresh prompts."""
        from mrbench.families import family_of

        spec, d = train.spec, train.d
        rng = np.random.default_rng([self.seed, 7_000_003])
        gram, rhs, done = torch.zeros((d * d, d * d), dtype=torch.float64), torch.zeros(d * d, dtype=torch.float64), 0
        while done < self.prompts:
            n = min(chunk, self.prompts - done)
            p = family_of(spec).draw(spec, train._pool, n, train.pairs, rng)
            x, y = torch.from_numpy(p.x.astype(np.float64)), torch.from_numpy(p.y)
            b, q, t = features(x, y)[:, 1:].reshape(-1, d), x[:, 1:].reshape(-1, d), y[:, 1:].reshape(-1)
            F = (q[:, :, None] * b[:, None, :]).reshape(-1, d * d)
            gram += F.T @ F
            rhs += F.T @ t
            done += n
        self.gamma_ = torch.linalg.solve(gram, rhs).reshape(d, d).numpy()
        return self

    @staticmethod
    def _curvature(q, b, gen, iters=30):
        V = torch.randn((q.shape[1], q.shape[1]), generator=gen, dtype=torch.float64)
        for _ in range(iters):
            V = V / V.norm()
            V = 2.0 * torch.einsum("n,nd,ne->de", torch.einsum("nd,de,ne->n", q, V, b), q, b) / len(q)
        return float(V.norm())

    def predict(self, x, y):
        X, Y = torch.from_numpy(x.astype(np.float64)), torch.from_numpy(y.astype(np.float64))
        Y = torch.nan_to_num(Y)  # the hidden last label never enters b (cumsum stops before it)
        return torch.einsum("nkd,de,nke->nk", X, torch.from_numpy(self.gamma_), features(X, Y)).numpy()
