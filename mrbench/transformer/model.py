"""A GPT-2-style decoder over the prompt (Garg et al. 2022, used by Pathak et al. 2023).

Two token formats (`Config.tokens`):
- "interleaved" (Garg et al.'s, the paper preset's): x_1, y_1, x_2, y_2, ..., x_{k+1}, each y
  written into a d-vector [y, 0, ..., 0]; the outputs at the x positions are the predictions.
- "pairs": one token per pair, half the sequence (a quarter of the attention): token i carries
  (x_i, y_i, x_{i+1}) and predicts y_{i+1}; the first token (0, 0, x_1) predicts y_1.
Either way: a linear read-in to the width, learned absolute positions, pre-LayerNorm blocks
with causal fused attention and a GELU MLP, a final LayerNorm and a linear read-out to a scalar;
every prefix length is predicted in one causal forward pass.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .config import PRESETS, Config  # noqa: F401  (re-exported)


class Block(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.n_embd), nn.LayerNorm(cfg.n_embd)
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(),
                                 nn.Linear(4 * cfg.n_embd, cfg.n_embd), nn.Dropout(cfg.dropout))
        self.n_head, self.dropout = cfg.n_head, cfg.dropout

    def forward(self, h):
        B, T, C = h.shape
        q, k, v = self.qkv(self.ln1(h)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        h = h + F.dropout(self.proj(att.transpose(1, 2).reshape(B, T, C)), self.dropout, self.training)
        return h + self.mlp(self.ln2(h))


class InContextRegressor(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.read_in = nn.Linear(cfg.token_dim(), cfg.n_embd)
        self.pos = nn.Embedding(cfg.n_tokens(), cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.read_out = nn.Linear(cfg.n_embd, 1)
        self.apply(self._init)

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):  # GPT-2's initialization
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (b, P, d), y (b, P) -> predictions (b, P); y's last column is never read."""
        b, P, d = x.shape
        if self.cfg.tokens == "pairs":  # (x_{i-1}, y_{i-1}, x_i), zeros before the first pair
            prev = torch.cat([x[:, :-1], y[:, :-1, None].to(x.dtype)], dim=2)
            tokens = torch.cat([F.pad(prev, (0, 0, 1, 0)), x], dim=2)
        else:
            y_tok = torch.zeros_like(x)
            y_tok[..., 0] = y
            tokens = torch.stack([x, y_tok], dim=2).reshape(b, 2 * P, d)[:, :-1]  # x1 y1 ... x_K
        T = tokens.shape[1]
        h = self.drop(self.read_in(tokens) + self.pos(torch.arange(T, device=x.device)))
        for block in self.blocks:
            h = block(h)
        out = self.read_out(self.ln_f(h))[..., 0]
        return out if self.cfg.tokens == "pairs" else out[:, ::2]  # interleaved: the x positions

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


@torch.no_grad()
def predict(model: InContextRegressor, x: np.ndarray, y: np.ndarray, device: str = "cpu",
            chunk: int = 1024) -> np.ndarray:
    """The model's predictions at every position of prompts (x, y), in float64: (n, P); NaN
    labels (the hidden queries) read as 0."""
    out = []
    for lo in range(0, len(x), chunk):
        xb = torch.as_tensor(x[lo:lo + chunk], dtype=torch.float32, device=device)
        yb = torch.nan_to_num(torch.as_tensor(y[lo:lo + chunk], dtype=torch.float32, device=device))
        out.append(model(xb, yb).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64)
