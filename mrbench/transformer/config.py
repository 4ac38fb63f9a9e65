"""Model configuration and presets (no torch import: planning and skip checks stay light)."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Config:
    d: int = 20  # covariate dimension
    max_pairs: int = 61  # k_max + 1
    n_layer: int = 12
    n_head: int = 8
    n_embd: int = 256
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def n_params(self) -> int:
        """Parameters of InContextRegressor(self), counted without building it."""
        C = self.n_embd
        blocks = self.n_layer * (12 * C * C + 13 * C)  # LayerNorms, qkv, projection, MLP
        return (self.d + 1) * C + (2 * self.max_pairs - 1) * C + blocks + 2 * C + C + 1


PRESETS = {
    "paper": dict(n_layer=12, n_head=8, n_embd=256),  # about 9.5M parameters
    "small": dict(n_layer=6, n_head=4, n_embd=128),
    "tiny": dict(n_layer=2, n_head=2, n_embd=32),
}
