"""An example plugin: a one-file solver, loaded with `mrbench run --plugin examples/online_lms.py`.

Least-mean-squares: one pass of stochastic gradient descent over the prompt's pairs, in order.
"""
import numpy as np

from mrbench import Solver


class OnlineLMS(Solver):
    name = "online_lms"
    group = "prompt-only"

    def __init__(self, lr=0.02):
        self.lr = lr

    def predict(self, x, y):
        n, K, d = x.shape
        w = np.zeros((n, d))
        out = np.zeros((n, K))
        for i in range(K):
            out[:, i] = np.einsum("nd,nd->n", x[:, i], w)  # uses pairs 0..i-1 only
            if i < K - 1:
                w += self.lr * (y[:, i] - out[:, i])[:, None] * x[:, i]
        return out
